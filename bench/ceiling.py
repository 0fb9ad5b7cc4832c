"""``rayroute bench-ceiling``: the fastest any MiniLM path could score real prompts on this machine.

The routing-overhead targets ask MiniLM-based routers for 300 (MF), 100 (SW ranking) and 150
(BERT) prompts/s in process. Whether a faster implementation can get there is a question about
arithmetic, so this command answers it with two measurements made in the same run:

1. **Work per prompt.** The real prompts are tokenized exactly as the router does (cut at 256 word
   pieces for the sentence embedder, 512 for the bert classifier) and the encoder's
   multiply-adds are counted from its config: per token and layer ``2·(4h² + 2h·i)`` FLOPs for the
   Q, K, V, output and two FFN projections, plus ``4·T²·h`` per layer for the attention scores and
   the weighted sum. A unit test checks the formula against PyTorch's own FLOP counter.
2. **The machine's best rate for that work.** Each of the encoder's dense shapes is timed alone as
   one fp32 GEMM (and as a dynamic-int8 GEMM, activation quantisation included) at several row
   counts; the best rate of each shape is kept.

The ceiling is prompts/s if every FLOP ran at that best rate and everything else (tokenizing,
softmax, GELU, LayerNorm, copies, Python) cost nothing. Every real path is slower, so a target
above the ceiling cannot be met by any implementation of that arithmetic on this machine. With
``measure=True`` the real MiniLM embedder is timed on the same prompts to show how close it gets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from routers.errors import ConfigError

#: the routing-overhead issue's in-process targets: router -> (prompts/s, tokens kept)
TARGETS: dict[str, tuple[float, int]] = {"mf": (300.0, 256), "sw_ranking": (100.0, 256), "bert": (150.0, 512)}


def encoder_flops(token_counts: Sequence[int] | np.ndarray, hidden: int, intermediate: int,
                  layers: int) -> np.ndarray:
    """FLOPs (2 per multiply-add) of a BERT encoder's matrix products for sequences of these lengths.

    Counts the four attention projections, the two FFN projections and the two attention products
    (QKᵀ and the weighted sum of V); embeddings, LayerNorm, softmax, GELU and any pooler or head are
    left out (they are element-wise or per sequence, a few percent at these sizes).
    """
    t = np.asarray(token_counts, dtype=np.float64)
    if t.size and t.min() < 1:
        raise ConfigError(f"token counts must be >= 1, got min {t.min():g}")
    dense = 2.0 * t * (4 * hidden * hidden + 2 * hidden * intermediate) * layers
    attention = 4.0 * t * t * hidden * layers
    return dense + attention


def _best_rate(fn, flop: float, min_time_s: float) -> float:
    for _ in range(2):
        fn()
    best = 0.0
    for _ in range(3):  # best of three windows: the ceiling wants the machine at its fastest
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time_s:
                break
        best = max(best, flop * n / elapsed / 1e9)
    return best


def gemm_rates(hidden: int, intermediate: int, rows: Sequence[int] = (256, 512, 1024, 2048),
               int8: bool = True, min_time_s: float = 0.3) -> dict:
    """Best measured GFLOP/s of each dense shape (fp32, and dynamic int8 if asked), over ``rows``."""
    import torch

    if not rows or min(int(r) for r in rows) < 1:
        raise ConfigError(f"GEMM row counts must be >= 1, got {list(rows)!r}")
    shapes = {"qkvo": (hidden, hidden), "ffn_up": (hidden, intermediate), "ffn_down": (intermediate, hidden)}
    out: dict = {"rows": list(rows), "fp32": {}, "int8": {} if int8 else None}
    with torch.inference_mode():
        for name, (k, n) in shapes.items():
            lin = torch.nn.Linear(k, n)
            q = None
            if int8:
                import warnings

                with warnings.catch_warnings():  # torch.ao's deprecation notices, not ours to fix
                    warnings.simplefilter("ignore")
                    q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear},
                                                               dtype=torch.qint8)
            best32 = best8 = 0.0
            for r in rows:
                x = torch.randn(int(r), k)
                flop = 2.0 * r * k * n
                best32 = max(best32, _best_rate(lambda: lin(x), flop, min_time_s))
                if q is not None:
                    best8 = max(best8, _best_rate(lambda: q(x), flop, min_time_s))
            out["fp32"][name] = round(best32, 1)
            if q is not None:
                out["int8"][name] = round(best8, 1)
    return out


def _seconds_per_token(rates: dict, hidden: int, intermediate: int) -> float:
    """Seconds per token per layer of the dense work at the given per-shape rates (GFLOP/s)."""
    flop = {"qkvo": 2.0 * 4 * hidden * hidden, "ffn_up": 2.0 * hidden * intermediate,
            "ffn_down": 2.0 * intermediate * hidden}
    return sum(flop[k] / (rates[k] * 1e9) for k in flop)


def ceiling(prompts: Sequence[str], model_path: str | None = None, rows: Sequence[int] = (256, 512, 1024, 2048),
            int8: bool = True, min_time_s: float = 0.3, threads: int | None = None,
            measure: bool = True, progress: bool = True) -> dict:
    """Python entry point of ``rayroute bench-ceiling``; returns the results as a dict."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from routers.embeddings import local_model_path

    if not prompts:
        raise ConfigError("bench-ceiling needs at least one prompt")
    if threads:
        torch.set_num_threads(int(threads))
    path = model_path or local_model_path()
    cfg = AutoConfig.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    h, i, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    if progress:
        print(f"timing the encoder's GEMM shapes on {torch.get_num_threads()} threads ...", flush=True)
    rates = gemm_rates(h, i, rows, int8=int8, min_time_s=min_time_s)
    result: dict = {"model": Path(path).name if model_path else "all-MiniLM-L6-v2", "prompts": len(prompts),
                    "threads": torch.get_num_threads(), "gemm_gflops": rates, "rows": []}
    token_counts: dict[int, np.ndarray] = {}  # by max_length: mf and sw_ranking share one
    for router, (target, max_length) in TARGETS.items():
        if max_length not in token_counts:
            token_counts[max_length] = np.array(
                [len(ids) for ids in tok(list(prompts), truncation=True, max_length=max_length)["input_ids"]])
        counts = token_counts[max_length]
        flops = encoder_flops(counts, h, i, layers)
        row = {"router": router, "max_length": max_length, "mean_tokens": round(float(counts.mean()), 1),
               "gflop_per_prompt": round(float(flops.mean()) / 1e9, 3), "target_prompts_per_s": target}
        for kind in ("fp32", "int8"):
            if not rates.get(kind):
                continue
            # dense work at each shape's best rate, attention products at the best rate of any shape
            dense_s = _seconds_per_token(rates[kind], h, i) * float(counts.sum()) * layers
            attn_s = float((4.0 * counts * counts * h * layers).sum()) / (max(rates["fp32"].values()) * 1e9)
            row[f"ceiling_{kind}_prompts_per_s"] = round(len(prompts) / (dense_s + attn_s), 1)
        row["target_over_fp32_ceiling"] = round(target / row["ceiling_fp32_prompts_per_s"], 2)
        result["rows"].append(row)
    if measure:
        from routers.embeddings import SentenceTransformerEmbedder

        emb = SentenceTransformerEmbedder()
        emb.embed(list(prompts[:8]))  # load and warm up outside the timing
        start = time.perf_counter()
        emb.embed(list(prompts))
        rate = len(prompts) / (time.perf_counter() - start)
        result["measured_minilm_prompts_per_s"] = round(rate, 1)
        mf = next(r for r in result["rows"] if r["router"] == "mf")
        result["measured_share_of_fp32_ceiling"] = round(rate / mf["ceiling_fp32_prompts_per_s"], 2)
    return result


