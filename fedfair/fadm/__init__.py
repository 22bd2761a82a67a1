"""FADM: Fairness-Aware Diffusion with Meta-learning (Lin, Li, Zhao & Shao), a score-based diffusion
generator of tabular rows with label guidance and sensitive-entropy guidance (eq. 1–11, Algorithm 1).

- :mod:`~fedfair.fadm.layout`: rows ↔ the diffusion's [−1, 1] space, decoding to valid rows;
- :mod:`~fedfair.fadm.sde`: the VP-SDE and its perturbation kernel (eq. 1–5);
- :mod:`~fedfair.fadm.networks`: the score network and the two noise-conditional classifiers;
- :mod:`~fedfair.fadm.training`: meta-training over domains (Algorithm 1);
- :mod:`~fedfair.fadm.sampling`: guided reverse-time sampling (eq. 7, 10, 11);
- :mod:`~fedfair.fadm.generator`: the configuration, :func:`fit`, :func:`sample`, :meth:`FADM.generate`,
  :meth:`FADM.save` / :meth:`FADM.load`.

The names of :mod:`~fedfair.fadm.generator` are loaded at their first use (it imports torch), so a
process that needs only :class:`Layout` (any run without FADM) starts without torch.
"""

import importlib
from typing import Any

from fedfair.fadm.layout import Layout

__all__ = ["FADM", "FADMConfig", "Layout", "fit", "sample", "train", "training_key"]


def __getattr__(name: str) -> Any:
    """The generator's names, imported on first use (PEP 562)."""
    if name in __all__:
        return getattr(importlib.import_module("fedfair.fadm.generator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
