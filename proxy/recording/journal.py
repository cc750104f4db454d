"""The recorder's journal: every finished record is on disk before it is in the database.

Each worker appends each record, as one JSON line, to its current *segment* file
as the request ends, before the response's last bytes are sent (a ``write`` to
the page cache, which survives the process being killed). When the recorder takes a batch it starts a new segment,
fsyncs the old one, and writes the batch to the database; once the database
has it, the old segment is deleted. So:

- if the database is down, the segments stay, and are replayed when it returns;
- after ``kill -9``, the next worker to start replays the segments of any worker
  that no longer holds its lock file.

Replays are idempotent: a request id already in the database is skipped, and
spend is charged only for the rows actually inserted. The journal is bounded;
past ``max_bytes`` it stops taking records and says so loudly.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from proxy.limits.ledger import Charge
from proxy.recording.deferred import Deferred, as_json, from_json
from proxy.recording.records import UsageRecord

logger = logging.getLogger("tollgate.journal")

_TIME_FIELDS = ("started_at", "ended_at")
SET_ASIDE_FILE = "set-aside.ndjson"  # records the database refused, kept for a person to look at


@dataclass(frozen=True, slots=True)
class Entry:
    """One finished request: its record, the spend it adds to limit counters, and usage it defers or completes."""

    record: UsageRecord
    charges: tuple[Charge, ...] = ()
    deferred: Deferred | None = None


class Journal:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        self.holder = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Held for the life of the process: a segment whose holder's lock is free belongs to a dead worker.
        self._lock = os.open(self.directory / f"{self.holder}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._sequence = 0
        self._size = sum(p.stat().st_size for p in self.directory.glob("*.jsonl"))
        self._full = False
        self.failing: str | None = None
        """Why the last append could not be written (a full disk, say), or None while appends work."""
        self._fd = -1
        self._segment_size = 0
        self._path = self._open_segment()

    def _open_segment(self) -> Path:
        self._sequence += 1
        path = self.directory / f"{self.holder}-{self._sequence:08d}.jsonl"
        self._fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        self._segment_size = 0
        return path

    def append(self, record: UsageRecord, charges: Sequence[Charge] = (), deferred: Deferred | None = None) -> bool:
        """Put a finished record on disk (no fsync: that is per batch, in ``seal``); False if it could not be.

        Never raises: a disk that is full or failing makes the caller write the record through to the
        database instead (see ``Recorder.submit``).
        """
        return self.append_lines(_line(Entry(record, tuple(charges), deferred)))

    def append_entries(self, entries: Sequence[Entry]) -> bool:
        """Put several finished records on disk in one write (see ``append``)."""
        return self.append_lines(b"".join(_line(entry) for entry in entries)) if entries else True

    def append_lines(self, line: bytes) -> bool:
        if self._size + len(line) > self.max_bytes:
            if not self._full:
                self._full = True
                logger.error(
                    "JOURNAL FULL: %s holds %d bytes of records the database has not taken; new records are kept in "
                    "memory only until it drains. Check the database.",
                    self.directory,
                    self._size,
                )
            return False
        # Written at once, before the response's last bytes go out: once the client has its answer, the
        # record is in the page cache, which survives the process being killed.
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "short write")
        except OSError as exc:
            self._failed(exc)
            return False
        self._size += len(line)
        self._segment_size += len(line)
        if self.failing is not None:
            logger.warning("journal %s is writable again", self.directory)
            self.failing = None
        return True

    def _failed(self, error: OSError) -> None:
        # Cut off a torn line, so that the next record starts on a line of its own.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._segment_size)
        reason = f"{errno.errorcode.get(error.errno or 0, 'error')}: {error.strerror or error}"
        if self.failing is None:
            logger.error(
                "JOURNAL WRITE FAILED in %s (%s): records are written straight to the database before each "
                "answer goes out, until the journal can be written again. Free the disk.",
                self.directory,
                reason,
            )
        self.failing = reason

    def set_aside(self, entry: Entry) -> Path:
        """Keep a record the database refuses in ``set-aside.ndjson``, in the journal's line format."""
        path = self.directory / SET_ASIDE_FILE
        with path.open("ab") as file:
            file.write(_line(entry))
        return path

    @property
    def full(self) -> bool:
        return self._full

    def seal(self) -> Path:
        """Start a new segment; return the old one, with everything appended so far."""
        old_fd, old_path = self._fd, self._path
        self._path = self._open_segment()
        os.close(old_fd)
        return old_path

    def discard(self, segment: Path) -> None:
        """The database has every record of ``segment``."""
        with contextlib.suppress(FileNotFoundError):
            size = segment.stat().st_size
            segment.unlink()
            self._size -= size
        if self._full and self._size < self.max_bytes // 2:
            self._full = False
            logger.warning("journal drained: %s is taking records again", self.directory)

    def orphans(self) -> list[Path]:
        """Segments of workers that are gone (their lock is free), oldest first."""
        found: list[Path] = []
        for lock in self.directory.glob("*.lock"):
            holder = lock.stem
            if holder == self.holder:
                continue
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            finally:
                os.close(fd)
            segments = sorted(self.directory.glob(f"{holder}-*.jsonl"))
            found.extend(segments)
            if not segments:
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
        return found

    def forget_holder(self, segment: Path) -> None:
        """Remove a dead worker's lock file once its last segment is replayed."""
        holder = segment.name.rsplit("-", 1)[0]
        if not any(self.directory.glob(f"{holder}-*.jsonl")):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{holder}.lock").unlink()

    def close(self) -> None:
        os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            if self._path.stat().st_size == 0:
                self._path.unlink()
        os.close(self._lock)
        if not any(self.directory.glob(f"{self.holder}-*.jsonl")):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{self.holder}.lock").unlink()

    def close_inherited(self) -> None:
        """In a forked child: close the descriptors it inherited, leaving the files and the lock to the parent."""
        os.close(self._fd)
        os.close(self._lock)


def _line(entry: Entry) -> bytes:
    data: dict[str, Any] = {
        "record": entry.record,
        "charges": [(c.counter_key, c.pico, c.leased) for c in entry.charges],
    }
    if entry.deferred is not None:
        data["deferred"] = as_json(entry.deferred)
    return orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE)


def read_segment(path: Path, *, own: bool) -> Iterator[Entry]:
    """The entries of a segment; a torn last line (the process died mid-write) is skipped.

    Charges of another worker's segment are replayed as not leased: its leases are its own.
    """
    with path.open("rb") as file:
        for number, line in enumerate(file, 1):
            try:
                data: dict[str, Any] = orjson.loads(line)
                fields = dict(data["record"])
                for name in _TIME_FIELDS:
                    fields[name] = datetime.fromisoformat(fields[name])
                record = UsageRecord(**fields)
                charges = tuple(Charge(key, int(pico), bool(leased) and own) for key, pico, leased in data["charges"])
                deferred = from_json(data["deferred"]) if "deferred" in data else None
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                logger.error("journal %s line %d is unreadable; skipped", path.name, number)
                continue
            yield Entry(record, charges, deferred)
