"""The durable label store: JSONL partitions in a directory, one append-only file per writer.

    <root>/date=YYYY-MM-DD/part-<host>-<pid>-<random>.jsonl     one JSON object per line

Why JSONL partitions (and not Parquet or SQLite):

- **Crash safety without a server.** Each record is one ``os.write`` of one complete line to a file
  opened with ``O_APPEND``, then ``fsync``. A replica killed mid-write (``kill -9``) can leave at
  most one torn last line in its own file; every earlier line is intact. The reader skips a torn
  *last* line (counted in ``ReadStats.torn_tail``) and refuses corruption anywhere else. Parquet
  cannot be appended to: it would need buffering (records lost on a crash) or one file per record.
- **Many writers, no locks.** Every ingress replica (and every process) writes its own file, so
  replicas on one machine or on a cluster never contend; SQLite's single writer and its locking
  on network file systems are what rule it out for the cluster case.
- **Readable as is.** ``pandas.read_json(path, lines=True)`` and ``ray.data.read_json(root)`` read
  the partitions directly; ``date=`` directories are Hive-style partitions.
- **Labels are few.** A sampled, budget-capped trickle (a few per second at most), so an fsync per
  record costs nothing that matters, and one line per record stays small.

On a cluster the root is a shared file system (NFS, EFS, a Filestore or object-storage mount such
as gcsfuse / mountpoint-s3 with append support); ``file://`` URIs are accepted. Object-storage URIs
(``s3://``) are refused with that advice: objects cannot be appended to.

Records are dicts in the canonical preference form (``routers.data.records.COLUMNS``) plus the
traffic fields ``LABEL_FIELDS``.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from routers.data.records import COLUMNS
from routers.errors import ConfigError, DataError

#: Fields every stored label carries besides the canonical ``COLUMNS``.
LABEL_FIELDS = ("request_id", "router", "p_strong", "time", "kind", "routed_model")
#: ``kind`` values: a judged pair of answers, or a user's verdict on one answer.
KINDS = ("judge", "feedback")


def store_path(uri: str | Path) -> Path:
    """A local path for ``uri`` (a path or ``file://`` URI); other schemes are refused."""
    text = str(uri)
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme != "file":
            raise ConfigError(
                f"label store {text!r}: {scheme}:// URIs are not supported (objects cannot be appended to); "
                "mount the bucket (e.g. gcsfuse, mountpoint-s3) or use a shared file system and give its path")
        text = rest
    return Path(text).expanduser()


class LabelWriter:
    """Appends records to this process's own partition file (thread-safe, one fsync per record)."""

    def __init__(self, root: str | Path, fsync: bool = True, clock=time.time) -> None:
        self.root = store_path(root)
        self.fsync = fsync
        self._clock = clock
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._day: str | None = None
        self.path: Path | None = None
        self.written = 0

    def _open(self, day: str) -> int:
        if self._fd is not None:
            os.close(self._fd)
        part = self.root / f"date={day}"
        part.mkdir(parents=True, exist_ok=True)
        host = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-_")[:40] or "host"
        self.path = part / f"part-{host}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._day = day
        return self._fd

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line; returns once it is on disk (``fsync``)."""
        line = (json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n").encode()
        day = time.strftime("%Y-%m-%d", time.gmtime(self._clock()))
        with self._lock:
            fd = self._fd if self._day == day else self._open(day)
            view = memoryview(line)
            while view:  # one write almost always; a short write continues the same line
                n = os.write(fd, view)
                view = view[n:]
            if self.fsync:
                os.fsync(fd)
            self.written += 1

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


@dataclass
class ReadStats:
    files: int = 0
    records: int = 0
    torn_tail: int = 0
    torn_files: list[str] = field(default_factory=list)


def read_labels(root: str | Path, kinds: tuple[str, ...] = KINDS, stats: ReadStats | None = None) -> pd.DataFrame:
    """Every stored record as a DataFrame (canonical columns + ``LABEL_FIELDS``), oldest first.

    A torn last line of a file (a writer killed mid-write) is skipped and counted in ``stats``; an
    unreadable line anywhere else raises ``DataError`` naming the file and line."""
    path = store_path(root)
    if not path.is_dir():
        raise DataError(f"label store {str(path)!r} does not exist; collect labels first "
                        "(learning.collect in serve_config.yaml) or check the path")
    stats = stats if stats is not None else ReadStats()
    rows: list[dict[str, Any]] = []
    for f in sorted(path.glob("date=*/part-*.jsonl")):
        stats.files += 1
        data = f.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # text after the last newline: never finished
        if tail.strip():
            stats.torn_tail += 1
            stats.torn_files.append(str(f))
        for n, raw in enumerate(complete, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DataError(f"{f}:{n}: corrupt label record ({exc}); move the file aside to read the rest") from None
            if not isinstance(rec, dict):
                raise DataError(f"{f}:{n}: a label record must be a JSON object")
            rows.append(rec)
    stats.records = len(rows)
    cols = [*COLUMNS, *LABEL_FIELDS]
    df = pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame({c: [] for c in cols})
    df = df[df["kind"].isin(kinds)] if rows else df
    return df.sort_values("time", kind="stable").reset_index(drop=True)
