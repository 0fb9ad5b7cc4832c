"""The training-data mix as configuration, and its strong-vs-weak labelled rows.

A mix is a list of sources (``SourceSpec``: a ``load_source`` name, an optional path, a weight
that multiplies every row's weight, loader options). It lives in a JSON or YAML file::

    sources:
      - {name: alpaca_eval, weight: 1.0}
      - {name: routerbench, weight: 1.0}
      - {name: arena, path: /data/arena-55k/train.parquet, weight: 1.0}

``default_mix()`` is the general data available offline: AlpacaEval (GPT-4-judge preferences on
805 real instructions, the stand-in for the paper's Arena + judge data) and RouterBench (golden
correctness, the stand-in for the paper's golden-label augmentation), both weight 1. open7 is not
in the default: it has neither gpt-4 nor Mixtral nor a model in their tiers, so it adds no
strong-vs-weak rows with the default tiers (none of its models is in tiers 0-2); add it explicitly for routers that learn from many models (e.g. mf).

``strong_weak_pairs`` keeps only rows comparing a strong-class model with a weak-class model and
orients them from the strong side (paper: strong = tiers 0-1, weak = tier 2); explicit model
lists replace the tiers, e.g. gpt-4-1106-preview vs Mixtral-8x7B only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from routers.data.aliases import canonical
from routers.data.preferences import SOURCES, load_source
from routers.data.records import empty_frame
from routers.errors import ConfigError, DataError

PAIR_COLUMNS = ["prompt", "label", "p_strong", "weight", "source"]


class SourceSpec(BaseModel):
    """One source of a training mix."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description=f"preference source for load_source: one of {sorted(SOURCES)}")
    path: str | None = Field(default=None, description="file or dir; None = the source's default under the data dir")
    weight: float = Field(default=1.0, ge=0.0, description="multiplies every row's weight (0 = skip the source)")
    options: dict[str, Any] = Field(default_factory=dict, description="extra loader keyword arguments, e.g. {soft: true}")


class TrainingMix(BaseModel):
    """A list of weighted sources; ``load_mix`` concatenates them."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceSpec] = Field(min_length=1, description="the sources, loaded in order")

    @classmethod
    def from_file(cls, path) -> "TrainingMix":
        """Read a mix from JSON (``.json``) or YAML (anything else)."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: training mix file not found")
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix == ".json":
                raw = json.loads(text)
            else:
                import yaml

                raw = yaml.safe_load(text)
        except Exception as exc:  # json and yaml raise different parse errors; both mean "bad file"
            raise ConfigError(f"{p}: cannot parse the training mix ({exc})") from exc
        return cls.from_dict(raw, where=str(p))

    @classmethod
    def from_dict(cls, raw, where: str = "training mix") -> "TrainingMix":
        try:
            mix = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(x) for x in first["loc"])
            raise ConfigError(f"{where}: field {field!r}: {first['msg']} (got {first.get('input')!r}); "
                              f"a mix is {{sources: [{{name, path?, weight?, options?}}]}}") from exc
        for i, s in enumerate(mix.sources):
            if s.name not in SOURCES:
                raise ConfigError(f"{where}: sources.{i}.name={s.name!r} is not a source; known: {sorted(SOURCES)}")
        return mix


def default_mix() -> TrainingMix:
    """AlpacaEval + RouterBench, weight 1 each (see the module docstring)."""
    return TrainingMix(sources=[SourceSpec(name="alpaca_eval", weight=1.0),
                                SourceSpec(name="routerbench", weight=1.0)])


def read_mix(path) -> TrainingMix:
    """Same as ``TrainingMix.from_file``."""
    return TrainingMix.from_file(path)


