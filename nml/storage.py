"""Where results and caches live, and the atomic file write every store and cache uses.

The bottom of the package's storage: :mod:`nml.results` (the result store), :mod:`nml.features`
(cached features) and :mod:`nml.training` (checkpoints) write through :func:`atomic_write_bytes`.
Used by every chapter.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import NMLError

__all__ = ["atomic_write_bytes", "default_cache_root", "default_results_root"]


def default_results_root() -> Path:
    """``$NML_RESULTS`` if set, else ``results/`` beside the ``nml`` package (the repository)."""
    env = os.environ.get("NML_RESULTS")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "results"


def default_cache_root() -> Path:
    """``$NML_CACHE`` if set, else ``~/.cache/nml``: decoded data and cached features."""
    return Path(os.environ.get("NML_CACHE", Path.home() / ".cache" / "nml")).expanduser()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except PermissionError:
        raise NMLError(f"cannot write {path}: permission denied on {path.parent}; make it "
                       f"writable, or point NML_RESULTS / NML_CACHE (or --results) at a folder "
                       f"this user may write") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
