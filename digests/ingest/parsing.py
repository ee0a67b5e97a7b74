"""Reading and parsing documents in the walk's order, here or in worker processes.

The main process walks, reads, hashes and skips what is unchanged; decoding, parsing and
normalising (three quarters of an ingest's CPU time on SQLite) may run in a pool of worker
processes. Outcomes come back in the walk's order whatever the number of workers, and the caller
stores them in that order, so ``jobs`` changes how fast an ingest is, never what it stores.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from digests.errors import ParseError
from digests.ingest.decode import decode_document
from digests.ingest.normalize import fingerprinted_items, normalise_item
from digests.ingest.walk import READ_ERRORS, Source
from digests.items import ParsedItem
from digests.parsers import parse_document

# The pool starts only after this many documents were parsed here: a refresh's few documents
# never pay its start (about half a second: a fresh interpreter importing the parsers).
POOL_AFTER = 64
# Documents a worker parses per task (~0.1 s: the pool's feeder thread, which hands each worker
# its next task, then matters little even on a busy machine); documents read and sent ahead of
# the one the caller takes.
# The caller stops taking while it writes a batch (SQLite: 1-3 s for 5,000 new documents, a third
# of an ingest), and the workers go on only with what was sent before: 2,048 documents keep two
# busy through most of a write, for some 50 MB of documents and items held ahead.
_CHUNK = 64
_READ_AHEAD = 2048

# (format, items the parser gave, (fingerprint, item) of the first item of each key), or why not.
ParseResult = tuple[str, int, list[tuple[str, ParsedItem]]] | str


@dataclass(slots=True)
class Failed:
    """A document that cannot be stored: why, and its hash when it was read."""

    reason: str
    digest: str | None = None


@dataclass(slots=True)
class Unchanged:
    """A document stored before with the same content and no error."""


@dataclass(slots=True)
class Parsed:
    """A document read and parsed."""

    digest: str
    size: int
    result: tuple[str, int, list[tuple[str, ParsedItem]]]


Outcome = Failed | Unchanged | Parsed


@dataclass(slots=True)
class _Read:
    path: str
    digest: str
    data: bytes


def parse_bytes(path: str, data: bytes, tags: Sequence[str] = ()) -> ParseResult:
    """Decode, parse and normalise one document's bytes; the reason as a string when it fails."""
    try:
        text = decode_document(data)
        fmt, parsed = parse_document(text, path=path)
        parsed = [normalise_item(item) for item in parsed]
        parsed = [item for item in parsed if item.title and item.url]
        for item in parsed if tags else ():  # after normalising, which keeps only a column's own tags
            item.tags = [*item.tags, *(tag for tag in tags if tag not in item.tags)]
    except ParseError as exc:
        return str(exc)
    except RecursionError:
        return "document is nested too deeply to parse"
    return fmt, len(parsed), fingerprinted_items(parsed)


def _parse_chunk(reads: list[tuple[str, bytes]], tags: Sequence[str]) -> list[ParseResult]:
    return [parse_bytes(path, data, tags) for path, data in reads]


def read_source(source: Source, unchanged: dict[str, str], max_bytes: int) -> _Read | Outcome:
    """Read and hash one document: what to parse, or its outcome already (too large, unreadable,
    unchanged: ``unchanged`` holds the hash of every path stored without an error)."""
    if source.size > max_bytes:
        return Failed(f"too large: {source.size / 1048576:.1f} MB, the limit is {max_bytes / 1048576:.1f} MB "
                      "(archive.max_document_bytes)")
    try:
        data = source.read()
    except READ_ERRORS as exc:
        return Failed(f"cannot read: {exc}")
    digest = hashlib.sha256(data).hexdigest()
    if unchanged.get(source.path) == digest:
        return Unchanged()
    return _Read(source.path, digest, data)


def _outcome(read: _Read, result: ParseResult) -> Outcome:
    if isinstance(result, str):
        return Failed(result, read.digest)
    return Parsed(read.digest, len(read.data), result)


def outcomes(sources: Iterable[Source | tuple[str, str]], unchanged: dict[str, str], *, max_bytes: int,
             tags: Sequence[str] = (), jobs: int = 1) -> Iterator[tuple[str, Outcome]]:
    """Each source's path with its outcome, in order ((path, reason): that failure); parsed by
    ``jobs`` worker processes once POOL_AFTER documents were parsed here (jobs 1: all here)."""
    sources = iter(sources)
    parsed_here = 0
    for source in sources:
        if isinstance(source, tuple):
            yield source[0], Failed(source[1])
            continue
        read = read_source(source, unchanged, max_bytes)
        if isinstance(read, _Read):
            yield source.path, _outcome(read, parse_bytes(read.path, read.data, tags))
            parsed_here += 1
            if jobs > 1 and parsed_here >= POOL_AFTER:
                yield from _pooled(sources, unchanged, max_bytes, tags, jobs)
                return
        else:
            yield source.path, read


@dataclass(slots=True)
class _Queued:
    """A source waiting its turn: its outcome, or its read and, once sent, its task and place in it."""

    path: str
    outcome: Outcome | None = None
    read: _Read | None = None
    task: Future[list[ParseResult]] | None = None
    index: int = 0


def _pooled(sources: Iterator[Source | tuple[str, str]], unchanged: dict[str, str], max_bytes: int,
            tags: Sequence[str], jobs: int) -> Iterator[tuple[str, Outcome]]:
    """The rest of the sources, parsed by a pool: read ahead by at most _READ_AHEAD documents,
    handed back in order as each chunk's results arrive."""
    # forkserver: workers are forked from a clean server process, never from this one, which may
    # hold threads (the bot's) and open database connections; it imports the parsers once.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    queue: deque[_Queued] = deque()
    chunk: list[_Queued] = []
    in_flight = 0  # tasks sent whose results are not all handed back
    # A worker that dies (killed, out of memory) fails its task with BrokenProcessPool: the
    # ingest stops with that error, as an unexpected error in a parser stops it in one process.
    pool = ProcessPoolExecutor(jobs, mp_context=context)
    try:

        def send() -> None:
            nonlocal chunk, in_flight
            task = pool.submit(_parse_chunk, [(q.read.path, q.read.data) for q in chunk if q.read], tags)
            for index, queued in enumerate(chunk):
                queued.task, queued.index = task, index
            chunk, in_flight = [], in_flight + 1

        def hand_back(queued: _Queued) -> tuple[str, Outcome]:
            nonlocal in_flight
            if queued.outcome is not None:
                return queued.path, queued.outcome
            if queued.task is None:  # its chunk is still being filled
                send()
            assert queued.task is not None and queued.read is not None
            results = queued.task.result()
            if queued.index == len(results) - 1:
                in_flight -= 1
            return queued.path, _outcome(queued.read, results[queued.index])

        for source in sources:
            if isinstance(source, tuple):
                queue.append(_Queued(source[0], outcome=Failed(source[1])))
                continue
            read = read_source(source, unchanged, max_bytes)
            if isinstance(read, _Read):
                queue.append(queued := _Queued(source.path, read=read))
                chunk.append(queued)
                if len(chunk) >= _CHUNK:
                    send()
            else:
                queue.append(_Queued(source.path, outcome=read))
            while in_flight * _CHUNK >= _READ_AHEAD:
                yield hand_back(queue.popleft())
        while queue:
            yield hand_back(queue.popleft())
    finally:
        # A caller that stops early (an error while storing) does not wait for the documents read ahead.
        pool.shutdown(wait=True, cancel_futures=True)
