"""Causal LLM classifier router (paper section 4.2): next-token prediction over label tokens.

The query goes into an instruction template; three label tokens (one per outcome in ``LABELS``)
are *added* to the tokenizer vocabulary (the embeddings are resized), and
P(strong wins) = softmax over the three label tokens' logits at the position after the prompt.
There is no separate classification head: the LM head rows of the label tokens are the classifier.

Works with any Hugging Face causal LM (Llama-3-8B on GPUs in production; a tiny Llama in tests).
Weights are either full (``model/``) or a LoRA adapter (``adapter/``, peft) over a base model
named in the config; LoRA checkpoints are merged into the base at load time for fast scoring.

Checkpoint layout::

    config.json   {"router": "causal_llm", "weights": "full"|"lora", "base": ..., "template": ...,
                   "label_tokens": [...], "max_length": ...}
    model/        full weights: save_pretrained (config.json, model.safetensors) + tokenizer
    adapter/      LoRA: adapter_config.json, adapter_model.safetensors
    tokenizer/    LoRA: the tokenizer with the label tokens

Truncation cuts the *query*, never the template, so the answer position always exists. Batches
are left-padded with explicit position ids, so a prompt scores the same alone or in a batch.
"""

from __future__ import annotations

import inspect
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

DEFAULT_TEMPLATE = (
    "You route user queries between a strong, expensive language model and a weak, cheap one.\n"
    "Predict which answer a careful judge would prefer for the query below: the strong model's, "
    "the weak model's, or neither (a tie).\n\n"
    "Query:\n{query}\n\n"
    "Prediction:"
)
#: One added token per outcome, in LABELS order (strong wins, tie, weak wins).
DEFAULT_LABEL_TOKENS = ("<|route_strong|>", "<|route_tie|>", "<|route_weak|>")
DEFAULT_MAX_LENGTH = 2048  # paper
ALLOWED_OVERRIDES = {"max_length", "batch_size", "device", "dtype", "base", "merge", "num_threads"}


def split_template(template: str) -> tuple[str, str]:
    """(prefix, suffix) around the single ``{query}`` placeholder; ConfigError otherwise."""
    if not isinstance(template, str) or template.count("{query}") != 1:
        raise ConfigError(
            f"the prompt template must contain '{{query}}' exactly once, got {template!r}"
        )
    prefix, suffix = template.split("{query}")
    return prefix, suffix


def add_label_tokens(tokenizer, model, label_tokens: Sequence[str] = DEFAULT_LABEL_TOKENS) -> list[int]:
    """Add the label tokens to ``tokenizer`` (as special added tokens: never split, never
    normalised) and grow ``model``'s embeddings to match. Returns their ids in LABELS order.
    Idempotent: tokens already present (a loaded checkpoint) are reused."""
    if len(label_tokens) != len(LABELS) or len(set(label_tokens)) != len(LABELS):
        raise ConfigError(f"need {len(LABELS)} distinct label tokens, got {list(label_tokens)!r}")
    tokenizer.add_tokens(list(label_tokens), special_tokens=True)
    # A peft model was resized before the adapter was attached (peft wraps the embedding layer).
    if model is not None and not hasattr(model, "peft_config") and \
            model.get_input_embeddings().num_embeddings < len(tokenizer):
        # Random (not mean) rows: with mean-initialised label rows the three label logits are
        # equal and their gradient w.r.t. the hidden state cancels, so LoRA layers learn nothing.
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return [int(tokenizer.convert_tokens_to_ids(t)) for t in label_tokens]


