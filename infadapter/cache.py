"""Where InfAdapter keeps what it can rebuild: decoded traces, built models, profiles, calibrations.

One root for every cache, so one variable moves them all (tests point it at one temporary directory)
and one command (``infadapter cache clear``) empties it. Everything under it may be deleted at any time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

#: set to a directory to keep every cache there
CACHE_ENV = "INFADAPTER_CACHE_DIR"

__all__ = ["CACHE_ENV", "CacheEntry", "cache_entries", "cache_root", "clear_cache", "unsafe_to_clear"]


def cache_root() -> Path:
    """``$INFADAPTER_CACHE_DIR``, else ``$XDG_CACHE_HOME/infadapter``, else ``~/.cache/infadapter``.

    Read at each call (not at import), so a test or a command can move it. Not created here.
    """
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative path is invalid and ignored
        return Path(xdg) / "infadapter"
    return Path.home() / ".cache" / "infadapter"


@dataclass(frozen=True)
class CacheEntry:
    """One top-level entry of the cache (``traces``, ``models``, ``profiles`` ...) and its size on disk."""

    path: Path
    size_bytes: int


def _disk_bytes(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # removed while we walked: it no longer counts
                total += (Path(root) / name).lstat().st_size
    return total


def cache_entries(root: Path | None = None) -> list[CacheEntry]:
    """The top-level entries under ``root`` (default :func:`cache_root`), sorted by name; [] if it is absent."""
    base = root if root is not None else cache_root()
    if not base.is_dir():
        return []
    return [CacheEntry(p, _disk_bytes(p)) for p in sorted(base.iterdir())]


def unsafe_to_clear(root: Path) -> str | None:
    """Why emptying ``root`` could destroy more than a cache (None when it looks safe).

    A mistyped ``INFADAPTER_CACHE_DIR=~`` must not cost anyone their home directory.
    """
    resolved = root.expanduser().resolve()
    home = Path.home().resolve()
    if resolved == Path(resolved.anchor):
        return "it is a file-system root"
    if resolved == home or resolved in home.parents:
        return "it is the home directory or one of its parents"
    if resolved == Path.cwd().resolve() or resolved in Path.cwd().resolve().parents:
        return "it holds the current directory"
    if (resolved / ".git").exists():
        return "it is a git repository"
    return None


def clear_cache(root: Path | None = None, names: list[str] | None = None) -> list[CacheEntry]:
    """Remove every entry under ``root`` (or only those named), keep ``root`` itself; return what was removed."""
    base = root if root is not None else cache_root()
    removed: list[CacheEntry] = []
    for entry in cache_entries(base):
        if names is not None and entry.path.name not in names:
            continue
        if entry.path.is_dir() and not entry.path.is_symlink():
            shutil.rmtree(entry.path)
        else:
            entry.path.unlink()
        removed.append(entry)
    return removed
