"""JSON state written atomically: a reader (or a resumed run after a crash or a power cut) sees
the old file or the new one, never half of one."""

import json
import os
import tempfile
from pathlib import Path


def fsync_path(path: str | Path) -> None:
    """Flush a file's or a folder's data and metadata (a folder: its entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str | Path, data, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON to ``path``: into a temporary sibling, fsync, ``os.replace``, fsync of
    the folder. On any error (data that is not JSON, a full disk) ``path`` is left as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(data, file, indent=indent)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return path
