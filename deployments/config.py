"""The application's configuration: ``AppArgs``, serve_config.yaml's ``args:``, validated by pydantic
(unknown keys are errors), and its parts, which the deployments take as typed arguments.

Relative paths are resolved against the repository root (Ray replicas run in another directory).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from routers.errors import ConfigError
from routers.paths import REPO_ROOT

log = logging.getLogger(__name__)

DEFAULT_WEAK_MODEL = "models/tiny-llama"


def _abs(path: str) -> str:
    """Relative paths in config are relative to the repository root (replicas' cwd varies)."""
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (REPO_ROOT / p))


def resolve_source(v: str | None) -> str | None:
    """A router source: a registry name as is, a path made absolute."""
    if v is None:
        return v
    looks_like_path = "/" in v or v.startswith(".") or v.startswith("~")
    return _abs(v) if looks_like_path else v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- deployment options --------------------------------------------------------------------------


class AutoscalingOptions(_Strict):
    min_replicas: int = Field(1, ge=0, description="fewest replicas")
    max_replicas: int = Field(1, ge=1, description="most replicas")
    initial_replicas: int | None = Field(None, ge=0, description="replicas at start (default min_replicas)")
    target_ongoing_requests: float = Field(2.0, gt=0, description="ongoing requests per replica to aim for")
    upscale_delay_s: float = Field(10.0, ge=0, description="seconds of high load before adding replicas")
    downscale_delay_s: float = Field(60.0, ge=0, description="seconds of low load before removing replicas")
    metrics_interval_s: float | None = Field(None, gt=0, description="how often replicas report load")

    @model_validator(mode="after")
    def _order(self) -> "AutoscalingOptions":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


class ActorOptions(_Strict):
    num_cpus: float = Field(0.25, ge=0, description="CPUs reserved per replica (fractions allowed)")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica (fractions allowed, e.g. 0.5)")
    memory: int | None = Field(None, ge=0, description="bytes of memory reserved per replica")
    resources: dict[str, float] | None = Field(None, description="custom Ray resources")


class DeploymentOptions(_Strict):
    num_replicas: int | None = Field(None, ge=1, description="fixed replica count (exclusive with autoscaling_config)")
    autoscaling_config: AutoscalingOptions | None = Field(None, description="autoscale between min and max replicas")
    max_ongoing_requests: int | None = Field(None, ge=1, description="concurrent requests per replica")
    ray_actor_options: ActorOptions = Field(default_factory=ActorOptions, description="per-replica resources")
    health_check_period_s: float | None = Field(None, gt=0, description="seconds between health checks")
    health_check_timeout_s: float | None = Field(None, gt=0, description="health check timeout in seconds")
    graceful_shutdown_timeout_s: float | None = Field(None, ge=0, description="seconds to drain on shutdown")

    @model_validator(mode="after")
    def _exclusive(self) -> "DeploymentOptions":
        if self.num_replicas is not None and self.autoscaling_config is not None:
            raise ValueError("set either num_replicas or autoscaling_config, not both")
        return self

    def to_serve(self) -> dict[str, Any]:
        out = self.model_dump(exclude_none=True)
        out["ray_actor_options"] = self.ray_actor_options.model_dump(exclude_none=True)
        return out


class DeploymentsArgs(_Strict):
    ingress: DeploymentOptions = Field(default_factory=DeploymentOptions, description="the HTTP ingress")
    router: DeploymentOptions = Field(default_factory=DeploymentOptions,
                                      description="each router deployment (a router's own `deployment` overrides)")
    weak_model: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(ray_actor_options=ActorOptions(num_cpus=1.0)),
        description="the vLLM weak-model replica")
    strong_model: DeploymentOptions = Field(default_factory=DeploymentOptions, description="the strong-model API client")
    budget_state: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(num_replicas=1, ray_actor_options=ActorOptions(num_cpus=0.05)),
        description="the shared budget-control state (budget.enabled); one replica holds it")

    @field_validator("budget_state")
    @classmethod
    def _one_state(cls, v: DeploymentOptions) -> DeploymentOptions:
        if v.autoscaling_config is not None or (v.num_replicas or 1) != 1:
            raise ValueError("deployments.budget_state must have exactly one replica (num_replicas: 1): "
                             "it is the one shared copy of the controllers")
        return v


