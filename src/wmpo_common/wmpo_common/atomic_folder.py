"""Folders (checkpoints, datasets) written atomically: into a hidden temporary sibling, then
renamed into place, so a crash never leaves a half-written folder where a reader looks."""

import contextlib
import os
import shutil
from pathlib import Path

from wmpo_common.atomic_json import fsync_path


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (and ``folder`` itself), deepest first."""
    for parent, _, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_path(Path(parent) / name)
        fsync_path(parent)


@contextlib.contextmanager
def atomic_folder(path: str | Path):
    """Yield a fresh temporary folder; on success it is flushed to disk and replaces ``path`` (an
    existing folder is swapped out and removed), on an exception it is removed and ``path`` is
    untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        fsync_path(path.parent)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)
        fsync_path(path.parent)
