"""Where a source lives, parsed from one string: a local path, an http(s) URL or a git repository.

Git repositories are written ``git+https://…``, ``git+ssh://…``, ``git+file://…`` (or
``git+git://…``), optionally followed by ``#branch``, ``#branch:subdir`` or ``#:subdir``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

PATH, HTTP, GIT = "path", "http", "git"
KINDS = (PATH, HTTP, GIT)
_GIT_TRANSPORTS = ("https", "http", "ssh", "file", "git")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/@]*@")
# What git itself refuses in a branch name (git check-ref-format), checked before we ever run git.
_BAD_BRANCH = re.compile(r"(?:^[-/.]|\.\.|[\s~^:?*\[\\]|@\{|/$|\.lock$|\.$|//)")


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed source location; ``text`` is the string it was parsed from, normalised."""

    kind: str
    text: str
    url: str = ""  # http: the URL; git: the remote's URL without "git+" and the fragment
    path: str = ""  # path: the local path, ~ expanded (not resolved: the folder may come later)
    branch: str = ""  # git: empty means the remote's default branch
    subdir: str = ""  # git: only files below this folder of the repository

    def git_document_path(self, branch: str, repo_path: str) -> str:
        """The stable document path of a file of this repository: ``git+URL#branch:path/in/repo``
        (without any user name or token the URL carries: document paths are shown to users)."""
        return f"git+{without_credentials(self.url)}#{branch}:{repo_path}"

    def git_document_prefix(self, branch: str) -> str:
        """What the document paths of this repository's files (below subdir) start with."""
        return self.git_document_path(branch, f"{self.subdir}/" if self.subdir else "")


def without_credentials(url: str) -> str:
    """The URL without ``user:password@``: what may be logged, stored as a document path or shown."""
    return _USERINFO.sub(r"\1", url)


def is_remote(text: str) -> bool:
    """True for anything written as a URL (``scheme://``), which is never a local path."""
    return bool(_SCHEME.match(text.strip()))


def parse_location(text: str) -> Location:
    """The Location of a source string; ValueError naming what is wrong and what would work."""
    text = text.strip()
    if not text:
        raise ValueError("an empty location: give a path, an http(s):// URL or a git+https:// URL")
    match = _SCHEME.match(text)
    if match is None:
        return Location(PATH, text, path=os.path.expanduser(text))
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        return _http(text)
    if scheme.startswith("git+"):
        return _git(text, scheme[4:])
    if scheme == "file":
        return Location(PATH, text, path=os.path.expanduser(urlsplit(text).path))
    raise ValueError(f"{text!r}: unsupported URL scheme {scheme!r}; use a path, an http(s):// URL, or a git "
                     "repository as git+https://, git+ssh:// or git+file://")


def _http(text: str) -> Location:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (a malformed port raises here, not at the first fetch)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid URL: {exc}") from None
    if not parts.hostname:
        raise ValueError(f"{text!r} has no host name")
    return Location(HTTP, text, url=text)


def _git(text: str, transport: str) -> Location:
    if transport not in _GIT_TRANSPORTS:
        raise ValueError(f"{text!r}: unsupported git transport {transport!r}; use git+https://, git+ssh:// "
                         "or git+file://")
    remote, _, fragment = text[4:].partition("#")
    branch, _, subdir = fragment.partition(":")
    try:
        parts = urlsplit(remote)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid URL: {exc}") from None
    if transport == "file":
        if not parts.path or parts.netloc not in ("", "localhost"):
            raise ValueError(f"{text!r}: a git+file:// URL needs an absolute path, e.g. git+file:///srv/repo.git")
    elif not parts.hostname:
        raise ValueError(f"{text!r} has no host name")
    if branch and _BAD_BRANCH.search(branch):
        raise ValueError(f"{text!r}: {branch!r} is not a valid branch name")
    subdir = subdir.strip("/")
    if subdir and any(part in ("", ".", "..") for part in subdir.split("/")):
        raise ValueError(f"{text!r}: the folder {subdir!r} must be a plain path inside the repository")
    return Location(GIT, text, url=remote, branch=branch, subdir=subdir)