# --- parts ---------------------------------------------------------------------------------------


class CalibrationArgs(_Strict):
    prompts_file: str = Field(description="prompts to calibrate strong-fraction -> threshold (.jsonl/.csv/.txt)")
    field: str = Field("instruction", description="JSON key / CSV column holding the prompt")
    max_prompts: int = Field(500, ge=10, le=100_000, description="prompts scored at start-up")
    required: bool = Field(False, description="fail start-up if the file is missing (else: fraction names disabled)")

    @field_validator("prompts_file")
    @classmethod
    def _path(cls, v: str) -> str:
        return _abs(v)


class RouterConfig(_Strict):
    """One router replica's configuration: Serve's ``user_config`` of a router deployment, which the
    replica receives in ``reconfigure`` (at start and on every change, in place)."""

    source: str | None = Field(None, description="registry name or checkpoint directory (default: alias)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="constructor/load overrides, e.g. {seed: 1}")
    default_threshold: float = Field(0.5, ge=0.0, le=1.0, allow_inf_nan=False,
                                     description="threshold for 'router-<alias>' with none given")
    calibration: CalibrationArgs | None = Field(None, description="enables 'router-<alias>-strong<fraction>'")
    max_batch_size: int = Field(16, ge=1, le=1024, description="@serve.batch size")
    batch_wait_timeout_s: float = Field(0.005, ge=0, le=1, description="@serve.batch wait")
    torch_threads: int | None = Field(None, ge=1, le=256, description=(
        "torch intra-op threads in the router replica (default: Ray's OMP_NUM_THREADS, which is 1 "
        "for a fractional num_cpus); more threads embed a batch faster when the node has idle cores"))
    score_cache_entries: int = Field(0, ge=0, le=10_000_000, description=(
        "keep the scores of up to this many recent distinct prompts per replica (~180 bytes each; "
        "prompts are stored as digests) and reuse them: same decisions, no re-scoring of a repeated "
        "prompt. 0 (default) turns it off; ignored for the per-call random router"))
    reload_token: str | None = Field(None, description="change to force a checkpoint reload (reconfigure)")

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | None) -> str | None:
        return resolve_source(v)


class BudgetTargetArgs(_Strict):
    """One budget target: exactly one of a strong-call share or a dollar rate."""

    strong_share: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False,
                                       description="hold this share of strong calls, in [0, 1]")
    usd_per_hour: float | None = Field(None, ge=0.0, allow_inf_nan=False,
                                       description="hold this spend in USD per hour (converted to a share)")
    usd_per_1k_requests: float | None = Field(None, ge=0.0, allow_inf_nan=False,
                                              description="hold this spend in USD per 1,000 requests")

    @model_validator(mode="after")
    def _exactly_one(self) -> "BudgetTargetArgs":
        given = [k for k in ("strong_share", "usd_per_hour", "usd_per_1k_requests") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a budget target needs exactly one of strong_share, usd_per_hour, usd_per_1k_requests; "
                             f"got {given or 'none'}")
        return self

    def kind_value(self) -> tuple[str, float]:
        """(kind, value) as ``routers.budget.Target`` takes them."""
        if self.strong_share is not None:
            return "share", self.strong_share
        if self.usd_per_hour is not None:
            return "usd_per_hour", self.usd_per_hour
        return "usd_per_1k_requests", float(self.usd_per_1k_requests)


