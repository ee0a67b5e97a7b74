"""Git repositories through the git binary: cloned once (bare, shallow), fetched, diffed between commits."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from digests.errors import DigestError
from digests.source_locations import Location, without_credentials

_KEPT = "refs/digestbot/ingested"  # keeps the last ingested commit's objects from garbage collection
_REGULAR_FILES = ("100644", "100755")
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


class GitError(DigestError):
    """A git command failed; the message carries git's own last words."""


@dataclass(frozen=True, slots=True)
class GitFile:
    """A regular file of a commit: its path in the repository, blob id and size."""

    path: str
    sha: str
    size: int


@dataclass(frozen=True, slots=True)
class GitUpdate:
    """What changed on the branch: the files to read and the paths gone, since the given commit.

    ``full`` means ``files`` is the whole tree (a first clone, or a commit we no longer have).
    """

    commit: str
    branch: str
    files: list[GitFile]
    deleted: list[str]
    full: bool


class GitRepository:
    """One remote repository and its bare clone below cache_dir."""

    def __init__(self, location: Location, cache_dir: str | Path, *, timeout: float = 600.0,
                 proxy: str | None = None) -> None:
        self.location = location
        name = _SLUG.sub("-", without_credentials(location.url).rstrip("/").rsplit("/", 1)[-1])[-40:] or "repo"
        digest = hashlib.sha1(location.url.encode()).hexdigest()[:12]
        self.dir = Path(cache_dir).expanduser() / f"{name}-{digest}"
        self.timeout = timeout
        self.proxy = proxy

    # -- running git

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Never wait for a password or a host-key question: an unattended fetch fails at once instead.
        env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", SSH_ASKPASS="true", LC_ALL="C",
                   GIT_SSH_COMMAND=env.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=30"))
        return env

    def _git(self, *args: str, cwd: Path | None = None, stdin: bytes | None = None, what: str = "") -> bytes:
        options = ["-c", f"http.proxy={self.proxy}"] if self.proxy else []
        command = ["git", *options, *args]
        try:
            done = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, env=self._env(),
                                  timeout=self.timeout, check=False)
        except FileNotFoundError:
            raise GitError("the git program is not installed; git+ sources need it") from None
        except subprocess.TimeoutExpired:
            raise GitError(f"git {what or args[0]} took longer than {self.timeout:.0f} s (fetch.git_timeout)") from None
        if done.returncode != 0:
            raise GitError(f"git {what or args[0]} failed: {_last_words(done.stderr)}")
        return done.stdout

    def _in_repo(self, *args: str, stdin: bytes | None = None, what: str = "") -> bytes:
        return self._git(*args, cwd=self.dir, stdin=stdin, what=what)

    # -- clone and fetch

    def _clone(self) -> None:
        """A bare, shallow clone of just the branch, made aside and moved in place: never half a clone."""
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        partial = self.dir.with_name(f"{self.dir.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        branch = ["--branch", self.location.branch] if self.location.branch else []
        base = ["clone", "--bare", "--single-branch", "--no-tags", *branch]
        try:
            try:
                self._git(*base, "--depth", "1", "--", self.location.url, str(partial), what="clone")
            except GitError as exc:
                if "shallow" not in str(exc).lower():
                    raise
                shutil.rmtree(partial, ignore_errors=True)  # a server that cannot do shallow clones
                self._git(*base, "--", self.location.url, str(partial), what="clone")
            os.replace(partial, self.dir)
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def _branch(self) -> str:
        if self.location.branch:
            return self.location.branch
        head = self._in_repo("symbolic-ref", "--short", "HEAD", what="symbolic-ref").decode().strip()
        return head.removeprefix("heads/")

    def update(self, since: str | None) -> GitUpdate:
        """Clone or fetch, then list what changed since the commit ``since`` (None: everything)."""
        if not (self.dir / "HEAD").is_file():
            self._clone()
            branch = self._branch()
        else:
            branch = self._branch()
            self._in_repo("fetch", "--no-tags", "--", "origin", f"+refs/heads/{branch}:refs/heads/{branch}",
                          what="fetch")
        commit = self._in_repo("rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}",
                               what="rev-parse").decode().strip()
        if since == commit:
            return GitUpdate(commit, branch, [], [], full=False)
        if since and self._has_commit(since):
            files, deleted = self._changes(since, commit)
            return GitUpdate(commit, branch, files, deleted, full=False)
        return GitUpdate(commit, branch, self._tree(commit), [], full=True)

    def mark_ingested(self, commit: str) -> None:
        """Keep this commit (the base of the next diff) reachable in the clone."""
        self._in_repo("update-ref", _KEPT, commit, what="update-ref")

    def _has_commit(self, commit: str) -> bool:
        try:
            self._in_repo("cat-file", "-e", f"{commit}^{{commit}}", what="cat-file")
        except GitError:
            return False
        return True

    def _pathspec(self) -> list[str]:
        return ["--", f"{self.location.subdir}/"] if self.location.subdir else []

    def _tree(self, commit: str) -> list[GitFile]:
        out = self._in_repo("ls-tree", "-r", "-z", "--long", "--full-tree", commit, *self._pathspec(),
                            what="ls-tree")
        files = []
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, sha, size = meta.split()
            if kind == b"blob" and mode.decode() in _REGULAR_FILES:
                files.append(GitFile(_path(raw_path), sha.decode(), int(size)))
        return files

    def _changes(self, old: str, new: str) -> tuple[list[GitFile], list[str]]:
        out = self._in_repo("diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", "--raw", old, new,
                            *self._pathspec(), what="diff-tree")
        fields = out.split(b"\0")
        changed: list[tuple[str, str]] = []
        deleted: list[str] = []
        for meta, raw_path in zip(fields[0::2], fields[1::2], strict=False):
            if not meta.startswith(b":"):
                continue
            _old_mode, new_mode, _old_sha, new_sha, status = meta[1:].decode().split()
            path = _path(raw_path)
            if status.startswith("D") or new_mode not in _REGULAR_FILES:
                deleted.append(path)  # gone, or no longer a regular file (a symlink, a submodule)
            else:
                changed.append((path, new_sha))
        return [GitFile(path, sha, size) for (path, sha), size in zip(changed, self._sizes([s for _, s in changed]),
                                                                       strict=True)], deleted

    def _sizes(self, shas: Sequence[str]) -> list[int]:
        if not shas:
            return []
        out = self._in_repo("cat-file", "--batch-check", stdin="".join(f"{sha}\n" for sha in shas).encode(),
                            what="cat-file")
        return [int(line.split()[2]) for line in out.decode().splitlines()]

    def blobs(self) -> BlobReader:
        """A reader of blobs by id, one git process for all of them (a process per file costs more than the file)."""
        return BlobReader(self)


class BlobReader:
    """``git cat-file --batch``, kept open while ingest reads the files one after another."""

    def __init__(self, repository: GitRepository) -> None:
        self.repository = repository
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BlobReader:
        try:
            self.process = subprocess.Popen(["git", "cat-file", "--batch"], cwd=self.repository.dir,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, env=self.repository._env())
        except FileNotFoundError:
            raise GitError("the git program is not installed; git+ sources need it") from None
        return self

    def read(self, sha: str) -> bytes:
        process = self.process
        assert process is not None and process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(f"{sha}\n".encode())
            process.stdin.flush()
            header = process.stdout.readline().split()
        except (BrokenPipeError, OSError) as exc:
            raise OSError(f"git cat-file stopped: {exc}") from None
        if len(header) != 3:
            raise OSError(f"git has no object {sha}")
        data = process.stdout.read(int(header[2]))
        process.stdout.read(1)  # the newline after each object
        return data

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        process = self.process
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _path(raw: bytes) -> str:
    """A repository path as text; a name that is not UTF-8 keeps its bytes visible as \\xNN."""
    return raw.decode("utf-8", "backslashreplace")


def _last_words(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    message = " ".join(fatal) if fatal else (lines or ["no message"])[-1]
    return without_credentials_in(message)


def without_credentials_in(text: str) -> str:
    """git's messages quote the URL: any user:token@ in it is masked."""
    return re.sub(r"(://)[^/@\s']+@", r"\1***@", text)
