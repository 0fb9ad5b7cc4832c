"""The measurements: ``rayroute bench-routers`` (in-process scoring speed), ``bench-ceiling`` (the
compute bound of MiniLM here), ``loadtest`` (a running ingress) and ``bench-overhead`` (routing
overhead through Serve, router app vs the no-op app) and ``bench-nway`` (N-way routing's decision
time in process)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from routers.paths import REPO_ROOT


def _bench_routers_cmd(args: argparse.Namespace) -> int:
    from bench.router_speed import bench_routers

    bench_routers(
        routers=args.routers.split(","), batch_sizes=[int(b) for b in args.batches.split(",")],
        n_prompts=args.prompts, embedders=args.embedders.split(","), price_per_hour=args.price_per_hour,
        sw_reference_queries=args.sw_reference_queries, threads=args.threads, out=args.out,
        device=args.device, embed_batch=args.embed_batch, prompts_file=args.prompts_file,
        reference_embeddings=args.reference_embeddings, save_embeddings=args.save_embeddings,
        command=args.command_line,
    )
    return 0


def _bench_ceiling_cmd(args: argparse.Namespace) -> int:
    from bench.ceiling import ceiling, markdown
    from bench.router_speed import real_prompts

    if args.prompts_file:
        from routers.calibration import read_prompts

        prompts = read_prompts(args.prompts_file, "prompt")[:args.prompts]
    else:
        prompts = real_prompts(args.prompts)
    result = {"command": args.command_line,
              **ceiling(prompts, rows=[int(r) for r in args.rows.split(",")], int8=not args.no_int8,
                        min_time_s=args.min_time_s, threads=args.threads, measure=not args.no_measure)}
    md = markdown(result)
    print(md, end="")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(md)
    return 0


def _loadtest_cmd(args: argparse.Namespace) -> int:
    from bench.loadtest import LoadTestError

    try:
        return _run_loadtest(args)
    except LoadTestError as exc:  # bad arguments: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run_loadtest(args: argparse.Namespace) -> int:
    from bench.loadtest import ingress_key, loadtest

    api_key = ingress_key(args.api_key_env)
    summary = loadtest(
        url=args.url, mode=args.mode, model=args.model, direct_model=args.direct_model,
        noop_prefix=args.noop_prefix, concurrency=args.concurrency, duration_s=args.duration_s,
        max_requests=args.requests, rate_per_s=args.rate, max_tokens=args.max_tokens,
        out_dir=args.out, api_key=api_key, warmup_requests=args.warmup, slice_s=args.slice_s,
        repeat_share=args.repeat_share,
    )
    for name, t in summary["targets"].items():
        lat = t["latency_ms"]
        print(f"{name:12s} n={t['requests']:6d} errors={t['errors']:4d} {t['throughput_rps']:8.1f} req/s  "
              f"p50 {lat['p50']:7.1f} ms  p95 {lat['p95']:7.1f} ms  p99 {lat['p99']:7.1f} ms  "
              f"routed {t['routed_model_split']}")
    if "comparison" in summary:
        c = summary["comparison"]
        print(f"{c['a']} vs {c['b']}: p50 difference {c['p50_difference_ms']:+.1f} ms, "
              f"throughput ratio {c['throughput_ratio'] or float('nan'):.2f}, p99 ratio {c['p99_ratio'] or float('nan'):.2f}")
    total_errors = sum(t["errors"] for t in summary["targets"].values())
    return 1 if total_errors and args.fail_on_error else 0


def _bench_overhead_cmd(ns: argparse.Namespace) -> int:
    from bench.loadtest import LoadTestError

    try:
        _run_bench_overhead(ns)
    except LoadTestError as exc:  # bad arguments: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run_bench_overhead(ns: argparse.Namespace) -> None:
    from bench.overhead import bench_overhead

    bench_overhead(config=ns.config, router=ns.router, concurrency=ns.concurrency, duration_s=ns.duration_s,
                   warmup=ns.warmup, modes=tuple(ns.modes.split(",")), chat_concurrency=ns.chat_concurrency,
                   chat_max_tokens=ns.max_tokens, throughput_optimized=not ns.default_settings,
                   max_ongoing_requests=None if ns.default_settings else ns.max_ongoing_requests,
                   out_dir=ns.out, score_cache_entries=ns.score_cache_entries, repeat_share=ns.repeat_share,
                   slice_s=ns.slice_s, runs=ns.runs, command=ns.command_line)


def add_cli(sub) -> None:
    from bench.loadtest import MODES  # a constant: cheap, no load-test machinery is imported

    p = sub.add_parser("bench-routers", help="in-process router scoring speed, cost per million decisions (Table 7)")
    p.add_argument("--routers", default="random,length,mf,sw_ranking,mf_static,sw_static,bert,causal_llm")
    p.add_argument("--batches", default="1,8,32,128")
    p.add_argument("--prompts", type=int, default=512, help="real prompts per measurement")
    p.add_argument("--embedders", default="all-MiniLM-L6-v2,onnx,onnx-int8",
                   help="embedding paths for mf/sw_ranking; the first is the reference for decision agreement")
    p.add_argument("--price-per-hour", type=float, default=0.39, help="machine price in $/hour (paper: 0.39 for 8 vCPU)")
    p.add_argument("--sw-reference-queries", type=int, default=20, help="queries timed with RouteLLM's SW method (0: skip)")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--device", default="cpu", help="torch device of the embedders and bert, e.g. cuda")
    p.add_argument("--embed-batch", type=int, help="embedder micro-batch (default: the embedder's own, 8)")
    p.add_argument("--prompts-file", help="JSONL with a 'prompt' field instead of the shared benchmark prompts")
    p.add_argument("--reference-embeddings", help=".npy of the same prompts embedded elsewhere (see "
                   "--save-embeddings): adds a decision-agreement row against it")
    p.add_argument("--save-embeddings", help="write the first embedder's vectors of the prompts here (.npy)")
    p.set_defaults(func=_bench_routers_cmd)

    p = sub.add_parser("bench-ceiling", help="upper bound on MiniLM routers' prompts/s here: counted FLOPs "
                       "over measured GEMM rates")
    p.add_argument("--prompts", type=int, default=512, help="real prompts to count")
    p.add_argument("--prompts-file", help="JSONL with a 'prompt' field instead of the shared benchmark prompts")
    p.add_argument("--rows", default="256,512,1024,2048", help="GEMM row counts to time (tokens per call)")
    p.add_argument("--min-time-s", type=float, default=0.3, help="seconds per timing window")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--no-int8", action="store_true", help="skip the dynamic int8 GEMMs")
    p.add_argument("--no-measure", action="store_true", help="skip timing the real MiniLM embedder")
    p.add_argument("--out", help="write the results as JSON here (and the table as .md beside it)")
    p.set_defaults(func=_bench_ceiling_cmd)

    p = sub.add_parser("loadtest", help="load-test a running ingress on a loopback address (bounded; JSON + PNG)")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="ingress base URL (loopback only)")
    p.add_argument("--mode", choices=MODES, default="route")
    p.add_argument("--model", default="router-random", help="model string sent, e.g. router-mf-0.5")
    p.add_argument("--direct-model", help="weak model's served name, for chat-vs-direct")
    p.add_argument("--noop-prefix", default="/noop", help="route prefix of the no-op app, for route-vs-noop")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent closed-loop users")
    p.add_argument("--duration-s", type=float, default=30.0, help="stop after this many seconds")
    p.add_argument("--requests", type=int, help="stop after this many requests")
    p.add_argument("--rate", type=float, help="target total request rate per second (default: as fast as possible)")
    p.add_argument("--slice-s", type=float, default=5.0,
                   help="comparisons: seconds per target before switching to the next (0: alternate per request)")
    p.add_argument("--warmup", type=int, default=0, help="requests sent first and not counted")
    p.add_argument("--max-tokens", type=int, default=16, help="max_tokens for chat modes")
    p.add_argument("--repeat-share", type=float, default=0.0,
                   help="share of requests that resend a prompt sent earlier in the run, in [0, 1)")
    p.add_argument("--out", help="directory for loadtest-<mode>.json and .png")
    p.add_argument("--api-key-env", default="RAYROUTE_API_KEYS",
                   help="env var holding the ingress keys, comma-separated as the ingress reads it; the first is sent")
    p.add_argument("--fail-on-error", action="store_true", help="exit 1 if any request failed")
    p.set_defaults(func=_loadtest_cmd)

    p = sub.add_parser("bench-overhead", help="routing overhead through Serve: router app vs no-op app, routed vs direct chat (one run)")
    p.add_argument("--config", default=str(REPO_ROOT / "serve_config.yaml"))
    p.add_argument("--router", default="mf", help="router alias from the config to measure")
    p.add_argument("--concurrency", type=int, default=16, help="concurrency of the /v1/route comparison")
    p.add_argument("--chat-concurrency", type=int, default=4, help="concurrency of the chat comparison")
    p.add_argument("--duration-s", type=float, default=30.0, help="seconds per mode")
    p.add_argument("--warmup", type=int, default=50, help="uncounted requests at the start of each mode")
    p.add_argument("--max-tokens", type=int, default=8, help="max_tokens of chat requests")
    p.add_argument("--modes", default="route-vs-noop,chat-vs-direct")
    p.add_argument("--max-ongoing-requests", type=int, default=256)
    p.add_argument("--default-settings", action="store_true",
                   help="Serve's defaults instead of the throughput settings")
    p.add_argument("--out", default=str(REPO_ROOT / "runs" / "overhead"))
    p.add_argument("--score-cache-entries", type=int, default=0,
                   help="the router's score cache size during the run (default 0: measure scoring)")
    p.add_argument("--repeat-share", type=float, default=0.0,
                   help="share of requests that resend an earlier prompt, in [0, 1)")
    p.add_argument("--slice-s", type=float, default=5.0,
                   help="the two targets of a mode alternate in slices this long (0: request by request)")
    p.add_argument("--runs", type=int, default=1,
                   help="measure this many times on the same apps (run<i>/ each) and report median and range")
    p.set_defaults(func=_bench_overhead_cmd)

    p = sub.add_parser("bench-budget", help="live budget control: 6,000 requests in three phases through the real "
                       "server (fake models), controller vs static α; JSON + PNG")
    p.add_argument("--router", default="linear_static", help="router alias from serve_config.yaml")
    p.add_argument("--target", type=float, default=0.3, help="strong share to hold")
    p.add_argument("--replicas", default="1,2", help="ingress replica counts to run, comma-separated")
    p.add_argument("--per-phase", type=int, default=2000, help="requests per phase (AlpacaEval, GSM8K, MMLU)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decision-n", type=int, default=20000, help="decisions timed in process")
    p.add_argument("--runs", type=int, default=1, help="served runs per replica count (median and range over them)")
    p.add_argument("--out", default=str(REPO_ROOT / "results" / "budget"))
    p.set_defaults(func=_bench_budget_cmd)

    p = sub.add_parser("bench-nway", help="N-way routing's decision time in process: 4 models by a kNN vs the "
                       "two-model linear_static; p50/p99, median and range over runs")
    p.add_argument("--checkpoint", help="an N-way checkpoint to time (default: a kNN fitted here on real "
                   "prompts with the static embedder and synthetic outcomes for 4 models)")
    p.add_argument("--train-prompts", type=int, default=4000, help="training prompts of the fitted kNN")
    p.add_argument("--test-prompts", type=int, default=300, help="prompts timed per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--k", type=int, default=10, help="neighbours of the fitted kNN")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (an ingress replica has 1; 0: the default)")
    p.add_argument("--out", default=str(REPO_ROOT / "results" / "nway-speed"))
    p.set_defaults(func=_bench_nway_cmd)


def _bench_nway_cmd(ns: argparse.Namespace) -> int:
    from bench.nway_speed import bench_nway

    result = bench_nway(ns.out, checkpoint=ns.checkpoint, train_prompts=ns.train_prompts,
                        test_prompts=ns.test_prompts, runs=ns.runs, k=ns.k, threads=ns.threads or None,
                        command=getattr(ns, "command_line", None))
    return 0 if result["meets_target"] else 1


def _bench_budget_cmd(ns: argparse.Namespace) -> int:
    from bench.budget import bench_budget

    summary = bench_budget(out_dir=ns.out, router=ns.router, target=ns.target,
                           replicas=tuple(int(r) for r in ns.replicas.split(",")), n_per_phase=ns.per_phase,
                           concurrency=ns.concurrency, seed=ns.seed, decision_n=ns.decision_n, runs=ns.runs,
                           command=getattr(ns, "command_line", None))
    return 0 if all(r["analysis"]["every_window_within_tolerance"] for r in summary["runs"]) else 1