class CausalLLMRouter(LabelProbabilities, Router):
    """Instruction template + label tokens over a causal LM.

    Contract: ``score`` returns softmax over the label-token logits, entry "strong", as float64 in
    [0, 1]; the query is truncated so the whole input fits ``max_length`` tokens; padding never
    changes a score beyond float rounding. ``model`` may be a plain ``PreTrainedModel`` or a peft
    model (during LoRA training).
    """

    name = "causal_llm"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        template: str = DEFAULT_TEMPLATE,
        label_tokens: Sequence[str] = DEFAULT_LABEL_TOKENS,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 8,
        device: str | None = "cpu",
        base: str | None = None,
        num_threads: int | None = None,
        add_bos: bool = True,
    ) -> None:
        self.max_length = check_positive_int("max_length", max_length, minimum=2)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.template = template
        self.prefix, self.suffix = split_template(template)
        self.label_tokens = list(label_tokens)
        self.tokenizer = tokenizer
        self.label_ids = add_label_tokens(tokenizer, model, self.label_tokens)
        self.device = resolve_device(device)
        set_threads(num_threads)
        self.model = model.to(self.device)
        self.model.eval()
        self.base = base
        bos = tokenizer.bos_token_id if add_bos else None
        self._head = ([bos] if bos is not None else []) + self._ids(self.prefix)
        self._tail = self._ids(self.suffix)
        self.query_budget = self.max_length - len(self._head) - len(self._tail)
        if self.query_budget < 1:
            raise ConfigError(
                f"max_length {self.max_length} leaves no room for the query: the template alone takes "
                f"{len(self._head) + len(self._tail)} tokens; raise max_length or shorten the template"
            )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad) if pad is not None else 0
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        # Computing logits for one position only saves (seq x vocab) floats: 2048 x 128k on Llama-3.
        self._keep_arg = "logits_to_keep" if "logits_to_keep" in inspect.signature(inner.forward).parameters else None

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_base(
        cls,
        base: str,
        template: str = DEFAULT_TEMPLATE,
        label_tokens: Sequence[str] = DEFAULT_LABEL_TOKENS,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 8,
        device: str | None = "cpu",
        dtype: str | None = None,
        seed: int = 0,
    ) -> "CausalLLMRouter":
        """Load the causal LM ``base`` (name or local path; offline), add the label tokens.
        ``seed`` fixes the initialisation of the new embedding rows."""
        import torch

        torch.manual_seed(seed)
        model, tokenizer = _load_hf(base, dtype, what=f"base model {base!r}")
        return cls(model, tokenizer, template=template, label_tokens=label_tokens, max_length=max_length,
                   batch_size=batch_size, device=device, base=str(base))

    # ----------------------------------------------------------------- scoring
    def encode(self, prompts: Sequence[str]):
        """Left-padded input ids, attention mask and position ids for a batch, on the device."""
        import torch

        queries = self.tokenizer(list(prompts), add_special_tokens=False, truncation=True,
                                 max_length=self.query_budget)["input_ids"]
        seqs = [self._head + list(q) + self._tail for q in queries]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
        # Positions count real tokens only, so left padding does not shift them.
        pos = (mask.cumsum(dim=1) - 1).clamp_min(0)
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device),
                "position_ids": pos.to(self.device)}

    def logits(self, prompts: Sequence[str]):
        """(N, 3) label-token logits at the answer position (the last one, thanks to left
        padding); autograd follows the caller's context."""
        kwargs = self.encode(prompts)
        if self._keep_arg:
            kwargs[self._keep_arg] = 1
        out = self.model(**kwargs, use_cache=False).logits
        return out[:, -1, :][:, self.label_ids]

    # ----------------------------------------------------------------- checkpoints
    @property
    def is_lora(self) -> bool:
        return hasattr(self.model, "peft_config")

    def save(self, path: str | Path) -> Path:
        """Full weights to ``model/``; a peft model saves only its adapter (``adapter/``) plus the
        tokenizer, and the config names ``base``, which ``load`` needs."""
        path = Path(path)
        cfg = {
            "router": self.name,
            "labels": list(LABELS),
            "label_tokens": self.label_tokens,
            "template": self.template,
            "max_length": self.max_length,
            "base": self.base,
        }
        if self.is_lora:
            if not self.base:
                raise ConfigError("a LoRA router needs its base model name/path to be saved; set router.base")
            # The full embedding matrices are not saved (2 x 1 GB on Llama-3-8B): only the label
            # rows train (trainable_token_indices) and ``load`` re-creates the resized base.
            replace_subdir(path, "adapter", lambda tmp: self.model.save_pretrained(tmp, save_embedding_layers=False))
            replace_subdir(path, "tokenizer", lambda tmp: self.tokenizer.save_pretrained(tmp))
            cfg["weights"] = "lora"
        else:
            def write(tmp: Path) -> None:
                self.model.save_pretrained(tmp, safe_serialization=True)
                self.tokenizer.save_pretrained(tmp)

            replace_subdir(path, "model", write)
            cfg["weights"] = "full"
        write_config(path, cfg)
        return path

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "CausalLLMRouter":
        """Load a checkpoint. Overrides: max_length, batch_size, device, dtype ("bfloat16", …),
        base (where the LoRA base model lives now), merge (LoRA: merge the adapter, default True),
        num_threads (torch intra-op threads, process-wide).
        Raises CheckpointError naming the path when files are missing or malformed."""
        path = Path(path)
        cfg = read_config(path)
        if cfg["router"] != cls.name:
            raise CheckpointError(f"checkpoint {str(path)!r} is a {cfg['router']!r} router, not {cls.name!r}")
        unknown = set(overrides) - ALLOWED_OVERRIDES
        if unknown:
            raise ConfigError(f"unknown options for the causal_llm router: {sorted(unknown)}; "
                              f"allowed: {', '.join(sorted(ALLOWED_OVERRIDES))}")
        weights = cfg.get("weights")
        dtype = overrides.get("dtype")
        if weights == "full":
            require_files(path, ["model/config.json", "model/model.safetensors"], "causal_llm")
            model, tokenizer = _load_hf(path / "model", dtype, what=f"causal_llm checkpoint {str(path)!r}")
        elif weights == "lora":
            require_files(path, ["adapter/adapter_config.json", "tokenizer/tokenizer_config.json"], "causal_llm")
            base = overrides.get("base") or cfg.get("base")
            if not base:
                raise CheckpointError(f"LoRA checkpoint {str(path)!r} names no base model; pass base=...")
            model, _ = _load_hf(base, dtype, what=f"LoRA base model {base!r} of {str(path)!r}", tokenizer=False)
            tokenizer = _load_tokenizer(path / "tokenizer", what=f"causal_llm checkpoint {str(path)!r}")
            # The adapter was trained on the resized vocabulary; resize before attaching it.
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            try:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, path / "adapter")
            except Exception as exc:
                raise CheckpointError(f"cannot load the LoRA adapter of {str(path)!r}: {exc}") from exc
            if overrides.get("merge", True):
                model = model.merge_and_unload()  # plain model: no adapter overhead per token
        else:
            raise CheckpointError(
                f"{str(path / 'config.json')!r} has weights={weights!r}; expected 'full' or 'lora'"
            )
        return cls(
            model,
            tokenizer,
            template=cfg.get("template", DEFAULT_TEMPLATE),
            label_tokens=cfg.get("label_tokens", DEFAULT_LABEL_TOKENS),
            max_length=overrides.get("max_length", cfg.get("max_length", DEFAULT_MAX_LENGTH)),
            batch_size=overrides.get("batch_size", 8),
            device=overrides.get("device", "cpu"),
            num_threads=overrides.get("num_threads"),
            base=overrides.get("base") or cfg.get("base"),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": self.base,
            "max_length": self.max_length,
            "label_tokens": self.label_tokens,
            "lora": self.is_lora,
            "device": self.device,
        }


def _load_tokenizer(ref, what: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(ref)
    except Exception as exc:
        raise CheckpointError(f"cannot load the tokenizer of {what}: {exc}") from exc


def _load_hf(ref, dtype: str | None, what: str, tokenizer: bool = True):
    """(model, tokenizer) from a name or directory, offline; CheckpointError names ``what``."""
    import torch
    from transformers import AutoModelForCausalLM

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kwargs = {}
    if dtype:
        if not isinstance(getattr(torch, str(dtype), None), torch.dtype):
            raise ConfigError(f"unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16', 'float16'")
        kwargs["dtype"] = getattr(torch, str(dtype))
    try:
        model = AutoModelForCausalLM.from_pretrained(ref, **kwargs)
    except Exception as exc:
        raise CheckpointError(f"cannot load {what}: {exc}") from exc
    return model, (_load_tokenizer(ref, what) if tokenizer else None)
