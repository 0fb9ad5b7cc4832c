"""Render an evaluation result: Markdown in the paper's layout (with the paper's own figures side
by side), JSON, and one PNG per benchmark like the paper's Figure 1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from routers.evaluation.protocol import SERVED_DEFAULT_RECIPE

#: The paper's published figures (arXiv 2406.18665 v4, Tables 1-3): (training data, router) ->
#: (CPT(50%) %, CPT(80%) %, APGR). Source: ../shared/reference/paper-results.md.
PAPER = {
    "mt_bench": {
        "title": "MT Bench (paper Table 1)",
        "augmented": "Arena + judge data",
        "random": (49.03, 78.08, 0.500),
        "rows": [
            ("Arena", "BERT", 78.09, 87.64, 0.391), ("Arena", "causal LLM", 28.82, 77.53, 0.573),
            ("Arena", "matrix factorization", 25.32, 74.26, 0.580), ("Arena", "SW ranking", 37.85, 58.99, 0.610),
            ("Arena + judge", "BERT", 19.58, 34.02, 0.751), ("Arena + judge", "causal LLM", 31.50, 48.75, 0.679),
            ("Arena + judge", "matrix factorization", 13.40, 31.31, 0.802),
            ("Arena + judge", "SW ranking", 23.21, 36.04, 0.759),
        ],
    },
    "mmlu": {
        "title": "MMLU (paper Table 2)",
        "random": (50.07, 79.93, 0.500),
        "rows": [
            ("Arena", "BERT", 49.43, 77.80, 0.502), ("Arena", "causal LLM", 48.88, 77.93, 0.499),
            ("Arena", "matrix factorization", 45.00, 76.86, 0.524), ("Arena", "SW ranking", 55.82, 80.25, 0.473),
            ("Arena + golden MMLU", "BERT", 41.30, 72.20, 0.572),
            ("Arena + golden MMLU", "causal LLM", 35.49, 70.31, 0.600),
            ("Arena + golden MMLU", "matrix factorization", 35.46, 71.40, 0.597),
            ("Arena + golden MMLU", "SW ranking", 35.40, 71.55, 0.603),
        ],
    },
    "gsm8k": {
        "title": "GSM8K (paper Table 3)",
        "random": (50.00, 80.08, 0.497),
        "rows": [
            ("Arena", "BERT", 58.78, 83.84, 0.438), ("Arena", "causal LLM", 56.09, 83.56, 0.461),
            ("Arena", "matrix factorization", 53.59, 85.24, 0.4746), ("Arena", "SW ranking", 54.43, 82.11, 0.4753),
            ("Arena + judge", "BERT", 44.76, 79.09, 0.531), ("Arena + judge", "causal LLM", 33.64, 63.26, 0.622),
            ("Arena + judge", "matrix factorization", 38.82, 72.62, 0.565),
            ("Arena + judge", "SW ranking", 41.21, 72.20, 0.568),
        ],
    },
}
#: Paper Table 6: cost saving vs. random at CPT(50%) / CPT(80%).
PAPER_COST = {"mt_bench": (3.66, 2.49), "mmlu": (1.41, 1.14), "gsm8k": (1.49, 1.27)}
#: Paper Table 5: benchmark-dataset similarity.
PAPER_SIMILARITY = {"mt_bench": {"Arena": 0.6078, "Arena + judge": 0.6525},
                    "mmlu": {"Arena": 0.4823, "Arena + golden MMLU": 0.5678},
                    "gsm8k": {"Arena": 0.4926, "Arena + judge": 0.5335}}

NAMES = {"mt_bench": "MT Bench", "mmlu": "MMLU", "gsm8k": "GSM8K"}


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def _score(bench: dict, v: float) -> str:
    return f"{v:.2f}" if bench["scale"] == "grade" else f"{v:.1f}%"


def markdown(result: dict, command: str | None = None, image_prefix: str = "") -> str:
    out = ["# Evaluation results", ""]
    if command:
        out += ["Regenerate with:", "", "```bash", command, "```", ""]
    s = result["settings"]
    out += [
        f"Strong-call grid: {s['apgr_grid']}. CPT interpolated on that grid. Random baseline: "
        f"{s['n_random']} random routings, mean and 95% interval. Embedder: {s['embedder']}. "
        f"Cross-fitting: {s['folds']} folds (seed {s['seed']}). Contamination threshold: cosine >= {s['threshold']}.",
        "",
    ]
    gd = result.get("general_data")
    if gd:
        out += [
            f"General data: {', '.join(f'{k} ({v} prompts)' for k, v in gd['sources'].items())}; "
            f"{gd['strong_weak_pairs']} strong-vs-weak rows on {gd['unique_prompts_with_targets']} prompts "
            f"(strong class: {', '.join(gd['classes']['strong'])}; weak class: {', '.join(gd['classes']['weak'])}).",
            "",
        ]
    out += [
        "Configurations: `general data` = a committed checkpoint trained on the training mix only (AlpacaEval "
        "judge pairs + RouterBench, the paper's \"Arena only\" analogue; it never saw the benchmarks). "
        "Recipes (`linear_static`, `linear`: the linear router on static / full MiniLM embeddings) are "
        "trained on the golden outcomes of the served pair (MMLU, GSM8K, MT Bench, RouterBench ARC-C and "
        "MBPP) and reported only under the honest protocol: (i) cross-fitted in-domain (the benchmark's "
        "own outcomes, k folds, alone or with the other golden sources), (ii) leave-one-benchmark-out (the "
        "other sources only, near-duplicates of the target removed), (iii) learning curve (n labelled "
        "questions + the other sources, scored on the rest). A checkpoint trained on a benchmark is never "
        "scored on it.",
        "",
    ]
    out += _targets(result)
    for name, b in result["benchmarks"].items():
        title = NAMES.get(name, name)
        out += [f"## {title}", ""]
        c = b["contamination"]
        emb = c.get("embedding")
        dropped = f"{c['shipped_list']} by the shipped contaminated list"
        if emb:
            per = ", ".join(f"{k}: {v}" for k, v in emb.items() if k != "total")
            dropped += f", {emb['total']} by embedding cosine >= {s['threshold']} to a training prompt ({per})"
        out += [
            f"{b['n']} of {b['n_original']} questions evaluated ({dropped}). "
            f"Strong ({b['strong_model']}) {_score(b, b['strong_score'])}, weak ({b['weak_model']}) "
            f"{_score(b, b['weak_score'])}."
            + (f" Cross-fitting keeps {c['near_duplicate_groups_in_benchmark']} questions in the fold of a "
               f"near-duplicate (cosine >= {s['threshold']}) or identical twin."
               if "near_duplicate_groups_in_benchmark" in c else ""),
            "",
            "| training data | router | CPT(50%) | CPT(80%) | APGR | improvement |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        r = b["random"]
        out.append(
            f"| — | random (95% interval) | {100 * r['cpt50']['mean']:.2f}% "
            f"({100 * r['cpt50']['lo']:.1f}–{100 * r['cpt50']['hi']:.1f}) | {100 * r['cpt80']['mean']:.2f}% "
            f"({100 * r['cpt80']['lo']:.1f}–{100 * r['cpt80']['hi']:.1f}) | {r['apgr']['mean']:.3f} "
            f"({r['apgr']['lo']:.3f}–{r['apgr']['hi']:.3f}) | (+0%) |"
        )
        for row in b["rows"]:
            flag = " *" if row["apgr"] > r["apgr"]["hi"] else ""
            out.append(
                f"| {row['config']} | {row['router']} | {_pct(row['cpt50'])} | {_pct(row['cpt80'])} | "
                f"{row['apgr']:.3f}{flag} | ({100 * row['improvement']:+.1f}%) |"
            )
        o = b["oracle"]
        out.append(f"| — | oracle | {_pct(o['cpt50'])} | {_pct(o['cpt80'])} | {o['apgr']:.3f} | "
                   f"({100 * (o['apgr'] / r['apgr']['mean'] - 1):+.1f}%) |")
        out += ["", "`*` = APGR above the random baseline's 95% interval.", ""]
        for spec, why in b.get("skipped", {}).items():
            out.append(f"- `{spec}` not evaluated: {why}")
        if b.get("skipped"):
            out.append("")
        paper = PAPER.get(name)
        if paper:
            pr = paper["random"]
            out += [f"Paper, {paper['title']}, for comparison (their training data, not ours):", "",
                    "| training data | router | CPT(50%) | CPT(80%) | APGR |", "| --- | --- | --- | --- | --- |",
                    f"| — | random | {pr[0]:.2f}% | {pr[1]:.2f}% | {pr[2]:.3f} |"]
            for data, router, c50, c80, a in paper["rows"]:
                out.append(f"| {data} | {router} | {c50:.2f}% | {c80:.2f}% | {a:.3f} |")
            out.append("")
        if b.get("similarity"):
            out += ["Benchmark-dataset similarity (Eq. 14; paper Table 5: "
                    + ", ".join(f"{k} {v:.4f}" for k, v in PAPER_SIMILARITY.get(name, {}).items()) + "):", ""]
            out += [f"- {k}: {v:.4f}" for k, v in b["similarity"].items()]
            out.append("")
        cost = b.get("cost")
        if cost:
            pc = PAPER_COST.get(name)
            out += [f"Cost (Table 6, appendix D) for the best router here, `{cost['router']}` ({cost['config']}), "
                    f"prices ${cost['prices']['strong']} / ${cost['prices']['weak']} per M tokens:", "",
                    "| target | router strong calls | random strong calls | saving vs random | router $/M tok | random $/M tok | paper saving |",
                    "| --- | --- | --- | --- | --- | --- | --- |"]
            for i, key in enumerate(("cpt50", "cpt80")):
                cc = cost[key]
                paper_col = f"{pc[i]:.2f}x" if pc else "n/a"
                out.append(
                    f"| CPT({key[3:]}%) | {_pct(cc['router_strong_share'])} | "
                    f"{_pct(cc['random_strong_share'])} | {cc['saving_vs_random']:.2f}x | "
                    f"${cc['router_usd_per_mtok']:.2f} | ${cc['random_usd_per_mtok']:.2f} | {paper_col} |"
                )
            out.append("")
        out += _protocol_section(b, image_prefix, name)
        out += [f"![{title}]({image_prefix}{name}.png)", ""]
    return "\n".join(out)


def _verdict(apgr: float, b: dict) -> str:
    r = b["random"]["apgr"]
    length = next((x["apgr"] for x in b["rows"] if x["router"] == "length"), float("nan"))
    if apgr < r["lo"]:
        band = "**below random's band**"
    elif apgr > r["hi"]:
        band = "above random's band"
    else:
        band = "inside random's band"
    return f"{band}; {'beats' if apgr > length else '**does not beat**'} length ({length:.3f})"


def _protocol_section(b: dict, image_prefix: str, name: str) -> list[str]:
    """The honest protocol's rows: (i) cross-fitted, (ii) leave-one-benchmark-out, (iii) curve."""
    if not b.get("protocol"):
        return []
    out = ["Honest protocol (routers.evaluation.protocol): (i) cross-fitted on this benchmark's own "
           "outcomes, (ii) trained on the other golden sources only, (iii) n labelled questions, with the "
           "general data and alone, scored on the rest.", "",
           "| recipe | protocol | CPT(50%) | CPT(80%) | APGR | verdict |", "| --- | --- | --- | --- | --- | --- |"]
    for rec, res in b["protocol"].items():
        for row in res["rows"]:
            out.append(f"| {rec} | {row['config']} | {_pct(row['cpt50'])} | {_pct(row['cpt80'])} | "
                       f"{row['apgr']:.3f} | {_verdict(row['apgr'], b)} |")
    out.append("")
    comps = b.get("recipe_comparisons") or []
    if comps:
        out += ["Recipe against recipe on the same questions (APGR difference, paired bootstrap 95 % interval; "
                "an interval containing 0 is no difference beyond the noise):", ""]
        out += [f"- {c['a']} − {c['b']}, {c['protocol']}: {c['diff']:+.3f} ({c['lo']:+.3f} to {c['hi']:+.3f})"
                for c in comps]
        out.append("")
    curves = [(rec, label, c) for rec, res in b["protocol"].items() for label, c in res.get("curve", {}).items() if c]
    if curves:
        out += ["(iii) learning curve: APGR on the unlabelled rest, mean (min–max) over draws.", "",
                "| recipe | labels | " + " | ".join(f"n={n}" for n in curves[0][2]) + " |",
                "| --- | --- | " + " | ".join("---" for _ in curves[0][2]) + " |"]
        for rec, label, c in curves:
            cells = [f"{np.mean(v):.3f} ({min(v):.3f}–{max(v):.3f})" for v in c.values()]
            out.append(f"| {rec} | {label} | " + " | ".join(cells) + " |")
        out += ["", f"![{name} learning curve]({image_prefix}{name}-curve.png)", ""]
    return out