def load_mix(mix: TrainingMix | str | Path | None = None) -> pd.DataFrame:
    """Canonical frame of every source in ``mix`` (default: ``default_mix()``), each row's weight
    multiplied by its source's weight. Sources with weight 0 are not loaded."""
    if mix is None:
        mix = default_mix()
    elif isinstance(mix, (str, Path)):
        mix = TrainingMix.from_file(mix)
    elif isinstance(mix, dict):
        mix = TrainingMix.from_dict(mix)
    frames = []
    for spec in mix.sources:
        if spec.weight == 0:
            continue
        df = load_source(spec.name, spec.path, **spec.options)
        df["weight"] = df["weight"] * spec.weight
        frames.append(df)
    if not frames:
        return empty_frame()
    return pd.concat(frames, ignore_index=True)


def _model_set(models, what: str) -> set[str]:
    if isinstance(models, str) or not models:
        raise ConfigError(f"{what}: give a non-empty list of model names, got {models!r}")
    return {canonical(m) for m in models}


def strong_weak_pairs(df: pd.DataFrame, tiers=None, strong_tiers=(0, 1), weak_tiers=(2,),
                      strong_models=None, weak_models=None) -> pd.DataFrame:
    """Rows of ``df`` comparing a strong-class with a weak-class model, oriented from the strong side.

    The classes come from ``tiers`` (a ``TierTable``) and ``strong_tiers`` / ``weak_tiers``, or
    from explicit ``strong_models`` / ``weak_models`` (which take precedence). Returns columns
    ``prompt, label ('strong'|'tie'|'weak'), p_strong, weight, source``: ``p_strong`` is the
    probability that the strong side won; ``label`` is ``tie`` for ties and for p_strong == 0.5.
    """
    if strong_models is None or weak_models is None:
        if tiers is None:
            raise ConfigError("strong_weak_pairs: pass a TierTable (tiers=...) or both strong_models and weak_models")
    strong = _model_set(strong_models, "strong_models") if strong_models is not None \
        else set(tiers.strong_models(strong_tiers))
    weak = _model_set(weak_models, "weak_models") if weak_models is not None \
        else set(tiers.weak_models(weak_tiers))
    both = strong & weak
    if both:
        raise ConfigError(f"models in both the strong and the weak class: {sorted(both)}; "
                          "choose disjoint tiers / model lists")
    a_strong = df["model_a"].isin(strong) & df["model_b"].isin(weak)
    b_strong = df["model_b"].isin(strong) & df["model_a"].isin(weak)
    keep = (a_strong | b_strong).to_numpy()
    sub = df[keep]
    p_b = sub["p_b_wins"].to_numpy(dtype=float)
    p_strong = np.where(b_strong.to_numpy()[keep], p_b, 1.0 - p_b)
    tie = sub["tie"].to_numpy(dtype=bool) | (p_strong == 0.5)
    label = np.where(tie, "tie", np.where(p_strong > 0.5, "strong", "weak"))
    return pd.DataFrame({
        "prompt": sub["prompt"].to_numpy(),
        "label": label,
        "p_strong": np.where(tie, 0.5, p_strong),
        "weight": sub["weight"].to_numpy(dtype=float),
        "source": sub["source"].to_numpy(),
    }, columns=PAIR_COLUMNS)


def train_val_split(df: pd.DataFrame, val_fraction: float = 0.05, seed: int = 0):
    """``(train, val)`` split by unique prompt: no prompt is in both. Deterministic for a seed:
    the sorted unique prompts are permuted by ``numpy.random.default_rng(seed)`` and the first
    ``round(val_fraction * n_prompts)`` (at least 1 when val_fraction > 0) go to validation."""
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction!r} must be in [0, 1)")
    if "prompt" not in df:
        raise DataError(f"train_val_split: no 'prompt' column in {list(df.columns)}")
    uniq = np.array(sorted(df["prompt"].unique()), dtype=object)
    n_val = int(round(val_fraction * len(uniq)))
    if val_fraction > 0 and len(uniq) > 1:
        n_val = min(max(n_val, 1), len(uniq) - 1)
    rng = np.random.default_rng(seed)
    val_prompts = set(uniq[rng.permutation(len(uniq))[:n_val]].tolist())
    in_val = df["prompt"].isin(val_prompts).to_numpy()
    return df[~in_val].reset_index(drop=True), df[in_val].reset_index(drop=True)