def markdown(result: dict) -> str:
    g = result["gemm_gflops"]
    lines = [
        f"Ceiling of any {result['model']} path on {result['prompts']} real prompts, "
        f"{result['threads']} threads (`{result.get('command') or 'rayroute bench-ceiling'}`).",
        "",
        "Best GEMM rate per dense shape (GFLOP/s): fp32 "
        + ", ".join(f"{k} {v:.0f}" for k, v in g["fp32"].items())
        + ("; dynamic int8 " + ", ".join(f"{k} {v:.0f}" for k, v in g["int8"].items()) if g.get("int8") else ""),
        "",
        "| router | tokens kept | mean tokens | GFLOP / prompt | ceiling fp32 (prompts/s) | ceiling int8 | target | target ÷ fp32 ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        int8 = r.get("ceiling_int8_prompts_per_s")
        lines.append(f"| {r['router']} | {r['max_length']} | {r['mean_tokens']} | {r['gflop_per_prompt']} | "
                     f"{r['ceiling_fp32_prompts_per_s']} | {int8 if int8 is not None else '-'} | "
                     f"{r['target_prompts_per_s']:.0f} | {r['target_over_fp32_ceiling']} |")
    if "measured_minilm_prompts_per_s" in result:
        lines += ["", f"Measured MiniLM embedder (exact path) on the same prompts: "
                  f"{result['measured_minilm_prompts_per_s']} prompts/s = "
                  f"{result['measured_share_of_fp32_ceiling']:.0%} of the fp32 ceiling."]
    return "\n".join(lines) + "\n"
