"""Do length-controlled judge labels transfer better? (``rayroute eval-judge-labels``)

Trains the ``linear_static`` recipe (the linear router on static embeddings) on the 805 AlpacaEval
instructions, once per judge-label kind of ``routers.data.length_control`` (raw, raw_lc, glm,
glm_lc), and scores MT Bench, MMLU and GSM8K, which it never saw: the leave-one-benchmark-out
condition (ii) of the honest protocol, with AlpacaEval prompts that are near-duplicates (cosine >=
0.95) of a benchmark prompt removed. Beside each: random's 95 % band, the prompt-length baseline,
and paired-bootstrap intervals of the length-controlled label minus its uncontrolled twin.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from routers.data.golden import load_golden
from routers.data.length_control import LABELS, length_controlled_labels
from routers.evaluation import metrics as m
from routers.evaluation.baselines import length_scores, random_baseline
from routers.evaluation.protocol import NEAR_DUPLICATE, paired_bootstrap

log = logging.getLogger(__name__)

BENCHMARKS = ("mt_bench", "mmlu", "gsm8k")
#: (length-controlled, uncontrolled) pairs compared by paired bootstrap
PAIRS = (("raw_lc", "raw"), ("glm_lc", "glm"))


def evaluate_judge_labels(embedder_spec: str = "static", benchmarks: Sequence[str] = BENCHMARKS,
                          n_random: int = 1000, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    from routers.embeddings import embedder_from_spec
    from routers.models.linear import fit_linear

    embedder = embedder_from_spec(embedder_spec)
    judge = length_controlled_labels()
    judge_emb = np.asarray(embedder.embed(judge.prompts), np.float32)
    out: dict[str, Any] = {
        "embedder": embedder.name, "recipe": "linear (hashed word n-grams + embedding + surface counts)",
        "judge": {"beta": judge.beta, "sigma_chars": judge.sigma_chars, "n_judgments": judge.n_judgments,
                  "n_models": judge.n_models, "n_instructions": len(judge.prompts),
                  "label_means": {k: float(v.mean()) for k, v in judge.labels.items()},
                  "corr_with_length_gap": {k: float(np.corrcoef(v, judge.length_gap_chars)[0, 1])
                                           for k, v in judge.labels.items()},
                  "corr_with_prompt_chars": {k: float(np.corrcoef(v, [len(p) for p in judge.prompts])[0, 1])
                                             for k, v in judge.labels.items()}},
        "benchmarks": {},
    }
    for name in benchmarks:
        src = load_golden(name)
        emb = np.asarray(embedder.embed(src.prompts), np.float32)
        keep = (judge_emb @ emb.T).max(axis=1) < NEAR_DUPLICATE
        train = [p for p, k in zip(judge.prompts, keep) if k]
        log.info("%s: %d questions; training on %d AlpacaEval instructions (%d near-duplicates dropped)",
                 name, len(src), len(train), int((~keep).sum()))
        scores = {kind: fit_linear(train, judge_emb[keep], judge.labels[kind][keep]).score_with_embeddings(
            src.prompts, emb) for kind in LABELS}
        rnd = random_baseline(src.strong, src.weak, n_trials=n_random, seed=seed)["apgr"]
        out["benchmarks"][name] = {
            "n": len(src), "near_duplicates_dropped": int((~keep).sum()),
            "random": rnd, "length": float(m.apgr(length_scores(src.prompts), src.strong, src.weak)),
            "apgr": {k: float(m.apgr(s, src.strong, src.weak)) for k, s in scores.items()},
            "lc_minus_uncontrolled": {f"{a} - {b}": paired_bootstrap(scores[a], scores[b], src.strong, src.weak,
                                                                    n_boot=n_boot, seed=seed) for a, b in PAIRS},
        }
    return out


def markdown(res: dict[str, Any], command: str | None = None) -> str:
    j = res["judge"]
    lines = ["# Length-controlled judge labels: do they transfer better?", ""]
    if command:
        lines += ["Regenerate with:", "", "```bash", command, "```", ""]
    lines += [
        f"The linear router ({res['embedder']}) trained on {j['n_instructions']} AlpacaEval instructions with "
        "each kind of GPT-4-judge label for gpt4_1106_preview vs Mixtral-8x7B-Instruct "
        "(routers/data/length_control.py), scored on benchmarks it never saw (protocol (ii)).",
        "",
        f"Length bias of the judge: the GLM over {j['n_judgments']:,} judgments of {j['n_models']} models gives "
        f"β = {j['beta']:.2f} logits per unit of tanh(length gap / {j['sigma_chars']:.0f} chars).",
        "",
        "| label | mean P(strong better) | corr. with the answers' length gap | corr. with prompt length |",
        "| --- | ---: | ---: | ---: |",
    ]
    for k in LABELS:
        lines.append(f"| {k} | {j['label_means'][k]:.3f} | {j['corr_with_length_gap'][k]:+.3f} | "
                     f"{j['corr_with_prompt_chars'][k]:+.3f} |")
    lines += ["", "APGR under (ii):", "",
              "| benchmark | random (95 %) | length | " + " | ".join(LABELS) + " |",
              "| --- | --- | ---: | " + " | ".join("---:" for _ in LABELS) + " |"]
    for name, b in res["benchmarks"].items():
        r = b["random"]
        lines.append(f"| {name} (n={b['n']}) | {r['mean']:.3f} ({r['lo']:.3f}–{r['hi']:.3f}) | {b['length']:.3f} | "
                     + " | ".join(f"{b['apgr'][k]:.3f}" for k in LABELS) + " |")
    lines += ["", "Length-controlled minus uncontrolled, paired bootstrap over questions (95 %):", ""]
    for name, b in res["benchmarks"].items():
        for pair, d in b["lc_minus_uncontrolled"].items():
            lines.append(f"- {name}, {pair}: {d['diff']:+.3f} ({d['lo']:+.3f} to {d['hi']:+.3f})")
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res["benchmarks"])
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        b = res["benchmarks"][name]
        ax.bar(range(len(LABELS)), [b["apgr"][k] for k in LABELS], color=["#999", "#3a7", "#bbb", "#2a5"])
        ax.axhspan(b["random"]["lo"], b["random"]["hi"], color="#f4c", alpha=0.15, zorder=0, label="random 95 %")
        ax.axhline(b["length"], color="#c33", ls="--", label="prompt length")
        ax.set_xticks(range(len(LABELS)), LABELS)
        ax.set_ylim(0.25, 0.8)
        ax.set_title(f"{name} (ii)")
        ax.set_ylabel("APGR")
    axes[0][0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
