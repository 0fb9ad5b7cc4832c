"""Promotion: serve a new router checkpoint by a hot reload through Serve's ``user_config``.

The app runs from a Serve config (``serve run`` / ``serve deploy serve_config.yaml``: Serve's
declarative API). A promotion re-applies that same config with one change in its ``deployments:``
section: the ``user_config`` of the deployment that scores the router (``Ingress`` for a router
placed in the ingress, ``Router_<alias>`` otherwise) now names the new checkpoint. The application's
``args`` and code are unchanged, so Serve keeps every replica and only calls its ``reconfigure``:
the replica loads the new router beside the old one and swaps it in (``deployments.ingress`` /
``deployments.router_replica``); requests keep flowing, none fails (``tests/integration/test_learning_live.py``).

``rayroute promote`` (``cli/learn.py``) gates a candidate first (``routers.learning.gate``).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

from routers.errors import ConfigError

from deployments.app import ingress_user_config
from deployments.config import AppArgs

log = logging.getLogger(__name__)


def _app(config: dict[str, Any], app_name: str) -> dict[str, Any]:
    for app in config.get("applications") or []:
        if app.get("name") == app_name:
            return app
    names = [a.get("name") for a in config.get("applications") or []]
    raise ConfigError(f"the Serve config has no application {app_name!r}; it has {names}")


def app_args(config: dict[str, Any], app_name: str) -> dict[str, Any]:
    """The ``args`` of application ``app_name`` in a Serve config."""
    return _app(config, app_name).get("args") or {}


def current_source(config: dict[str, Any], app_name: str, alias: str) -> str:
    """The checkpoint a router serves under ``config`` (its user_config override, else its args)."""
    app = _app(config, app_name)
    cfg = AppArgs.model_validate(app.get("args") or {})
    router = next((r for r in cfg.routers if r.alias == alias), None)
    if router is None:
        raise ConfigError(f"router {alias!r} is not served; routers: {[r.alias for r in cfg.routers]}")
    dep_name = "Ingress" if router.placement == "ingress" else f"Router_{alias}"
    for dep in app.get("deployments") or []:
        if dep.get("name") == dep_name and dep.get("user_config"):
            uc = dep["user_config"]
            rc = uc.get("routers", {}).get(alias) if dep_name == "Ingress" else uc
            if rc and rc.get("source"):
                return rc["source"]
    return router.source or alias


def promoted_config(config: dict[str, Any], app_name: str, alias: str, checkpoint: str | Path,
                    shadow: dict[str, Any] | None = None) -> dict[str, Any]:
    """``config`` with router ``alias`` serving ``checkpoint`` (and the ingress's shadow candidates
    set to ``shadow`` if given), as a ``deployments:`` user_config override; ``args`` untouched."""
    out = copy.deepcopy(config)
    app = _app(out, app_name)
    cfg = AppArgs.model_validate(app.get("args") or {})
    router = next((r for r in cfg.routers if r.alias == alias), None)
    if router is None and checkpoint is not None:
        raise ConfigError(f"router {alias!r} is not served; routers: {[r.alias for r in cfg.routers]}")
    deps = app.setdefault("deployments", [])
    by_name = {d.get("name"): d for d in deps}

    def entry(name: str) -> dict[str, Any]:
        if name not in by_name:
            by_name[name] = {"name": name}
            deps.append(by_name[name])
        return by_name[name]

    ingress = entry("Ingress")
    uc = copy.deepcopy(ingress.get("user_config") or ingress_user_config(cfg))
    if checkpoint is not None:
        src = str(Path(checkpoint).resolve())
        if not (Path(src) / "config.json").is_file():
            raise ConfigError(f"{src!r} is not a router checkpoint (no config.json); train one with "
                              "`rayroute train linear --labels STORE --out DIR`")
        if router.placement == "ingress":
            rc = dict(uc.get("routers", {}).get(alias) or router.user_config())
            uc.setdefault("routers", {})[alias] = {**rc, "source": src}
        else:
            dep = entry(f"Router_{alias}")
            dep["user_config"] = {**(dep.get("user_config") or router.user_config()), "source": src}
    if shadow is not None:
        uc["shadow"] = shadow
    ingress["user_config"] = uc
    return out


def apply_config(config: dict[str, Any], wait_s: float = 120.0) -> None:
    """Apply a Serve config to the running Serve instance (as ``serve deploy`` does) and wait until
    every application is RUNNING again. Needs ``ray.init`` to the cluster first."""
    from ray.serve._private import api as serve_api
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    client = serve_api.serve_start(http_options=schema.http_options.model_dump(),
                                   proxy_location=schema.proxy_location)
    client.deploy_apps(schema, _blocking=False)
    wait_running([a.name for a in schema.applications], wait_s)


def wait_running(app_names: list[str], wait_s: float) -> None:
    from ray import serve

    t0 = time.monotonic()
    time.sleep(0.5)
    while time.monotonic() - t0 < wait_s:
        apps = serve.status().applications
        states = {n: str(apps[n].status) if n in apps else "MISSING" for n in app_names}
        if all(s.endswith("RUNNING") for s in states.values()):
            return
        if any(s.endswith("DEPLOY_FAILED") for s in states.values()):
            msgs = {n: apps[n].message for n in app_names if n in apps}
            raise ConfigError(f"Serve could not apply the config: {json.dumps(msgs)[:2000]}")
        time.sleep(0.5)
    raise TimeoutError(f"applications {app_names} not RUNNING after {wait_s:.0f}s")


def run_promotion(labels_store: str | Path, alias: str, serve_config: dict[str, Any], app_name: str = "rayroute",
                  sources: tuple[str, ...] | list[str] = ("mt_bench", "arc_challenge", "mbpp"),
                  out_dir: str | Path | None = None, dry_run: bool = False, k: int = 5, seed: int = 0,
                  labels_weight: float = 1.0, min_gain: float = 0.0, data_dir: str | Path | None = None,
                  apply: bool = True, general=None, embedder=None) -> dict[str, Any]:
    """Gate a candidate trained on the label store against the router ``alias`` serves now; when it
    wins beyond the noise (and not ``dry_run``): train it on every label, write the checkpoint to
    ``out_dir`` (default ``<store>/routers/<alias>-<n labels>-<time>``), hot-reload it (``apply``)
    and append the decision to ``<store>/promotions.jsonl``. Returns the comparison + decision."""
    from routers.data.golden import load_golden
    from routers.embeddings import embedder_from_spec
    from routers.learning.gate import compare
    from routers.learning.store import LabelWriter, read_labels, store_path
    from routers.registry import load_router

    t0 = time.monotonic()
    labels = read_labels(labels_store)
    serving_source = current_source(serve_config, app_name, alias)
    serving = load_router(serving_source)
    general = general if general is not None else [load_golden(s, data_dir) for s in sources]
    embedder = embedder or embedder_from_spec("static")
    res = compare(serving.score, getattr(serving, "info", None), labels, general, embedder, k=k, seed=seed,
                  labels_weight=labels_weight, min_gain=min_gain)
    res.update({"router": alias, "serving": str(serving_source), "dry_run": dry_run, "general_sources": list(sources)})
    if res["promote"] and not dry_run:
        root = store_path(labels_store)
        out = Path(out_dir) if out_dir else root / "routers" / f"{alias}-{len(labels)}-{time.strftime('%Y%m%dT%H%M%S')}"
        _train_with(out, general, labels, embedder, labels_weight, seed)
        res["candidate"] = str(out)
        res["config"] = promoted_config(serve_config, app_name, alias, out)
        if apply:
            apply_config(res["config"])
            res["applied"] = True
    res["seconds"] = round(time.monotonic() - t0, 2)
    decision = {k: v for k, v in res.items() if k != "config"}
    decision["time"] = time.time()
    decision["decision"] = "promoted" if res.get("applied") else ("would promote" if res["promote"] else "rejected")
    LabelWriter(store_path(labels_store) / PROMOTIONS_DIR, fsync=True).append(decision)
    return res


#: where ``run_promotion`` logs every decision, inside the label store (same JSONL partitions)
PROMOTIONS_DIR = "_promotions"


def promotion_counts(labels_store: str | Path) -> dict[str, int]:
    """Decisions logged by ``run_promotion``: {"promoted": n, "rejected": m, ...}."""
    from routers.learning.store import store_path

    counts: dict[str, int] = {}
    root = store_path(labels_store) / PROMOTIONS_DIR
    for f in sorted(root.glob("date=*/part-*.jsonl")) if root.is_dir() else []:
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                d = json.loads(line).get("decision", "unknown")
            except (json.JSONDecodeError, AttributeError):
                continue  # a torn last line
            counts[d] = counts.get(d, 0) + 1
    return counts


def _train_with(out: Path, general, labels, embedder, labels_weight: float, seed: int) -> None:
    """The candidate on the already loaded general sources + the labels the gate compared on."""
    import numpy as np

    from routers.models.linear import fit_linear
    from routers.training.linear import mix_weights, traffic_source

    traffic, info = traffic_source(labels, labels_weight)
    srcs = [*general, traffic]
    prompts = [p for s in srcs for p in s.prompts]
    emb = embedder.embed(prompts)
    sw = mix_weights({s.name: len(s) for s in srcs}, labels_weight)
    w = np.concatenate([np.full(len(s), sw[s.name]) for s in srcs])
    y = np.concatenate([s.targets for s in srcs])
    router = fit_linear(prompts, emb, y, w, embedder=embedder,
                        info={"sources": [s.name for s in srcs], "labels": info, "seed": seed, "source_weights": sw})
    router.save(out)
