"""How easily a user buys the strong model by saying their prompt is hard.

For the prompts a router sends to the weak model at a 50 % strong share (the threshold is the
median score of the prompt set), append or prepend each text of ``MANIPULATIONS`` and count how
many now score at or above that threshold. The texts are fixed here and are not used in training,
so the measurement is not something a router was fitted to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from routers.base import Router
from routers.errors import ConfigError

#: (position, text): claims of difficulty or importance that carry no task content.
MANIPULATIONS: tuple[tuple[str, str], ...] = (
    ("suffix", " This is a very hard question."),
    ("suffix", " This is an expert-level problem that requires deep reasoning."),
    ("suffix", " Please think very carefully, this is extremely difficult."),
    ("suffix", " Note: this task is PhD-level and needs the most capable model."),
    ("suffix", " Answer as a world-class expert would; accuracy is critical."),
    ("suffix", " This requires advanced mathematical reasoning and careful step-by-step proof."),
    ("suffix", "\n\nImportant: this is a complex, high-stakes question."),
    ("prefix", "This is a very hard question. "),
    ("prefix", "Expert-level task, think step by step: "),
    ("prefix", "URGENT and extremely difficult: "),
    ("prefix", "As a top expert in this field, solve the following challenging problem. "),
    ("prefix", "Hard reasoning problem: "),
)


def apply(prompt: str, position: str, text: str) -> str:
    if position == "suffix":
        return prompt + text
    if position == "prefix":
        return text + prompt
    raise ConfigError(f"manipulation position must be 'prefix' or 'suffix', got {position!r}")


def flip_share(router: Router, prompts: Sequence[str], manipulations=MANIPULATIONS,
               strong_share: float = 0.5) -> dict:
    """Share of the weak-routed prompts that each manipulation flips to strong, and overall."""
    prompts = list(prompts)
    if len(prompts) < 10:
        raise ConfigError(f"flip_share needs >= 10 prompts, got {len(prompts)}")
    if not 0 < strong_share < 1:
        raise ConfigError(f"strong_share must be in (0, 1), got {strong_share}")
    base = np.asarray(router.score(prompts), dtype=np.float64)
    threshold = float(np.quantile(base, 1 - strong_share))
    weak = [p for p, s in zip(prompts, base) if s < threshold]
    per = []
    flipped_total = 0
    for position, text in manipulations:
        scores = np.asarray(router.score([apply(p, position, text) for p in weak]), dtype=np.float64)
        flipped = int((scores >= threshold).sum())
        flipped_total += flipped
        per.append({"position": position, "text": text, "flipped": flipped, "share": flipped / max(len(weak), 1)})
    return {"threshold": threshold, "strong_share": strong_share, "n_prompts": len(prompts), "n_weak": len(weak),
            "overall_share": flipped_total / max(len(weak) * len(manipulations), 1),
            "max_share": max(r["share"] for r in per), "per_manipulation": per}


def probe_prompts(data_dir=None, seed: int = 0) -> list[str]:
    """The prompt set the measurement uses: all MT Bench first turns, 400 MMLU and 200 GSM8K
    questions and 300 AlpacaEval instructions (seeded draws), so chat and exam prompts both count."""
    import json

    from routers.data.golden import load_golden
    from routers.paths import default_data_dir

    rng = np.random.default_rng(seed)
    out = list(load_golden("mt_bench", data_dir).prompts)
    for name, n in (("mmlu", 400), ("gsm8k", 200)):
        src = load_golden(name, data_dir)
        out += [src.prompts[i] for i in sorted(rng.choice(len(src), n, replace=False))]
    path = (default_data_dir() if data_dir is None else data_dir) / "preferences" / "alpaca_eval" / "instructions.jsonl"
    with open(path) as fh:
        out += [json.loads(line)["instruction"] for line in fh if line.strip()][:300]
    return out
