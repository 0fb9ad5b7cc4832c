"""Train the ``causal_llm`` router: fine-tune a causal LM to emit a label token (paper 4.2).

The loss is the cross-entropy of the label token at the answer position only (the softmax is over
the three label tokens, as at scoring time), weighted per example; nothing else in the sequence is
a target. Two modes:

- full fine-tuning (``lora=None``/``False``): every weight trains; the checkpoint holds them all.
- LoRA (``lora=True`` or a ``LoraSpec``): low-rank adapters on the linear layers plus the rows of
  the label tokens in the input embedding and the LM head (peft ``trainable_token_indices``) —
  those rows start untrained, and without them the label logits could not separate. The
  checkpoint holds only the adapter; loading needs the base model.

Paper (Llama-3-8B, 8x A100): ~2000 steps, batch 8, max length 2048, lr 1e-6, full fine-tuning.
Defaults follow it (lr 1e-6 is for full fine-tuning; LoRA wants ~1e-4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from routers.errors import ConfigError
from routers.training.classifier_loop import fit, labelled_frame_from_mix, split_examples


@dataclass
class LoraSpec:
    """LoRA settings. ``target_modules``: peft names or "all-linear" (every linear layer except
    the output head)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    extra: dict[str, Any] = field(default_factory=dict)


def _module_name(model, module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name.rsplit(".", 1)[-1]
    raise ConfigError(f"cannot find module {type(module).__name__} in the model")


def attach_lora(router, spec: LoraSpec) -> None:
    """Wrap ``router.model`` in a peft LoRA model that also trains the label-token rows."""
    from peft import LoraConfig, get_peft_model

    model = router.model
    ids = list(router.label_ids)
    rows = {_module_name(model, model.get_input_embeddings()): ids}
    head = model.get_output_embeddings()
    tied = getattr(model.config, "tie_word_embeddings", False)
    if head is not None and not tied:
        rows[_module_name(model, head)] = ids
    cfg = LoraConfig(
        r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=spec.target_modules,
        trainable_token_indices=rows, task_type="CAUSAL_LM", **spec.extra,
    )
    router.model = get_peft_model(model, cfg)


def train_causal_llm(
    frame: pd.DataFrame | None,
    out_dir: str | Path,
    base: str | None = None,
    *,
    lora: bool | LoraSpec | None = False,
    epochs: float = 1.0,
    lr: float = 1e-6,
    batch_size: int = 8,
    max_length: int = 2048,
    weight_decay: float = 0.0,
    warmup_ratio: float = 0.05,
    val_fraction: float = 0.05,
    seed: int = 0,
    max_steps: int | None = None,
    grad_accum: int = 1,
    eval_every: int | None = None,
    device: str | None = "cpu",
    dtype: str | None = None,
    gradient_checkpointing: bool = False,
    template: str | None = None,
    mix: Any = None,
    show_progress: bool | None = None,
):
    """Fine-tune the causal LM ``base`` (name or local path) on a labelled frame (prompt, label,
    weight; ``None``: the default training mix) and write the best checkpoint (lowest validation
    log-loss on ``val_fraction`` of the distinct prompts) to ``out_dir``. Returns a TrainResult
    and prints one summary line."""
    from routers.models.causal_llm import DEFAULT_TEMPLATE, CausalLLMRouter
    from routers.training.common import Timer, TrainResult, set_seed

    if not base:
        raise ConfigError("train_causal_llm needs base=<causal LM name or local path>, e.g. a Llama-3-8B directory")
    set_seed(seed)
    if frame is None:
        frame = labelled_frame_from_mix(mix)
    train, val = split_examples(frame, val_fraction, seed)
    spec = LoraSpec() if lora is True else (lora or None)
    with Timer() as timer:
        router = CausalLLMRouter.from_base(
            base, template=template or DEFAULT_TEMPLATE, max_length=max_length,
            batch_size=max(batch_size, 8), device=device, dtype=dtype, seed=seed,
        )
        if gradient_checkpointing:
            router.model.gradient_checkpointing_enable()
            if spec is not None:
                # frozen embeddings give checkpointed blocks inputs without grad: LoRA would get none
                router.model.enable_input_require_grads()
        if spec is not None:
            attach_lora(router, spec)
        metrics = fit(
            router, train, val, out_dir,
            epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
            warmup_ratio=warmup_ratio, max_steps=max_steps, grad_accum=grad_accum,
            eval_every=eval_every, seed=seed, desc="train causal_llm", show_progress=show_progress,
        )
    metrics = {"base": str(base), "lora": spec is not None, **metrics}
    result = TrainResult(router="causal_llm", checkpoint=Path(out_dir), metrics=metrics, seconds=timer.seconds)
    print(result.summary_line(), flush=True)
    return result
