"""Train the linear router on the golden outcomes of the served pair (``routers.data.golden``).

    rayroute train linear --embedder static --out checkpoints/linear_static   # linear_static
    rayroute train linear --embedder all-MiniLM-L6-v2 --out artifacts/linear # MiniLM embeddings
    rayroute train linear_aux --out checkpoints/linear_aux_static             # the served default

``linear_aux`` (``routers.models.linear_aux``) adds the many-model difficulty and GSM8K-steps
features, fitted on all of their data (``routers.data.aux_targets``), with β chosen by
leave-one-source-out over the golden sources.

Sources are weighted by ``routers.data.golden.source_weights`` (rows of a source of n questions
weigh ∝ 1/√n), the same rule the evaluation protocol trains with. A 5 % split of the questions (seeded) is held out
for the summary line's APGR; the saved router is then refit on everything. How well the recipe
routes questions it never saw is what ``rayroute eval`` measures (cross-fitted and
leave-one-benchmark-out); the checkpoint's ``info.sources`` names what it was trained on, so the
evaluation never scores it on those benchmarks in-sample.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from routers.data.golden import GOLDEN_SOURCES, load_golden, source_weights
from routers.embeddings import Embedder, embedder_from_spec
from routers.errors import ConfigError
from routers.evaluation import metrics as m
from routers.models.linear import fit_linear
from routers.registry import default_checkpoint_dir
from routers.training.common import Timer, TrainResult, set_seed

log = logging.getLogger(__name__)


def train_linear_aux(out_dir: str | Path | None = None, embedder: str | Embedder | None = "static",
                     sources: Sequence[str] | str = GOLDEN_SOURCES, data_dir: str | Path | None = None,
                     val_fraction: float = 0.05, seed: int = 0) -> TrainResult:
    """``train_linear`` with the aux features (``routers.models.linear_aux``)."""
    return train_linear(out_dir or default_checkpoint_dir() / "linear_aux", embedder, sources, data_dir,
                        val_fraction, seed, aux=True)


def _aux_regressors(emb_model: Embedder, data_dir: str | Path | None) -> list:
    from routers.data.aux_targets import AUX_KINDS, load_aux
    from routers.models.linear_aux import fit_aux

    out = []
    for kind in AUX_KINDS:
        data = load_aux(kind, data_dir)
        log.info("aux %s: embedding %d prompts", kind, len(data))
        out.append(fit_aux(data, emb_model.embed(data.prompts, progress=True)))
    return out


def train_linear(out_dir: str | Path | None = None, embedder: str | Embedder | None = "static",
                 sources: Sequence[str] | str = GOLDEN_SOURCES, data_dir: str | Path | None = None,
                 val_fraction: float = 0.05, seed: int = 0, alpha_text: float = 10.0,
                 alpha_emb: float = 10.0, labels=None, labels_weight: float = 1.0,
                 aux: bool = False) -> TrainResult:
    """Fit on ``sources`` (golden source names, or a comma-separated string), plus the traffic
    labels of the store ``labels`` if given (one more source, ``traffic``, weighted like the others
    times ``labels_weight``; ``routers.learning.labels``), and write the checkpoint; ``aux`` trains
    the ``linear_aux`` router instead."""
    if isinstance(sources, str):
        sources = [s.strip() for s in sources.split(",") if s.strip()]
    if not sources and labels is None:
        raise ConfigError(f"--sources needs at least one of {', '.join(GOLDEN_SOURCES)} (or give --labels)")
    if not 0 <= val_fraction < 0.5:
        raise ConfigError(f"val_fraction must be in [0, 0.5), got {val_fraction}")
    set_seed(seed)
    emb_model = embedder if embedder is not None and not isinstance(embedder, str) else embedder_from_spec(embedder)
    out = Path(out_dir) if out_dir else default_checkpoint_dir() / "linear"
    with Timer() as timer:
        srcs = [load_golden(s, data_dir) for s in sources]
        label_info = None
        if labels is not None:
            traffic, label_info = traffic_source(labels, labels_weight)
            srcs.append(traffic)
        prompts = [p for s in srcs for p in s.prompts]
        log.info("embedding %d golden prompts with %s", len(prompts), emb_model.name)
        emb = emb_model.embed(prompts, progress=True)
        y = np.concatenate([s.targets for s in srcs])
        sw = mix_weights({s.name: len(s) for s in srcs}, labels_weight)
        w = np.concatenate([np.full(len(s), sw[s.name]) for s in srcs])
        strong = np.concatenate([s.strong / s.score_range for s in srcs])
        weak = np.concatenate([s.weak / s.score_range for s in srcs])
        info = {"sources": list(sources) + (["traffic"] if label_info else []), "rows": {s.name: len(s) for s in srcs},
                "target": "P(strong better) = 0.5 + (strong - weak) / (2 * score range)",
                "pair": "gpt-4-1106-preview vs Mixtral-8x7B-Instruct", "seed": seed,
                "source_weights": sw, **({"labels": label_info} if label_info else {})}
        names = np.concatenate([np.full(len(s), s.name, dtype=object) for s in srcs])
        if aux:
            from routers.models.linear_aux import fit_linear_aux

            regs = _aux_regressors(emb_model, data_dir)

            def fit(p, e, yy, ww, src, **kw):
                return fit_linear_aux(p, e, yy, ww, src, regs, alpha_text=alpha_text, alpha_emb=alpha_emb, **kw)
        else:
            def fit(p, e, yy, ww, src, **kw):
                return fit_linear(p, e, yy, ww, alpha_text=alpha_text, alpha_emb=alpha_emb, **kw)
        metrics: dict = {"n_rows": len(y)}
        if val_fraction > 0:
            val = np.random.default_rng(seed).random(len(y)) < val_fraction
            held = fit([p for p, v in zip(prompts, val) if not v], emb[~val], y[~val], w[~val], names[~val])
            scores = held.score_with_embeddings([p for p, v in zip(prompts, val) if v], emb[val])
            metrics["val_apgr"] = float(m.apgr(scores, strong[val], weak[val]))
            metrics["val_rows"] = int(val.sum())
            info["val_apgr"] = metrics["val_apgr"]
        router = fit(prompts, emb, y, w, names, embedder=emb_model, info=info)
        router.save(out)
    result = TrainResult("linear_aux" if aux else "linear", out, metrics, timer.seconds)
    print(result.summary_line())
    return result


def mix_weights(sizes: dict[str, int], labels_weight: float = 1.0) -> dict[str, float]:
    """Per-row weight of each source of a training mix: ``source_weights``, the traffic labels'
    (source ``traffic``, if present) times ``labels_weight``. The one rule for the trainer, the
    promotion gate's cross-fitted candidate and the promoted checkpoint."""
    sw = source_weights(sizes)
    if "traffic" in sw:
        sw["traffic"] *= labels_weight
    return sw


