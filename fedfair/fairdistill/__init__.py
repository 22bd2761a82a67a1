"""Fair latent distillation (Sikder, Ramachandranpillai, de Leng & Heintz 2024): a FairDisCo teacher (a
VAE whose latent z is made independent of s by the dependence penalty β V², Liu et al. 2022), a smaller
student encoder distilled from it (eq. 4–6), and fair rows decoded from the student's latent (§4.3).

- :mod:`~fedfair.fairdistill.penalty`: V²(z, s) (eq. 2) as a kernel (HSIC) form;
- :mod:`~fedfair.fairdistill.networks`: the encoders and the decoder;
- :mod:`~fedfair.fairdistill.losses`: reconstruction per feature block, KL, the distillation losses;
- :mod:`~fedfair.fairdistill.training`: the teacher (eq. 3) and the student (Algorithm 1);
- :mod:`~fedfair.fairdistill.generator`: the configuration, :func:`fit`, :func:`sample`,
  :meth:`FairDistill.generate`, :meth:`FairDistill.save` / :meth:`FairDistill.load`.

The feature blocks come from :class:`fedfair.fadm.Layout` (rows ↔ schema features). The names of
:mod:`~fedfair.fairdistill.generator` are loaded at their first use (it imports torch), so a run
without this generator starts without torch.
"""

import importlib
from typing import Any

from fedfair.fadm.layout import Layout

__all__ = ["FairDistill", "FairDistillConfig", "Layout", "distil", "fit", "fit_teacher", "sample", "training_key"]


def __getattr__(name: str) -> Any:
    """The generator's names, imported on first use (PEP 562)."""
    if name in __all__:
        return getattr(importlib.import_module("fedfair.fairdistill.generator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
