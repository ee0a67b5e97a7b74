"""Walking the archive: files, folders and the members of .zip and .tar archives, in a stable order."""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
# What Source.read raises for a file or member that cannot be read.
READ_ERRORS: tuple[type[Exception], ...] = (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError)
# Only regular files are read: a FIFO blocks its reader until someone writes, a device never ends.
_NOT_REGULAR = ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "directory"))
# Paths are resolved by the walk: a link that appears in their place afterwards is not followed.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)


@dataclass(slots=True)
class Source:
    """One document to ingest: where it is (a path, or archive!member) and how to read it."""

    path: str
    size: int
    read: Callable[[], bytes]


def iter_sources(paths: Iterable[str | Path]) -> Iterator[Source | tuple[str, str]]:
    """Every document below paths, in a stable order; (path, reason) for what cannot be opened."""
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if path.is_dir():
            yield from _folder_sources(str(path))
        elif path.exists():
            yield from _file_sources(str(path))
        else:
            yield (str(path), "no such file or directory")


def _folder_sources(root: str) -> Iterator[Source | tuple[str, str]]:
    """Every document below a folder, hidden names skipped: each folder's files by name, then its
    subfolders by name (as os.walk, top down).

    A symlink is followed only when it resolves inside the folder (a file link is read as its
    target, under its own name; a folder link is not walked: its target is, where it is). One that
    leads out of the folder is reported and never opened.
    """
    # Plain strings and scandir's entries: a Path or an lstat per file cost as much as reading a
    # small file, and an entry knows from the directory listing whether it is a link or a folder.
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError:
            continue  # as os.walk: a folder that cannot be listed is passed over
        subfolders = []
        for entry in entries:
            if entry.is_symlink():
                yield from _link_sources(entry.path, root)
            elif entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.path)
            else:
                yield from _file_sources(entry.path)
        folders.extend(reversed(subfolders))


def sources_in_folder(path: str, root: str) -> Iterator[Source | tuple[str, str]]:
    """The document(s) of one file found below the folder root (both resolved), as the folder walk
    reads it: a link only when it resolves inside root, read as its target under its own name."""
    if os.path.islink(path):
        yield from _link_sources(path, root)
    else:
        yield from _file_sources(path)


def _link_sources(path: str, root: str) -> Iterator[Source | tuple[str, str]]:
    target = os.path.realpath(path)
    if not _within(target, root):
        yield (path, f"symlink points outside the archive: {target}")
    elif not os.path.isdir(target):
        yield from _file_sources(path, target)


def _is_archive(name: str) -> bool:
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


def _hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in Path(name).parts if part not in (".", ".."))


def _file_kind(mode: int) -> str:
    return next((name for is_kind, name in _NOT_REGULAR if is_kind(mode)), "special file")


def _within(path: str, root: str) -> bool:
    return os.path.commonpath((path, root)) == root


def _file_sources(path: str, real: str | None = None) -> Iterator[Source | tuple[str, str]]:
    """The document(s) at path, read from real (the resolved target of a link) when given."""
    real = real or path
    try:
        status = os.stat(real)
    except OSError as exc:
        yield (path, f"cannot read: {exc.strerror}")
        return
    if not stat.S_ISREG(status.st_mode):
        yield (path, f"not a regular file: {_file_kind(status.st_mode)}")
        return
    if _is_archive(path):
        yield from (_zip_sources(path, real) if path.lower().endswith(".zip") else _tar_sources(path, real))
        return
    yield Source(path, status.st_size, partial(_read_file, real))


def _read_file(path: str) -> bytes:
    # Non-blocking, then checked again: a file swapped for a FIFO since the walk must not hang us.
    fd = os.open(path, _OPEN_FLAGS)
    with open(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"not a regular file: {_file_kind(mode)}")
        return file.read()


def _zip_sources(path: str, real: str) -> Iterator[Source | tuple[str, str]]:
    try:
        archive = zipfile.ZipFile(real)
    except (zipfile.BadZipFile, OSError) as exc:
        yield (path, f"not a readable zip archive: {exc}")
        return
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir() or _hidden(info.filename):
                continue
            yield Source(f"{path}!{info.filename}", info.file_size,
                         partial(_read_zip_member, real, info.filename))


def _read_zip_member(archive: str, name: str) -> bytes:
    with zipfile.ZipFile(archive) as zf:
        return zf.read(name)


def _tar_sources(path: str, real: str) -> Iterator[Source | tuple[str, str]]:
    try:
        archive = tarfile.open(real)  # noqa: SIM115  (closed by the with below)
    except (tarfile.TarError, OSError) as exc:
        yield (path, f"not a readable tar archive: {exc}")
        return
    with archive:
        try:
            members = sorted((m for m in archive.getmembers() if not m.isdir()), key=lambda m: m.name)
        except (tarfile.TarError, OSError, EOFError) as exc:
            yield (path, f"broken tar archive: {exc}")
            return
        for member in members:
            if _hidden(member.name):
                continue
            if not member.isfile():  # never followed: a link's target may be anywhere
                yield (f"{path}!{member.name}", f"not a regular file: {_member_kind(member)}")
                continue
            # read() is called while this generator is suspended, so the archive is still open.
            yield Source(f"{path}!{member.name}", member.size,
                         partial(_read_tar_member, archive, member))


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"symlink to {member.linkname}"
    if member.islnk():
        return f"hardlink to {member.linkname}"
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    return "fifo" if member.isfifo() else "special member"


def _read_tar_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    extracted = archive.extractfile(member)
    return extracted.read() if extracted is not None else b""