class RouterArgs(RouterConfig):
    """A router of the app: its replica's configuration, plus its name and where it runs."""

    alias: str = Field(pattern=r"^[a-z0-9_]{1,40}$", description="name in 'router-<alias>-<threshold>'")
    placement: Literal["replica", "ingress"] = Field("replica", description=(
        "'replica': the router is its own autoscaled deployment (GPU-able; the default). 'ingress': "
        "it scores inside the ingress process, inline (no Serve hop, no batch queue); for routers "
        "that score in about a millisecond or less (static embeddings, random, length), scaled with "
        "the ingress"))
    deployment: DeploymentOptions | None = Field(None, description="overrides deployments.router")
    budget: BudgetTargetArgs | None = Field(None, description=(
        "with budget.enabled: what 'router-<alias>' (and bare 'router' for the default router) holds live, "
        "instead of default_threshold"))

    @model_validator(mode="after")
    def _placement(self) -> "RouterArgs":
        if self.placement == "ingress" and self.deployment is not None:
            raise ValueError(f"router {self.alias!r} is placed in the ingress, so it has no deployment of its "
                             "own: remove `deployment` (it scales with deployments.ingress) or use placement: replica")
        batching = sorted({"max_batch_size", "batch_wait_timeout_s"} & self.model_fields_set)
        if self.placement == "ingress" and batching:
            raise ValueError(f"router {self.alias!r} is placed in the ingress, where it scores each request inline: "
                             f"remove {' and '.join(batching)} or use placement: replica")
        return self

    def replica_config(self) -> RouterConfig:
        fields = {name: getattr(self, name) for name in RouterConfig.model_fields}
        return RouterConfig(**{**fields, "source": self.source or self.alias})

    def user_config(self) -> dict[str, Any]:
        """``replica_config()`` as Serve's JSON-able ``user_config``."""
        return self.replica_config().model_dump()


#: request features a weak model may lack (``deployments.capabilities``)
Feature = Literal["images", "audio", "tools", "context"]


class WeakModelArgs(_Strict):
    model: str = Field(DEFAULT_WEAK_MODEL, description="local model directory (or hub id where downloads are allowed)")
    api_base_url: str | None = Field(None, description=(
        "serve the weak model from this OpenAI-compatible API (e.g. a vLLM server elsewhere) instead of "
        "starting vLLM in the replica; `model` is then the model's name at that API. The engine "
        "fields below are ignored"))
    api_key_env: str = Field("WEAK_MODEL_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                             description="with api_base_url: environment variable holding the API key")
    served_model_name: str | None = Field(None, description="name reported in responses (default: weak-<dir name>)")
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = Field("bfloat16", description="weights dtype")
    max_model_len: int = Field(1024, ge=64, description="context length in tokens")
    enforce_eager: bool = Field(True, description="no graph capture / compile (needed on CPU)")
    kv_cache_space_gib: int = Field(1, ge=1, le=512, description="VLLM_CPU_KVCACHE_SPACE on CPU, GiB")
    max_tokens_default: int = Field(128, ge=1, description="max_tokens when a request gives none")
    max_num_seqs: int = Field(16, ge=1, description="concurrent sequences in the engine")
    tool_call_parser: str | None = Field(None, description=(
        "vLLM's --tool-call-parser for this model (e.g. hermes, llama3_json, mistral); with one, the weak "
        "model serves `tools` (auto, required and named tool_choice); without, tool requests are a "
        "feature it lacks"))
    tool_strict_level: Literal["auto", "function", "parameter"] = Field("auto", description=(
        "vLLM's --tool-strict-level: 'auto' constrains tool arguments to their schema for tools marked "
        "strict: true (as OpenAI does); 'parameter' for every tool"))
    supports_images: bool = Field(False, description="the model takes image content parts (a vision model)")
    supports_audio: bool = Field(False, description="the model takes input_audio content parts")
    route_strong_for: list[Feature] = Field(["images", "audio", "tools"], description=(
        "features the weak model lacks that send a routed request to the strong model (header "
        "x-rayroute-capability, counted); a lacking feature not listed is a 400 naming it. 'context': a "
        "conversation over max_model_len, which vLLM rejects, is sent to the strong model instead"))
    structured_outputs: dict[str, Any] = Field(default_factory=dict, description=(
        "vLLM StructuredOutputsConfig fields, e.g. {backend: xgrammar, disable_any_whitespace: true}"))
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="more AsyncEngineArgs fields")

    @model_validator(mode="after")
    def _resolve(self) -> "WeakModelArgs":
        looks_local = self.model.startswith((".", "/", "~")) or self.model.startswith("models/")
        if looks_local and self.api_base_url is None:
            self.model = _abs(self.model)
        if self.served_model_name is None:
            self.served_model_name = "weak-" + Path(self.model).name
        return self

    def engine_args(self) -> dict[str, Any]:
        """AsyncEngineArgs fields."""
        return {"dtype": self.dtype, "max_model_len": self.max_model_len, "enforce_eager": self.enforce_eager,
                "max_num_seqs": self.max_num_seqs, "disable_log_stats": True,
                **({"structured_outputs_config": self.structured_outputs} if self.structured_outputs else {}),
                **self.engine_kwargs}

    def lacks(self) -> frozenset[str]:
        """The request features this model cannot serve (context is known per request only)."""
        missing = {"images"} if not self.supports_images else set()
        missing |= {"audio"} if not self.supports_audio else set()
        missing |= {"tools"} if not self.tool_call_parser else set()
        return frozenset(missing)


