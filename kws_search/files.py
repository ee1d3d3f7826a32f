"""Writing a file so that a reader never sees half of it: one way, for every file we write."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: bytes | Callable[[Path], object]) -> Path:
    """Write `path` through a hidden temporary file beside it, then rename it into place, so
    a killed run leaves the old file or the new one, never a broken one. `write` is the bytes,
    or a function that writes a given path (such as `lambda p: torch.save(state, p)`).
    The folder is made if needed; on any error the temporary file is removed and the error
    goes on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        if isinstance(write, bytes):
            tmp.write_bytes(write)
        else:
            write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
