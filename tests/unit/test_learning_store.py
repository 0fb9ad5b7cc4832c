"""The label store: records read back intact; a writer killed with SIGKILL mid-stream loses at most
the record in flight; a torn last line is skipped and counted; corruption elsewhere is an error
naming the file and line; object-storage URIs are refused with the fix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from routers.data.records import COLUMNS
from routers.errors import ConfigError, DataError
from routers.learning.store import LABEL_FIELDS, LabelWriter, ReadStats, read_labels, store_path
from routers.paths import REPO_ROOT


def _rec(i: int, prompt: str = "what is the integral of x squared?") -> dict:
    return {"prompt": f"{prompt} #{i}", "model_a": "strong", "model_b": "weak", "p_b_wins": 0.0, "tie": False,
            "weight": 1.0, "source": "traffic", "request_id": f"r{i}", "router": "linear_static",
            "p_strong": 0.7, "time": 1_700_000_000.0 + i, "kind": "judge", "routed_model": "strong"}


def test_records_read_back_in_the_canonical_form_and_pandas_reads_the_partitions(tmp_path):
    w = LabelWriter(tmp_path)
    for i in range(5):
        w.append(_rec(i))
    w.close()
    df = read_labels(tmp_path)
    assert list(df.columns) == [*COLUMNS, *LABEL_FIELDS] and df["request_id"].tolist() == [f"r{i}" for i in range(5)]
    part = next(tmp_path.glob("date=*/part-*.jsonl"))
    assert len(pd.read_json(part, lines=True)) == 5  # the format as is, no reader of ours needed
    assert oct(part.stat().st_mode & 0o777) == "0o600"  # prompts: owner only


WRITER = """
import sys
from routers.learning.store import LabelWriter
w = LabelWriter(sys.argv[1])
i = 0
while True:
    w.append({"prompt": "p" * 20000 + str(i), "model_a": "s", "model_b": "w", "p_b_wins": 0.5, "tie": True,
              "weight": 1.0, "source": "traffic", "request_id": str(i), "router": "r", "p_strong": 0.5,
              "time": float(i), "kind": "judge", "routed_model": "w"})
    print(i, flush=True)
    i += 1
"""


@pytest.mark.parametrize("kill_after", [3, 40])
def test_a_writer_killed_with_sigkill_loses_at_most_the_record_in_flight(tmp_path, kill_after):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    acked = -1
    try:
        while acked < kill_after:
            line = proc.stdout.readline()
            assert line, "the writer died early"
            acked = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    stats = ReadStats()
    df = read_labels(tmp_path, stats=stats)
    ids = [int(x) for x in df["request_id"]]
    assert ids == list(range(len(ids)))        # no gap, nothing half-written read back
    assert len(ids) >= acked + 1               # every acknowledged record is there
    assert len(ids) <= acked + 2               # at most the one in flight beyond it (plus none invented)
    assert stats.torn_tail <= 1
    assert all(len(p) > 20000 for p in df["prompt"])


def test_a_torn_last_line_is_skipped_and_counted_and_a_new_writer_starts_its_own_file(tmp_path):
    w = LabelWriter(tmp_path)
    w.append(_rec(0))
    w.close()
    with open(w.path, "ab") as fh:
        fh.write(b'{"prompt": "half a rec')  # what a crash mid-write leaves
    w2 = LabelWriter(tmp_path)
    w2.append(_rec(1))
    assert w2.path != w.path
    stats = ReadStats()
    df = read_labels(tmp_path, stats=stats)
    assert df["request_id"].tolist() == ["r0", "r1"] and stats.torn_tail == 1 and stats.files == 2


def test_corruption_before_the_last_line_is_an_error_naming_file_and_line(tmp_path):
    w = LabelWriter(tmp_path)
    w.append(_rec(0))
    with open(w.path, "ab") as fh:
        fh.write(b"garbage\n")
    w.append(_rec(1))
    with pytest.raises(DataError, match=r"part-.*\.jsonl:2: corrupt label record"):
        read_labels(tmp_path)


def test_uris(tmp_path):
    assert store_path(f"file://{tmp_path}") == Path(str(tmp_path))
    with pytest.raises(ConfigError, match="mount the bucket"):
        store_path("s3://bucket/labels")
    with pytest.raises(DataError, match="does not exist"):
        read_labels(tmp_path / "nope")


def test_a_new_day_starts_a_new_partition(tmp_path):
    now = [86400.0 * 20000]
    w = LabelWriter(tmp_path, clock=lambda: now[0])
    w.append(_rec(0))
    now[0] += 86400
    w.append(_rec(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["date=2024-10-04", "date=2024-10-05"]
    assert len(read_labels(tmp_path)) == 2
