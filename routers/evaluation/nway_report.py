"""Write an N-way evaluation (``routers.evaluation.nway``): results.json (everything, raw),
results.md (one table per family, every number labelled) and one cost–quality PNG per family."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from routers.evaluation.nway_metrics import hull, hull_quality


def _f(x: float | None, digits: int = 4) -> str:
    if x is not None and not np.isfinite(x):
        return "n/a (below the cheapest model's cost)"
    return "—" if x is None else f"{x:.{digits}f}"


def _spread(s: dict[str, float], digits: int = 4, signed: bool = False) -> str:
    fmt = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return f"{fmt.format(s['mean'])} [{fmt.format(s['min'])}, {fmt.format(s['max'])}]"


def _share(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "never reaches it"
    txt = f"{100 * np.mean(got):.1f}%"
    if len(got) > 1:
        txt += f" [{100 * min(got):.1f}, {100 * max(got):.1f}]"
    if len(got) < len(values):
        txt += f" (reached in {len(got)} of {len(values)} seeds)"
    return txt


def family_markdown(fam: dict[str, Any], routers: list[str]) -> list[str]:
    unit = fam["cost_unit"]
    best = fam["best_single"]
    lines = [f"### {fam['family']} (n = {fam['n']}, {len(fam['models'])} models; cost: {unit})", ""]
    if fam.get("note"):
        lines += [f"Data: {fam['note']}.", ""]
    lines += [f"Cost range of AIQ: [{fam['cost_range'][0]:.4g}, {fam['cost_range'][1]:.4g}] (cheapest and priciest "
              f"single model's mean cost). Best single model: {best['model']} (quality {best['quality']:.4f}, "
              f"cost {best['cost']:.4g}). Oracle: quality {fam['oracle']['quality']:.4f} at cost "
              f"{fam['oracle']['cost']:.4g}. Best two-model pair: {' → '.join(fam['best_pair']['models'])}. "
              "Pairs chosen on the training folds (folds × seeds): "
              + "; ".join(f"{p} ×{n}" for p, n in fam.get("train_pairs", {}).items()) + ".", ""]
    lines += ["| router | AIQ per fold, mean [min, max] over seeds×folds | AIQ margin vs Zero | AIQ margin vs kNN | "
              "AIQ margin vs best pair | AIQ margin vs training pair | pooled AIQ per seed, mean | "
              "cost share at best single quality | "
              "quality at 60% of best single's cost |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in ["zero", "oracle", "best_pair", "train_pair", *routers]:
        a = fam["aiq"][name]
        mg = fam["margins"].get(name, {})
        pooled = fam["pooled_aiq"].get(name)
        share = fam["cost_share_at_best_quality"].get(name)
        q60 = fam.get("quality_at_60pct_of_best_cost", {}).get(name)
        label = {"zero": "Zero router (hull of single models)", "oracle": "oracle (cheapest correct model)",
                 "best_pair": "two-model router, best pair (chosen on these folds)",
                 "train_pair": "two-model router, pair chosen on training folds"}.get(name, name)
        lines.append(
            f"| {label} | {_spread(a)} | {_spread(mg['zero'], signed=True) if 'zero' in mg else '—'} | "
            f"{_spread(mg['knn'], signed=True) if 'knn' in mg else '—'} | "
            f"{_spread(mg['best_pair'], signed=True) if 'best_pair' in mg else '—'} | "
            f"{_spread(mg['train_pair'], signed=True) if 'train_pair' in mg else '—'} | "
            f"{_f(float(np.mean(pooled))) if pooled else '—'} | "
            f"{_share(share) if share is not None else '—'} | "
            f"{_f(float(np.mean(q60))) if q60 else '—'} |")
    lines += ["", "Single models (mean cost, quality): " + "; ".join(
        f"{m} ({v['cost']:.3g}, {v['quality']:.3f})" for m, v in fam["singles"].items()) + ".", ""]
    hp = fam.get("hyperparameters", {})
    chosen = []
    for r, infos in hp.items():
        keys = sorted({k for i in infos for k in i})
        for k in keys:
            vals = [i[k] for i in infos if k in i]
            uniq, counts = np.unique(np.asarray(vals, dtype=float), return_counts=True)
            chosen.append(f"{r} {k}: " + ", ".join(f"{u:g}×{c}" for u, c in zip(uniq, counts)))
    if chosen:
        lines += ["Chosen inside the training folds: " + "; ".join(chosen) + ".", ""]
    lines += [f"![{fam['family']}]({fam['family']}.png)", ""]
    return lines


def _grid(lambdas) -> str:
    """The λ grid in words: 0 and n log-spaced values, or the list when short."""
    lam = [float(x) for x in lambdas]
    if len(lam) <= 20:
        return str(lam)
    pos = [x for x in lam if x > 0]
    return f"{'0 and ' if 0.0 in lam else ''}{len(pos)} log-spaced values from {min(pos):g} to {max(pos):g}"


def write_markdown(result: dict[str, Any], path: Path) -> None:
    routers = result["routers"]
    lines = ["# N-way routing: cross-fitted cost–quality evaluation", ""]
    if result.get("command"):
        lines += ["Produced by:", "", "```", result["command"], "```", ""]
    lines += [
        f"Embedder `{result['embedder']}`; {result['folds']} folds × seeds {result['seeds']} per family; "
        f"λ grid: {_grid(result['lambdas'])}. Routers trained on the other folds of the same family only. "
        f"Wall time {result['seconds']:.0f} s.", "",
        "How to read: **AIQ** (RouterBench) is the mean height of the non-decreasing upper convex hull of a "
        "router's (mean cost, mean quality) points over [cheapest single model's cost, priciest single model's "
        "cost]; higher is better; 0 is counted where a router cannot reach. Per-fold numbers are computed on "
        "each held-out fold (its own single-model costs set the range); margins are paired differences on "
        "the same fold, mean [min, max] over the seeds×folds. *Pooled* AIQ assembles each seed's out-of-fold "
        "choices over the whole family. *Cost share at best single quality*: the cost at which the router's "
        "pooled hull first reaches the best single model's quality, as a share of that model's cost (mean "
        "[min, max] over seeds); *quality at 60% of best single's cost*: the pooled hull's height there "
        "(mean over seeds), to compare with the best single model's quality. The best pair is chosen on "
        "these same folds (optimistic for that baseline).",
        ""]
    summary = ["| family | router | AIQ − Zero, mean [min, max] | AIQ − kNN, mean [min, max] | "
               "AIQ − training pair, mean [min, max] | cost share at best single quality | "
               "quality at 60% of best single's cost (best single's quality) |",
               "| --- | --- | --- | --- | --- | --- | --- |"]
    for fam in result["families"]:
        for r in routers:
            mg = fam["margins"][r]
            summary.append(f"| {fam['family']} | {r} | {_spread(mg['zero'], signed=True)} | "
                           f"{_spread(mg['knn'], signed=True) if 'knn' in mg else '—'} | "
                           f"{_spread(mg['train_pair'], signed=True)} | "
                           f"{_share(fam['cost_share_at_best_quality'][r])} | "
                           f"{_f(float(np.mean(fam['quality_at_60pct_of_best_cost'][r])))} "
                           f"({fam['best_single']['quality']:.4f}) |")
    lines += ["## Summary", "", *summary, ""]
    lines += ["## Per family", ""]
    for fam in result["families"]:
        lines += family_markdown(fam, routers)
    path.write_text("\n".join(lines) + "\n")


def plot_family(fam: dict[str, Any], routers: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    singles = np.array([[v["cost"], v["quality"]] for v in fam["singles"].values()])
    ax.scatter(singles[:, 0], singles[:, 1], c="grey", s=18, zorder=3, label="single models")
    for (c, q), m in zip(singles, fam["singles"]):
        ax.annotate(m.split("/")[-1][:18], (c, q), fontsize=6, color="grey", xytext=(2, 2), textcoords="offset points")
    # hulls are straight in linear cost, so draw them densely: the axis is logarithmic
    xs = np.geomspace(fam["cost_range"][0], fam["cost_range"][1], 300)
    zh = np.array(fam["zero_hull"])
    ax.plot(xs, hull_quality(zh, xs), "--", color="grey", label="Zero router (hull of single models)")
    ax.scatter([fam["oracle"]["cost"]], [fam["oracle"]["quality"]], marker="*", s=80, color="black", label="oracle")
    anchor = zh[:1]
    for name in [*routers, "best_pair"]:
        pts = np.mean(np.array(fam["curves"][name]), axis=0)     # mean over seeds, per λ / share
        label = ("best pair " + "/".join(m.split("/")[-1] for m in fam["best_pair"]["models"])
                 if name == "best_pair" else name)
        line, = ax.plot(xs, hull_quality(hull(np.vstack([anchor, pts])), xs), lw=1.3, label=f"{label} (hull)")
        ax.scatter(pts[:, 0], pts[:, 1], s=7, color=line.get_color(), alpha=0.7)
    ax.set_xscale("log")
    ax.set_xlabel(f"mean cost ({fam['cost_unit']}, log scale)")
    ax.set_ylabel("mean quality")
    ax.set_title(f"{fam['family']}: cross-fitted cost–quality, pooled, mean over seeds", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict[str, Any], out: str | Path, plots: bool = True) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    paths["json"].write_text(json.dumps(result, indent=1, default=float) + "\n")
    write_markdown(result, paths["markdown"])
    if plots:
        for fam in result["families"]:
            paths[fam["family"]] = out / f"{fam['family']}.png"
            plot_family(fam, result["routers"], paths[fam["family"]])
    return paths
