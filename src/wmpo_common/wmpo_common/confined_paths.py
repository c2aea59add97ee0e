"""Paths that arrive in messages (action goals, service requests) stay inside configured roots.

  root = Path(node_parameter("data_root")).resolve()
  output = confined_path(goal.output, [root], "output")   # PathOutsideRoots with the reason

Both the path and the roots are resolved first (symlinks followed, ``..`` removed; a relative
path is taken from the working directory), so neither ``runs/../../etc`` nor a symlink inside a
root that points out of it gets through.
"""

from collections.abc import Sequence
from pathlib import Path


class PathOutsideRoots(ValueError):
    """A path from a message that lies outside every configured root; the text says which."""


def confined_path(path: str, roots: Sequence[str | Path], what: str = "path") -> Path:
    """``path`` resolved, if it lies inside (or is) one of ``roots``; else PathOutsideRoots."""
    if not path:
        raise PathOutsideRoots(f"{what} is empty")
    try:
        resolved = Path(path).resolve()
        resolved_roots = [Path(root).resolve() for root in roots]
    except (OSError, RuntimeError, ValueError) as error:  # embedded NUL bytes, symlink loops
        raise PathOutsideRoots(f"{what} {path!r} is not a usable path: {error}") from None
    if any(resolved.is_relative_to(root) for root in resolved_roots):
        return resolved
    shown = ", ".join(str(root) for root in resolved_roots) or "(none configured)"
    raise PathOutsideRoots(f"{what} {path!r} resolves to {resolved}, outside the data roots: {shown}")