def traffic_source(store, weight: float = 1.0):
    """The label store as a golden-like source named ``traffic`` (strong = P(strong better),
    weak = 1 − that; ``routers.learning.labels.pair_scores``) and what the checkpoint records
    about it (count, newest label time: the promotion gate scores a router only on labels newer
    than the ones it was trained on)."""
    from routers.data.golden import GoldenSource
    from routers.learning.labels import pair_scores, targets
    from routers.learning.store import ReadStats, read_labels

    if weight <= 0:
        raise ConfigError(f"--labels-weight must be > 0, got {weight}")
    stats = ReadStats()
    if isinstance(store, (str, Path)):
        df = read_labels(store, stats=stats)
    else:  # the labels already read (a DataFrame of stored records): the gate trains on what it compared
        df, store = store, "(in memory)"
    if len(df) < 2:
        raise ConfigError(f"label store {str(store)!r} holds {len(df)} label(s); collect at least 2 before training")
    strong, weak = pair_scores(targets(df))
    info = {"store": str(store), "count": int(len(df)), "until": float(df["time"].max()),
            "kinds": {k: int(v) for k, v in df["kind"].value_counts().items()}, "weight": weight,
            "torn_records_skipped": stats.torn_tail}
    log.info("traffic labels: %d from %s (%d torn tail(s) skipped)", len(df), store, stats.torn_tail)
    return GoldenSource("traffic", df["prompt"].astype(str).tolist(), strong, weak, 1.0), info