def plot_curve(result: dict, name: str, path: str | Path) -> Path | None:
    """APGR against the number of in-domain labels, one line per recipe, random's band shaded."""
    b = result["benchmarks"][name]
    curves = [(f"{rec}, {label}", c) for rec, res in b.get("protocol", {}).items()
              for label, c in res.get("curve", {}).items() if c]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    r = b["random"]["apgr"]
    ax.axhspan(r["lo"], r["hi"], color="grey", alpha=0.25, label="random (95% band)")
    for rec, c in curves:
        ns = [int(n) for n in c]
        mean = [float(np.mean(v)) for v in c.values()]
        ax.errorbar(ns, mean, yerr=[[mu - min(v) for mu, v in zip(mean, c.values())],
                                    [max(v) - mu for mu, v in zip(mean, c.values())]], marker="o", capsize=3, label=rec)
    ax.set_xscale("log")
    ax.set_xlabel("labelled in-domain questions (n)")
    ax.set_ylabel("APGR on the rest")
    ax.set_title(f"{NAMES.get(name, name)}: learning curve (min–max over draws)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _protocol_summary(result: dict) -> list[str]:
    """Each recipe under every protocol row, per benchmark; the served default's recipe is marked."""
    benches = {n: b for n, b in result["benchmarks"].items() if b.get("protocol")}
    recipes = list(dict.fromkeys(r for b in benches.values() for r in b["protocol"]))
    out: list[str] = []
    for rec in recipes:
        mark = " (the served default's recipe)" if rec == SERVED_DEFAULT_RECIPE else ""
        out += [f"### `{rec}`{mark} under the honest protocol", "",
                "| benchmark | protocol | APGR | verdict |", "| --- | --- | --- | --- |"]
        for name, b in benches.items():
            res = b["protocol"].get(rec)
            if not res:
                continue
            for row in res["rows"]:
                out.append(f"| {NAMES.get(name, name)} | {row['config']} | {row['apgr']:.3f} | {_verdict(row['apgr'], b)} |")
            for label, c in res.get("curve", {}).items():
                for n in ("250", "500", 250, 500):
                    if n in c:
                        v = c[n]
                        out.append(f"| {NAMES.get(name, name)} | (iii) {label}, n={n} | {np.mean(v):.3f} "
                                   f"({min(v):.3f}–{max(v):.3f}) | {_verdict(float(np.mean(v)), b)} |")
        out.append("")
    return out


def _targets(result: dict) -> list[str]:
    """Where we stand against the project's targets, computed from the numbers above."""
    out = ["## Summary against the targets", "", *_protocol_summary(result),
           "### Every row of the main tables", "",
           "| benchmark | random APGR (95%) | length | best router (config) | best APGR | above random band | beats length | paper's best |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, b in result["benchmarks"].items():
        r = b["random"]["apgr"]
        length = next((x["apgr"] for x in b["rows"] if x["router"] == "length"), float("nan"))
        learned = [x for x in b["rows"] if x["router"] != "length"]
        paper = max((row[4] for row in PAPER.get(name, {}).get("rows", [])), default=float("nan"))
        if learned:
            best = max(learned, key=lambda x: x["apgr"])
            out.append(
                f"| {NAMES.get(name, name)} | {r['mean']:.3f} ({r['lo']:.3f}–{r['hi']:.3f}) | {length:.3f} | "
                f"{best['router']} ({best['config']}) | {best['apgr']:.3f} | "
                f"{'yes' if best['apgr'] > r['hi'] else 'no'} | {'yes' if best['apgr'] > length else 'no'} | "
                f"{paper:.3f} |")
        else:
            out.append(f"| {NAMES.get(name, name)} | {r['mean']:.3f} ({r['lo']:.3f}–{r['hi']:.3f}) | {length:.3f} | "
                       f"— | — | — | — | {paper:.3f} |")
    out.append("")
    for name, b in result["benchmarks"].items():
        length = next((x["apgr"] for x in b["rows"] if x["router"] == "length"), float("nan"))
        behind = [f"{x['router']} ({x['apgr']:.3f})" for x in b["rows"] if x["router"] != "length" and not x["apgr"] > length]
        if behind:
            out.append(f"- {NAMES.get(name, name)}: not beating the length baseline ({length:.3f}): {', '.join(behind)}.")
    return out + [""]


def plot(result: dict, name: str, path: str | Path) -> Path:
    """Quality vs. strong-call % for every router, weak / strong lines, random band, oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = result["benchmarks"][name]
    scale = 100.0 if b["scale"] == "accuracy" else 1.0
    grid = 100 * np.array(b["random"]["grid"])
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.fill_between(grid, scale * np.array(b["random"]["quality_lo"]), scale * np.array(b["random"]["quality_hi"]),
                    color="grey", alpha=0.25, label="random (95% band)")
    for row in b["rows"]:
        ax.plot(grid, scale * np.array(row["quality"]), marker=".", label=f"{row['router']} (APGR {row['apgr']:.3f})")
    ax.plot(grid, scale * np.array(b["oracle"]["quality"]), "k:", marker="x", label=f"oracle (APGR {b['oracle']['apgr']:.3f})")
    ax.axhline(b["weak_score"], color="grey", linestyle="--", label=f"weak: {b['weak_model']}")
    ax.axhline(b["strong_score"], color="red", linestyle="--", label=f"strong: {b['strong_model']}")
    ax.set_xlabel("Strong model calls (%)")
    ax.set_ylabel("Accuracy (%)" if b["scale"] == "accuracy" else "Score")
    ax.set_title(f"{NAMES.get(name, name)}: quality vs. strong-model calls (n={b['n']})")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_outputs(result: dict, out_dir: str | Path, command: str | None = None,
                  markdown_path: str | Path | None = None) -> dict[str, Path]:
    """Write results.json, results.md and <benchmark>.png into ``out_dir`` (``command``, when given,
    heads results.md as the way to regenerate it); ``markdown_path`` additionally writes the
    Markdown there, its images linked relative to it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md"}
    paths["json"].write_text(json.dumps(result, indent=1, default=float) + "\n")
    paths["markdown"].write_text(markdown(result, command) + "\n")
    for name in result["benchmarks"]:
        paths[f"png:{name}"] = plot(result, name, out_dir / f"{name}.png")
        curve = plot_curve(result, name, out_dir / f"{name}-curve.png")
        if curve:
            paths[f"png:{name}-curve"] = curve
    if markdown_path:
        import os

        Path(markdown_path).parent.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(out_dir.resolve(), Path(markdown_path).resolve().parent)
        Path(markdown_path).write_text(markdown(result, command, image_prefix=f"{rel}/") + "\n")
        paths["doc"] = Path(markdown_path)
    return paths
