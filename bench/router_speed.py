"""``rayroute bench-routers``: in-process scoring speed of each router (the paper's Table 7).

For each router and batch size (default 1, 8, 32, 128) it reports prompts/s and per-call latency
(p50 / p99), with the embedding included (``score(prompts)``) and, for embedding routers,
excluded (``score_embeddings(E)`` on precomputed embeddings), plus the cost per million routing
decisions at a configurable machine price ($/hour; the paper's Table 7 uses $0.39/h for 8 vCPU
and $0.80/h for one L4). In the same run it times RouteLLM's SW-ranking method (a weighted
logistic regression over every battle, per query) on the same checkpoint and prints the speed
ratio, and it checks that every faster embedding path gives the same routing decisions.

Prompts are real (MT Bench first turns, GSM8K and MMLU questions from the shared data). Figures
depend on the machine: the output says how many CPUs it ran on. Nothing here is a test.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from routers.errors import ConfigError

EMBEDDING_ROUTERS = ("mf", "sw_ranking")
#: embedder names that give MiniLM's own vectors (to float rounding, or int8's approximation)
MINILM_SPACE = ("all-MiniLM-L6-v2", "onnx", "onnx-int8", "onnx-fp32:all-MiniLM-L6-v2", "onnx-int8:all-MiniLM-L6-v2")


def real_prompts(n: int = 512, seed: int = 0,
                 benchmarks: Sequence[str] = ("mt_bench", "gsm8k", "mmlu")) -> list[str]:
    """``n`` distinct real prompts shuffled from the named benchmarks of the shared data."""
    from routers.data.benchmarks import load_benchmark

    pool: list[str] = []
    for name in benchmarks:
        pool += load_benchmark(name, drop_contaminated=False).prompts
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(pool))[:n]
    return [pool[i] for i in idx]


def _time_calls(fn, batches: Sequence) -> tuple[float, np.ndarray]:
    lat = []
    start = time.perf_counter()
    for b in batches:
        t = time.perf_counter()
        fn(b)
        lat.append(time.perf_counter() - t)
    return time.perf_counter() - start, np.array(lat)


def bench_router(router, prompts: list[str], batch_sizes: Sequence[int], embeddings: np.ndarray | None,
                 price_per_hour: float, min_prompts_batch1: int = 64, gpu_warmup: bool = False) -> list[dict]:
    rows = []
    for bs in batch_sizes:
        n = len(prompts) if bs > 1 else min(len(prompts), min_prompts_batch1)
        batches = [prompts[i:i + bs] for i in range(0, n, bs)]
        # warm-up: lazy model load, first-call allocations; on a GPU one untimed pass, since kernels
        # load lazily per shape and the first calls of each sequence length are slow
        for b in batches if gpu_warmup else batches[:1]:
            router.score(b)
        total, lat = _time_calls(router.score, batches)
        row = {"router": router.name, "batch": bs, "prompts": n, "included": True,
               "prompts_per_s": n / total, "p50_ms": 1000 * float(np.percentile(lat, 50)),
               "p99_ms": 1000 * float(np.percentile(lat, 99))}
        rows.append(row)
        if embeddings is not None:
            ebatches = [embeddings[i:i + bs] for i in range(0, n, bs)]
            total, lat = _time_calls(router.score_embeddings, ebatches)
            rows.append({"router": router.name, "batch": bs, "prompts": n, "included": False,
                         "prompts_per_s": n / total, "p50_ms": 1000 * float(np.percentile(lat, 50)),
                         "p99_ms": 1000 * float(np.percentile(lat, 99))})
    for r in rows:
        r["usd_per_million"] = price_per_hour / 3600.0 / r["prompts_per_s"] * 1e6
    return rows


def decision_agreement(router, emb_a: np.ndarray, emb_b: np.ndarray) -> dict:
    """How two embedding paths change a router's scores and decisions (thresholds at the score
    deciles, so every part of the range is checked)."""
    from routers.base import strong_mask

    pa, pb = router.score_embeddings(emb_a), router.score_embeddings(emb_b)
    thresholds = np.quantile(pa, np.linspace(0.1, 0.9, 9))
    agree = [float(np.mean(strong_mask(pa, t) == strong_mask(pb, t))) for t in thresholds]
    return {"max_abs_score_diff": float(np.max(np.abs(pa - pb))), "min_decision_agreement": min(agree)}


def bench_routers(
    routers: Sequence[str] = ("random", "length", "mf", "sw_ranking", "mf_static", "sw_static", "bert", "causal_llm"),
    batch_sizes: Sequence[int] = (1, 8, 32, 128),
    n_prompts: int = 512,
    embedders: Sequence[str] = ("all-MiniLM-L6-v2", "onnx", "onnx-int8"),
    price_per_hour: float = 0.39,
    sw_reference_queries: int = 20,
    threads: int | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    embed_batch: int | None = None,
    prompts_file: str | Path | None = None,
    reference_embeddings: str | Path | None = None,
    save_embeddings: str | Path | None = None,
    command: str | None = None,
) -> dict:
    """Python entry point of ``rayroute bench-routers``; returns (and optionally writes) the results
    (``command``, the command line that made them, is recorded with them).

    ``device`` runs the PyTorch embedders and the bert router there ("cuda" on a GPU machine);
    ``embed_batch`` sets the embedders' micro-batch. ``prompts_file`` (JSONL with a ``prompt``
    field) replaces the shared benchmark prompts, e.g. on a machine without the shared data.
    ``reference_embeddings`` (.npy, the same prompts embedded elsewhere, e.g. by the exact CPU path,
    written there with ``save_embeddings``) adds a decision-agreement row against it.
    """
    from routers.embeddings import embedder_from_spec
    from routers.errors import CheckpointError, UnknownRouterError
    from routers.registry import load_router, read_config, resolve

    if threads:
        import torch

        torch.set_num_threads(threads)
    if prompts_file:
        from routers.calibration import read_prompts

        prompts = read_prompts(prompts_file, "prompt")[:n_prompts]
    else:
        prompts = real_prompts(n_prompts)
    emb_kwargs: dict = {"device": device} if device != "cpu" else {}
    if embed_batch:
        emb_kwargs["batch_size"] = embed_batch
    result: dict = {"command": command, "cpus": os.cpu_count(), "device": _device_name(device), "prompts": len(prompts),
                    "price_per_hour": price_per_hour,
                    "rows": [], "skipped": [], "agreement": {}, "sw_reference": None}
    emb_cache: dict[str, np.ndarray] = {}
    for name in routers:
        try:  # a registry name, a named checkpoint (mf_static) or a checkpoint path, as everywhere
            _, ckpt = resolve(name)
        except (CheckpointError, UnknownRouterError) as exc:
            result["skipped"].append(f"{name}: {exc}")
            continue
        cfg = read_config(ckpt) if ckpt is not None else {}
        kind = cfg.get("router", name)
        if kind in EMBEDDING_ROUTERS:
            # MiniLM-trained checkpoints are timed on every MiniLM path given; a checkpoint trained on
            # another embedding space (static, openai, hash) only on its own embedder
            own = cfg.get("embedder") or embedders[0]
            specs = list(embedders) if own in MINILM_SPACE else [own]
            for i_spec, spec in enumerate(specs):
                # uncached: really embed every prompt
                kwargs = emb_kwargs if not spec.startswith(("onnx", "hash-", "openai:", "static")) else {}
                embedder = embedder_from_spec(spec, cache=False, **kwargs)
                router = load_router(name, embedder=embedder)
                if spec not in emb_cache:
                    emb_cache[spec] = embedder.embed(prompts)
                for row in bench_router(router, prompts, batch_sizes, emb_cache[spec], price_per_hour,
                                       gpu_warmup=device != "cpu"):
                    row.update(router=name, kind=kind, embedder=embedder.name)  # mf_static != mf
                    result["rows"].append(row)
                    _print_row(row)
                if i_spec > 0:
                    agr = decision_agreement(router, emb_cache[specs[0]], emb_cache[spec])
                    result["agreement"][f"{name}:{embedder.name}"] = agr
                    print(f"  {name} with {embedder.name} vs {specs[0]}: max |Δp| "
                          f"{agr['max_abs_score_diff']:.2e}, decisions agree ≥ {agr['min_decision_agreement']:.3%}")
                if i_spec == 0 and reference_embeddings:
                    ref = np.load(reference_embeddings)
                    if ref.shape != emb_cache[spec].shape:
                        raise ConfigError(f"reference embeddings {str(reference_embeddings)!r} have shape "
                                          f"{ref.shape}, expected {emb_cache[spec].shape} (same prompts, same model)")
                    agr = decision_agreement(router, ref, emb_cache[spec])
                    result["agreement"][f"{name}:{embedder.name}@{device} vs reference"] = agr
                    print(f"  {name} with {embedder.name} on {device} vs the reference embeddings: max |Δp| "
                          f"{agr['max_abs_score_diff']:.2e}, decisions agree ≥ {agr['min_decision_agreement']:.3%}")
            if save_embeddings and specs[0] in emb_cache:
                np.save(save_embeddings, emb_cache[specs[0]])
            if name == "sw_ranking" and sw_reference_queries:
                result["sw_reference"] = _sw_reference(router, emb_cache[specs[0]], sw_reference_queries)
        else:
            router = load_router(name, device=device) if kind == "bert" else load_router(name)
            small = kind in ("bert", "causal_llm")
            for row in bench_router(router, prompts[:128] if small else prompts, batch_sizes, None,
                                    price_per_hour, gpu_warmup=device != "cpu"):
                row.update(router=name, kind=kind, embedder=None)
                result["rows"].append(row)
                _print_row(row)
    for s in result["skipped"]:
        print(f"skipped {s}")
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        path.with_suffix(".md").write_text(markdown(result))
    return result


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"{os.cpu_count()} CPUs"


def _sw_reference(router, emb: np.ndarray, n: int) -> dict:
    q = emb[:n]
    t = time.perf_counter()
    ref = router.reference_score(q)
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(n):  # batch 1, like the reference, for a fair ratio
        router.score_embeddings(q[i:i + 1])
    t_fast = time.perf_counter() - t
    fast = router.score_embeddings(q)
    out = {"queries": n, "reference_prompts_per_s": n / t_ref, "fast_prompts_per_s": n / t_fast,
           "speedup": t_ref / t_fast, "max_abs_diff": float(np.max(np.abs(ref - fast)))}
    print(f"  sw_ranking: RouteLLM-style per-query logistic regression {out['reference_prompts_per_s']:.2f} "
          f"prompts/s vs aggregated BT {out['fast_prompts_per_s']:.1f} prompts/s (batch 1, embedding excluded): "
          f"{out['speedup']:.0f}x faster, max |Δp| {out['max_abs_diff']:.1e}")
    return out


PAPER_TABLE7 = [  # router, $ per million requests, requests / s, machine (paper, Table 7)
    ("SW ranking", 39.26, 2.9, "8 vCPU, no GPU ($0.39/h)"),
    ("matrix factorization", 3.32, 155.16, "1x NVIDIA L4 ($0.80/h)"),
    ("BERT", 3.19, 69.62, "1x NVIDIA L4"),
    ("causal LLM", 5.23, 42.46, "1x NVIDIA L4"),
]


def markdown(result: dict) -> str:
    """The results as Markdown tables: every cell, then the paper's Table 7 beside our best rows."""
    cpus, device = f"{result['cpus']} CPUs", result.get("device")
    on_cpu = device in (None, cpus)  # a CPU run's device is its CPU count (_device_name)
    where = cpus if on_cpu else f"{device} ({cpus})"
    machine = "this machine" if on_cpu else device
    lines = [f"`{result['command']}`", ""] if result.get("command") else []
    lines += [f"Measured on {where}, "
             f"{result['prompts']} real prompts, machine price "
             f"${result['price_per_hour']}/h.", "",
             "| router | embedder | batch | embedding | prompts/s | p50 ms | p99 ms | $ / M decisions |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        lines.append(f"| {r['router']} | {r.get('embedder') or '-'} | {r['batch']} | "
                     f"{'included' if r['included'] else 'excluded'} | {r['prompts_per_s']:.1f} | "
                     f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['usd_per_million']:.2f} |")
    if result.get("agreement"):
        lines += ["", "| router with embedder | max abs. score difference | min. decision agreement |",
                  "| --- | ---: | ---: |"]
        for k, a in result["agreement"].items():
            lines.append(f"| {k} | {a['max_abs_score_diff']:.2e} | {a['min_decision_agreement']:.2%} |")
    ref = result.get("sw_reference")
    if ref:
        lines += ["", f"SW ranking, batch 1, embedding excluded, {ref['queries']} queries: RouteLLM's "
                  f"per-query logistic regression {ref['reference_prompts_per_s']:.2f} prompts/s, ours "
                  f"{ref['fast_prompts_per_s']:.1f} prompts/s: **{ref['speedup']:.0f}x** faster, max "
                  f"|Δp| {ref['max_abs_diff']:.1e}."]
    best: dict[str, dict] = {}
    for r in result["rows"]:
        if r["included"] and (r["router"] not in best or r["prompts_per_s"] > best[r["router"]]["prompts_per_s"]):
            best[r["router"]] = r
    lines += ["", "| paper (Table 7) | $ / M requests | requests / s | machine |", "| --- | ---: | ---: | --- |"]
    lines += [f"| {n} | {c:.2f} | {q:.2f} | {m} |" for n, c, q, m in PAPER_TABLE7]
    lines += ["", "| ours, best batch, embedding included | $ / M decisions | prompts / s | machine |",
              "| --- | ---: | ---: | --- |"]
    for name, r in best.items():
        lines.append(f"| {name} (batch {r['batch']}, {r.get('embedder') or '-'}) | {r['usd_per_million']:.2f} | "
                     f"{r['prompts_per_s']:.1f} | {machine}, {result['cpus']} vCPU "
                     f"(${result['price_per_hour']}/h) |")
    return "\n".join(lines) + "\n"


def _print_row(r: dict) -> None:
    emb = "incl. embedding" if r["included"] else "excl. embedding"
    print(f"{r['router']:>11} {str(r.get('embedder') or '-'):>28} batch {r['batch']:>3} {emb}: "
          f"{r['prompts_per_s']:9.1f} prompts/s  p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms  "
          f"${r['usd_per_million']:.2f}/M decisions", flush=True)