class RemoteApiArgs(_Strict):
    """A model behind an OpenAI-compatible API, called by the ``StrongModel`` client (retries, cooldown)."""

    base_url: str = Field("https://api.openai.com/v1", description="any OpenAI-compatible API base URL")
    model: str = Field("gpt-4o", description="model name at that API (also the name reported)")
    api_key_env: str = Field("OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                             description="environment variable holding the API key")
    request_timeout_s: float = Field(60.0, gt=0, le=3600, description="per-attempt timeout, seconds")
    max_retries: int = Field(2, ge=0, le=10, description="retries on 429/5xx/timeouts/connection errors")
    backoff_initial_s: float = Field(0.5, ge=0, description="first retry delay, doubled each retry")
    backoff_max_s: float = Field(8.0, ge=0, description="retry delay cap (also caps Retry-After)")
    cooldown_failures: int = Field(5, ge=0, le=1000,
                                   description="consecutive failed attempts that start a cooldown (0 = never)")
    cooldown_s: float = Field(30.0, ge=0, le=3600, description="seconds the provider is skipped once cooling down")

    def client_args(self) -> dict[str, Any]:
        """``StrongModel``'s constructor arguments."""
        return {"base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env,
                "request_timeout_s": self.request_timeout_s, "max_retries": self.max_retries,
                "backoff_initial_s": self.backoff_initial_s, "backoff_max_s": self.backoff_max_s,
                "cooldown_failures": self.cooldown_failures, "cooldown_s": self.cooldown_s}


class StrongModelArgs(RemoteApiArgs):
    fallback: Literal["weak", "error"] = Field("weak", description="when the strong model fails: use the weak one, or 502/504")


class IngressArgs(_Strict):
    api_keys_env: str | None = Field("RAYROUTE_API_KEYS", description="env var with comma-separated ingress keys; unset/empty = open")
    max_body_bytes: int = Field(1 << 20, ge=1024, le=64 << 20, description="larger request bodies get 413")
    router_timeout_s: float = Field(10.0, gt=0, description="routing decision timeout, seconds")
    backend_timeout_s: float = Field(120.0, gt=0, description="model call / stream-chunk timeout, seconds")
    on_router_error: Literal["error", "weak", "strong"] = Field("error", description="when a router replica fails")


class PriceArgs(_Strict):
    input_usd_per_1m_tokens: float = Field(0.0, ge=0, description="$ per 1M prompt tokens")
    output_usd_per_1m_tokens: float = Field(0.0, ge=0, description="$ per 1M completion tokens")


class JudgeArgs(_Strict):
    base_url: str = Field(description="the judge: any OpenAI-compatible API base URL")
    model: str = Field(description="judge model name at that API, e.g. gpt-4o")
    api_key_env: str = Field("RAYROUTE_JUDGE_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                             description="environment variable holding the judge's API key (never logged)")
    request_timeout_s: float = Field(60.0, gt=0, le=600, description="per judge call, seconds")
    max_tokens: int = Field(512, ge=8, le=8192, description="judge reply length cap, tokens")
    price: PriceArgs = Field(default_factory=lambda: PriceArgs(input_usd_per_1m_tokens=2.5,
                                                               output_usd_per_1m_tokens=10.0),
                             description="the judge's $ per 1M tokens, for the budget")


class LearningArgs(_Strict):
    """Learning from traffic (docs/learning.md). Everything is off by default; prompts are written to
    ``store`` only when ``collect`` or ``feedback`` is on."""

    collect: bool = Field(False, description=(
        "label collection: for a sampled share of routed, non-streamed chat requests, after the client "
        "has its answer, also ask the other model and let the judge compare both answers; STORES PROMPTS"))
    feedback: bool = Field(False, description=(
        "POST /v1/feedback: a verdict on an earlier answer (by its x-request-id) becomes a label; "
        "keeps each routed prompt in memory for feedback_ttl_s and STORES the prompts given feedback"))
    store: str = Field("labels", description="label store directory (a shared file system path on a cluster)")
    sample_rate: float = Field(0.05, ge=0.0, le=1.0, description="share of routed requests labelled")
    budget_usd_per_hour: float = Field(1.0, ge=0.0, description=(
        "estimated $ of the extra model calls and judge calls in any rolling hour; over it, requests "
        "are not sampled (counted as skipped: budget)"))
    max_pending: int = Field(16, ge=1, le=10_000, description="label collections in flight per ingress replica")
    judge: JudgeArgs | None = Field(None, description="the judge (required when collect is on)")
    feedback_ttl_s: float = Field(3600.0, gt=0, le=30 * 86400, description="how long an answer takes feedback")
    feedback_max_entries: int = Field(100_000, ge=1, le=10_000_000,
                                      description="answers remembered for feedback per ingress replica")
    feedback_max_body_bytes: int = Field(4096, ge=256, le=1 << 20, description="larger feedback bodies get 413")
    seed: int | None = Field(None, description="sampling seed (tests); default: random")

    @model_validator(mode="after")
    def _judge_needed(self) -> "LearningArgs":
        if self.collect and self.judge is None:
            raise ValueError("learning.collect needs learning.judge (base_url, model, api_key_env)")
        return self

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        return v if "://" in v else _abs(v)

    @property
    def enabled(self) -> bool:
        return self.collect or self.feedback

class TenantArgs(_Strict):
    """An API-key tenant: its keys (from the environment, never the config file), its own target and
    its daily dollar cap."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,40}$", description="the tenant's label in metrics and headers")
    api_keys_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                              description="environment variable with the tenant's comma-separated API keys")
    budget: BudgetTargetArgs | None = Field(None, description=(
        "what this tenant's 'router-<alias>' requests hold (before the router's own target)"))
    daily_cap_usd: float | None = Field(None, ge=0.0, allow_inf_nan=False,
                                        description="hard cap on the tenant's estimated spend per UTC day, USD")
    on_cap: Literal["weak", "reject"] = Field("weak", description=(
        "once the cap is spent: 'weak' sends every request to the weak model (counted, header "
        "x-rayroute-budget-cap), 'reject' answers 429 with Retry-After (seconds to the next UTC day)"))


class BudgetArgs(_Strict):
    """Live budget control (``routers.budget``, ``deployments.budget``)."""

    enabled: bool = Field(False, description=(
        "hold targets live: routers' and tenants' budget, 'router-<alias>-strong<f>' and "
        "'router-<alias>-usd<per hour>'. Off: strong<f> is calibrated once at start-up, usd names answer 400"))
    window_requests: int = Field(200, ge=10, le=100_000, description="recent router scores whose quantile gives α")
    horizon_requests: float = Field(25.0, gt=0, le=100_000, description=(
        "a shortfall (or excess) of strong calls is made up over about this many requests"))
    memory_requests: int = Field(2000, ge=10, le=10_000_000, description="the deficit forgets at 1/this per request")
    sync_interval_s: float = Field(0.1, gt=0, le=60, description=(
        "how often each ingress replica sends its decisions to the shared state and takes back α"))
    sync_timeout_s: float = Field(2.0, gt=0, le=60, description="a sync slower than this is dropped and retried")
    max_targets: int = Field(1000, ge=1, le=1_000_000, description=(
        "most live targets (router x tenant x target) held; the least recently used is dropped"))
    price_source: Literal["config", "genai_prices"] = Field("config", description=(
        "'config': strong_price / weak_price; 'genai_prices': the strong model's price from the "
        "genai-prices package's table (pip install genai-prices), weak from weak_price"))
    assumed_prompt_tokens: int = Field(500, ge=0, description="prior tokens per request before usage is seen")
    assumed_completion_tokens: int = Field(250, ge=0, description="prior completion tokens per request")
    tenants: list[TenantArgs] = Field(default_factory=list, description="API-key tenants with targets and caps")

    @model_validator(mode="after")
    def _check(self) -> "BudgetArgs":
        names = [t.name for t in self.tenants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"budget.tenants names must be unique; repeated: {dupes}")
        if self.tenants and not self.enabled:  # tenants' targets and caps are enforced by budget control
            raise ValueError(f"budget.tenants ({', '.join(names)}) need budget.enabled: true; without it "
                             "their targets and daily caps would not be enforced")
        return self


# --- N-way routing (docs/nway-routing.md) -------------------------------------------------------

#: characters a served name may use (an OpenAI ``model`` string, also a metric label)
SERVED_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$"


class NWayModelArgs(_Strict):
    """One model N-way routers choose among: its served name, its backend (a remote API or a local
    vLLM model, exactly one) and its price."""

    name: str = Field(pattern=SERVED_NAME, description=(
        "served name: what a client puts in `model` to call it directly, and what responses report"))
    router_name: str | None = Field(None, min_length=1, description=(
        "its name in the N-way routers' vocabulary (the checkpoint's `models`); default: `name`"))
    remote: RemoteApiArgs | None = Field(None, description=(
        "an OpenAI-compatible API (the strong model's client: retries, cooldown); `model` is its name there"))
    local: WeakModelArgs | None = Field(None, description=(
        "a vLLM model in its own replica (the weak model's deployment); each needs its CPUs or GPU share, "
        "so keep local ones few and small"))
    price: PriceArgs = Field(description="$ per 1M prompt / completion tokens: the cost in the selection rule")
    deployment: DeploymentOptions | None = Field(None, description=(
        "its replica's options (default: deployments.strong_model for remote, deployments.weak_model for local)"))
    lacks: list[Literal["images", "audio", "tools"]] | None = Field(None, description=(
        "request features it cannot serve, so a request that needs one skips it (e.g. [images] for a "
        "text-only remote model); default: a local model's from its vLLM settings, none for a remote one"))

    @model_validator(mode="after")
    def _one_backend(self) -> "NWayModelArgs":
        if (self.remote is None) == (self.local is None):
            raise ValueError(f"N-way model {self.name!r} needs exactly one of `remote` (an OpenAI-compatible API) "
                             "and `local` (a vLLM model)")
        if self.remote is not None and not {"base_url", "model"} <= self.remote.model_fields_set:
            raise ValueError(f"N-way model {self.name!r}: remote needs `base_url` and `model` (its name at that "
                             "API); no default is right for more than one model")
        if self.router_name is None:
            self.router_name = self.name
        if self.local is not None:
            self.local.served_model_name = self.name  # responses report the served name
        return self

    def deployment_name(self) -> str:
        """Its Serve deployment's name (letters, digits, '_')."""
        return "NWay_" + re.sub(r"[^A-Za-z0-9_]", "_", self.name)

    def lacking(self) -> frozenset[str]:
        """``lacks`` if given, else a local model's (``WeakModelArgs.lacks``), else none."""
        if self.lacks is not None:
            return frozenset(self.lacks)
        return self.local.lacks() if self.local is not None else frozenset()


class NWayRouterArgs(_Strict):
    """An N-way router: a quality router checkpoint (``routers.nway``) scored in the ingress."""

    alias: str = Field(pattern=r"^[a-z0-9_]{1,40}$", description="name in 'router-<alias>-cost<λ>'")
    source: str | None = Field(None, description=(
        "N-way checkpoint directory or a name under checkpoints/ (default: alias)"))
    kwargs: dict[str, Any] = Field(default_factory=dict, description="load overrides, e.g. {k: 20} for knn")
    models: list[str] | None = Field(None, min_length=1, description=(
        "served names of the nway.models it chooses among (default: all)"))
    default_cost_weight: float | None = Field(None, ge=0, allow_inf_nan=False, description=(
        "λ for bare 'router-<alias>' (default: nway.default_cost_weight)"))
    placement: Literal["ingress"] = Field("ingress", description=(
        "where it scores: inside the ingress process, inline (no Serve hop). The only placement for "
        "now: N-way routers are meant to be light (static embeddings, kNN)"))

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | None) -> str | None:
        return resolve_source(v)


class NWayArgs(_Strict):
    """Routing among N models by predicted quality and price (``routers.nway.selection``)."""

    models: list[NWayModelArgs] = Field(min_length=2, description="the models, each with backend and price")
    routers: list[NWayRouterArgs] = Field(min_length=1, description="the N-way routers")
    default_cost_weight: float = Field(0.2, ge=0, allow_inf_nan=False, description=(
        "λ for bare 'router-<alias>': quality given up per price range (0 = best predicted quality)"))
    rule: Literal["cost", "within"] = Field("cost", description=(
        "'cost': highest quality − λ·cost/max cost; 'within': cheapest within τ of the best predicted "
        "quality, τ being the name's number (then in [0, 1])"))
    max_fallbacks: int = Field(2, ge=0, le=20, description=(
        "when the chosen model fails (upstream error, unavailable), try up to this many next candidates"))
    default_completion_tokens: int = Field(256, ge=1, le=1_000_000, description=(
        "completion tokens assumed for the cost estimate when a request gives no max_tokens"))

    @model_validator(mode="after")
    def _check(self) -> "NWayArgs":
        for what, names in (("nway.models[].name", [m.name for m in self.models]),
                            ("nway.models[].router_name", [m.router_name for m in self.models]),
                            ("nway.routers[].alias", [r.alias for r in self.routers]),
                            ("N-way deployment names", [m.deployment_name() for m in self.models])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} must be unique; repeated: {dupes}")
        served = [m.name for m in self.models]
        for i, r in enumerate(self.routers):
            unknown = sorted(set(r.models or ()) - set(served))
            if unknown:
                raise ValueError(f"nway.routers[{i}].models ({r.alias!r}) names {unknown}, not in nway.models: {served}")
            if self.rule == "within" and (r.default_cost_weight or 0) > 1:
                raise ValueError(f"nway.routers[{i}].default_cost_weight is τ under rule 'within': it must be in [0, 1]")
        if self.rule == "within" and self.default_cost_weight > 1:
            raise ValueError("nway.default_cost_weight is τ under rule 'within': it must be in [0, 1]")
        return self

    def model(self, name: str) -> NWayModelArgs:
        return next(m for m in self.models if m.name == name)

    def router_models(self, r: NWayRouterArgs) -> list[NWayModelArgs]:
        """The models router ``r`` chooses among, in configuration order."""
        return [m for m in self.models if r.models is None or m.name in r.models]

    def weight(self, r: NWayRouterArgs) -> float:
        return self.default_cost_weight if r.default_cost_weight is None else r.default_cost_weight


class AppArgs(_Strict):
    """Everything ``build_app`` needs; serve_config.yaml ``args:`` and Python callers alike."""

    routers: list[RouterArgs] = Field(default_factory=lambda: [RouterArgs(alias="random")], min_length=1,
                                      description="one Serve deployment per router")
    default_router: str | None = Field(None, description="router for bare 'router' requests (default: the first)")
    weak_model: WeakModelArgs = Field(default_factory=WeakModelArgs, description="local vLLM model")
    strong_model: StrongModelArgs = Field(default_factory=StrongModelArgs, description="remote API model")
    ingress: IngressArgs = Field(default_factory=IngressArgs, description="HTTP front door")
    strong_price: PriceArgs = Field(default_factory=lambda: PriceArgs(input_usd_per_1m_tokens=2.5,
                                                                      output_usd_per_1m_tokens=10.0),
                                    description="estimated $ of the strong model")
    weak_price: PriceArgs = Field(default_factory=PriceArgs, description="estimated $ of the weak model")
    budget: BudgetArgs = Field(default_factory=BudgetArgs, description="live budget control and tenant caps")
    deployments: DeploymentsArgs = Field(default_factory=DeploymentsArgs, description="Serve deployment options")
    learning: LearningArgs = Field(default_factory=LearningArgs, description="label collection and feedback (off)")
    nway: NWayArgs | None = Field(None, description=(
        "routing among N models by predicted quality and price: 'router-<alias>-cost<λ>' (docs/nway-routing.md)"))

    @model_validator(mode="after")
    def _check(self) -> "AppArgs":
        aliases = [r.alias for r in self.routers]
        dupes = sorted({a for a in aliases if aliases.count(a) > 1})
        if dupes:
            raise ValueError(f"router aliases must be unique; repeated: {dupes}")
        if self.default_router is None:
            self.default_router = aliases[0]
        elif self.default_router not in aliases:
            raise ValueError(f"default_router {self.default_router!r} is not one of the routers {aliases}")
        if self.weak_model.served_model_name == self.strong_model.model:
            raise ValueError("the weak and strong models need different names")
        for i, r in enumerate(self.routers):
            if r.budget is not None and not self.budget.enabled:
                raise ValueError(f"routers[{i}].budget ({r.alias!r}) needs budget.enabled: true")
        if self.nway is not None:  # one namespace of model names and router aliases for both kinds
            two = {self.strong_model.model, self.weak_model.served_model_name, "router"}
            clash = sorted(two & {m.name for m in self.nway.models})
            if clash:
                raise ValueError(f"nway.models names {clash} clash with the strong/weak model names (or 'router')")
            clash = sorted(set(aliases) & {r.alias for r in self.nway.routers})
            if clash:
                raise ValueError(f"nway.routers aliases {clash} clash with routers[].alias; 'router-<alias>' must "
                                 "name one router")
            if any(m.name.startswith("router-") for m in self.nway.models):
                raise ValueError("nway.models names must not start with 'router-' (the routed-name prefix)")
        return self

    def check_environment(self, environ: Mapping[str, str] | None = None) -> None:
        """Start-up checks that need the environment: a tenant's cap with no keys to tell its
        requests apart. Raises ConfigError naming the field."""
        env = os.environ if environ is None else environ
        for i, t in enumerate(self.budget.tenants):
            keys = [k for k in env.get(t.api_keys_env, "").split(",") if k.strip()]
            if not keys and (t.daily_cap_usd is not None or t.budget is not None):
                field = "daily_cap_usd" if t.daily_cap_usd is not None else "budget"
                raise ConfigError(
                    f"budget.tenants[{i}].{field} ({t.name!r}) is set but ${t.api_keys_env} holds no API keys, "
                    "so no request can be counted against it; export the tenant's keys (comma-separated) "
                    "or remove the tenant")
