"""Local folder (or file, or archive) sources: a rescan reads only files whose size or mtime changed.

Ingest then compares a changed file's content hash with what it stored, so a file touched but
not changed is read and hashed, never parsed again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from digests.errors import DigestError
from digests.ingest.walk import Source, iter_sources, sources_in_folder
from digests.sources.policy import is_selected

ARCHIVE_MEMBER = "!"  # ingest names an archive's documents ARCHIVE!member
_ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class FolderError(DigestError):
    """A folder source cannot be scanned at all (it is gone, or unreadable)."""


@dataclass(slots=True)
class FolderScan:
    """What a rescan found: the documents to ingest, and the files' new and lost stats."""

    entries: list[Source | tuple[str, str]] = field(default_factory=list)
    changed: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (size, mtime_ns)
    gone: list[str] = field(default_factory=list)
    unchanged: int = 0


def is_archive(path: str) -> bool:
    return path.lower().endswith(_ARCHIVES)


def scan(location_path: str, previous: dict[str, tuple[int, int]], select: Sequence[str] = ()) -> FolderScan:
    """The files below location_path that are new or changed since ``previous``, and those gone."""
    root = Path(location_path).expanduser()
    if not root.exists():
        # Never read as "every file was deleted": an unmounted disk must not empty the archive.
        raise FolderError(f"{root}: no such file or directory")
    root = root.resolve()
    result = FolderScan()
    seen: set[str] = set()
    for path, relative in _files(root):
        if not is_selected(relative, select):
            continue
        seen.add(path)
        try:
            info = os.stat(path)
        except OSError as exc:
            result.entries.append((path, f"cannot read: {exc.strerror}"))
            continue
        stat = (info.st_size, info.st_mtime_ns)
        if previous.get(path) == stat:
            result.unchanged += 1
            continue
        result.changed[path] = stat
        # A link is read by the folder walk's rule: never one that leads out of the folder.
        result.entries.extend(iter_sources([path]) if path == str(root) else sources_in_folder(path, str(root)))
    result.gone = sorted(path for path in previous if path not in seen)
    return result


def _files(root: Path) -> list[tuple[str, str]]:
    """(path, path relative to root) of every file, in a stable order, hidden ones left out."""
    if not root.is_dir():
        return [(str(root), root.name)]
    found = []
    try:
        for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            relative_dir = os.path.relpath(dirpath, root)
            # os.walk does not enter a folder link; listed, it is reported if it leads out.
            links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            for name in sorted([*filenames, *links]):
                if not name.startswith("."):
                    relative = name if relative_dir == "." else f"{relative_dir}/{name}"
                    found.append((os.path.join(dirpath, name), relative.replace(os.sep, "/")))
    except OSError as exc:
        raise FolderError(f"{exc.filename or root}: cannot read the folder: {exc.strerror}") from None
    return found


def _raise(exc: OSError) -> None:
    raise exc
