"""Where dataset files live, how they are checked (SHA-256) and how they are fetched.

Each dataset's module (:mod:`fedfair.data.sets`) lists its :class:`Source` files. Files are read from
:func:`data_dir`: ``$FEDFAIR_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/fedfair/datasets``
(``~/.cache/fedfair/datasets`` by default). fedfair never ships or commits data; :func:`fetch`
downloads a dataset from its public source when a network exists.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fedfair.data.sets import DATASETS
from fedfair.errors import FedFairError


@dataclass(frozen=True)
class Source:
    """One file of a dataset: its name in the data directory, public URL and SHA-256."""

    file: str
    url: str
    sha256: str


_verified: dict[tuple[str, int, int], str] = {}


def sources(name: str) -> tuple[Source, ...]:
    """The files of dataset ``name`` (its module in :mod:`fedfair.data.sets`)."""
    return DATASETS.lookup(name).sources


def data_dir() -> Path:
    """``$FEDFAIR_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/fedfair/datasets`` (default ``~/.cache``)."""
    if os.environ.get("FEDFAIR_DATA_DIR"):
        return Path(os.environ["FEDFAIR_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "fedfair" / "datasets"


def sha256(path: Path) -> str:
    """The file's SHA-256, computed once per (path, mtime, size) in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _verified:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _verified[key] = digest.hexdigest()
    return _verified[key]


def locate(name: str, root: str | Path | None = None) -> list[Path]:
    """The checked paths of a dataset's files in ``root`` (default :func:`data_dir`)."""
    root = Path(root).expanduser() if root is not None else data_dir()
    paths = []
    for src in sources(name):
        path = root / src.file
        if not path.is_file():
            raise FedFairError(
                f"{src.file} is missing: put {src.file} in {root} or run `fedfair data fetch {name}`"
            )
        actual = sha256(path)
        if actual != src.sha256:
            raise FedFairError(
                f"{path} is corrupt (sha256 {actual[:12]}…, expected {src.sha256[:12]}…): "
                f"replace it or run `fedfair data fetch {name}`"
            )
        paths.append(path)
    return paths


def fetch(name: str, dest: str | Path | None = None) -> list[Path]:
    """Download a dataset's files into ``dest`` (default :func:`data_dir`), each checked by SHA-256
    and written atomically (temporary file, then rename). A file already present and intact is kept."""
    srcs = sources(name)
    if not srcs:
        raise FedFairError(f"dataset '{name}' is generated in memory; there is nothing to fetch")
    dest = Path(dest).expanduser() if dest is not None else data_dir()
    paths = []
    for src in srcs:
        path = dest / src.file
        if not (path.is_file() and sha256(path) == src.sha256):
            _download(src, path)
        paths.append(path)
    return paths


def _download(src: Source, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{src.file}.")
    except OSError as exc:
        raise FedFairError(f"cannot write {src.file} to {path.parent}: {exc.strerror or exc}") from None
    tmp = Path(name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(src.url, timeout=60) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != src.sha256:
            raise FedFairError(
                f"download of {src.url} has sha256 {digest.hexdigest()[:12]}…, expected "
                f"{src.sha256[:12]}…; nothing written to {path.parent}"
            )
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except OSError as exc:  # urllib.error.URLError is an OSError
        reason = str(getattr(exc, "reason", None) or exc).replace("\n", " ")
        raise FedFairError(
            f"cannot download {src.url} to {path.parent} ({reason}); put {src.file} there by hand"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
