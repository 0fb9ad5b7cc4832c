"""Smoke test of `rayroute loadtest` against a small real HTTP server on 127.0.0.1.

The load test runs in a subprocess: locust monkey-patches the standard library with gevent, which
must not leak into the pytest process (Ray tests run there too).
"""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.loadtest import LoadTestError, check_loopback, make_targets


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.endswith("/v1/route"):
            routed = "strong-x" if len(body["messages"][0]["content"]) % 2 else "weak-y"
            payload = json.dumps({"routed_model": routed}).encode()
            self.send_response(200 if body["model"] != "router-broken" else 500)
            self.send_header("x-routed-model", routed)
        else:
            payload = b'{"error": {"message": "nope"}}'
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def _run(args, tmp_path):
    return subprocess.run(
        [sys.executable, "-m", "cli", "loadtest", *args, "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )


def test_route_vs_noop_bounded_by_requests(server, tmp_path):
    out = _run(["--url", server, "--mode", "route-vs-noop", "--concurrency", "4", "--requests", "60", "--slice-s", "0",
                "--duration-s", "30"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "loadtest-route-vs-noop.json").read_text())
    t = summary["targets"]
    assert set(t) == {"route", "noop"}
    assert t["route"]["errors"] == 0 and t["route"]["ok"] >= 25
    assert set(t["route"]["routed_model_split"]) <= {"strong-x", "weak-y"}
    assert sum(t["route"]["routed_model_split"].values()) == t["route"]["ok"]
    assert summary["comparison"]["throughput_ratio"] > 0
    assert (tmp_path / "loadtest-route-vs-noop.png").stat().st_size > 1000
    # stopped by the request bound, well before the duration bound
    assert sum(x["requests"] for x in t.values()) < 80 and summary["duration_s"] < 30


def test_errors_are_counted_not_fatal(server, tmp_path):
    out = _run(["--url", server, "--mode", "route", "--model", "router-broken", "--concurrency", "2",
                "--duration-s", "2", "--fail-on-error"], tmp_path)
    assert out.returncode == 1
    summary = json.loads((tmp_path / "loadtest-route.json").read_text())
    assert summary["targets"]["route"]["errors"] == summary["targets"]["route"]["requests"] > 0
    assert summary["targets"]["route"]["errors_by_kind"] == {"500": summary["targets"]["route"]["requests"]}


def test_refuses_non_loopback_and_bad_args():
    with pytest.raises(LoadTestError, match="loopback"):
        check_loopback("http://10.0.0.1:8000")
    with pytest.raises(LoadTestError, match="http"):
        check_loopback("ftp://127.0.0.1")
    assert check_loopback("http://localhost:8000") == "localhost"
    with pytest.raises(LoadTestError, match="direct-model"):
        make_targets("chat-vs-direct", "router-mf", None, "/noop", 8)
    with pytest.raises(LoadTestError, match="unknown mode"):
        make_targets("smoke", "router-mf", None, "/noop", 8)


def test_time_slices_measure_each_target_alone(server, tmp_path):
    out = _run(["--url", server, "--mode", "route-vs-noop", "--concurrency", "2", "--duration-s", "4",
                "--slice-s", "1"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "loadtest-route-vs-noop.json").read_text())
    assert summary["slice_s"] == 1
    for t in summary["targets"].values():
        assert t["ok"] > 0 and t["errors"] == 0
        # throughput over the target's own slices (about half the run), not the whole run
        assert t["throughput_rps"] > t["ok"] / summary["duration_s"] * 1.5


def test_prompt_stream_repeats_only_prompts_already_sent():
    from bench.loadtest import PromptStream

    prompts = [f"p{i}" for i in range(1000)]
    plain = PromptStream(prompts[:3])
    assert [plain.next() for _ in range(7)] == ["p0", "p1", "p2", "p0", "p1", "p2", "p0"]
    stream = PromptStream(prompts, repeat_share=0.6, seed=1)
    sent, repeats = [], 0
    for _ in range(2000):
        p = stream.next()
        if p in sent:
            repeats += 1
        else:  # a fresh prompt is always the next one in order
            assert p == f"p{len(set(sent))}"
        sent.append(p)
    assert abs(repeats / 2000 - 0.6) < 0.05
    with pytest.raises(LoadTestError, match="repeat_share"):
        PromptStream(prompts, repeat_share=1.0)
    with pytest.raises(LoadTestError, match="no prompts"):
        PromptStream([])


def test_repeat_share_is_reported_and_bad_values_are_one_line_errors(server, tmp_path):
    out = _run(["--url", server, "--mode", "route", "--concurrency", "2", "--requests", "40",
                "--repeat-share", "0.5"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "loadtest-route.json").read_text())
    assert summary["repeat_share"] == 0.5 and summary["targets"]["route"]["ok"] >= 40
    bad = _run(["--url", server, "--mode", "route", "--requests", "4", "--repeat-share", "1.5"], tmp_path)
    assert bad.returncode == 2 and "repeat_share must be in [0, 1), got 1.5" in bad.stderr
    assert "Traceback" not in bad.stderr
