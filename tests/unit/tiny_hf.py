"""Tiny Hugging Face tokenizers and models built offline inside tests (no hub, seconds to train).

A word-level tokenizer trained on the synthetic prompts keeps the embedding tables small, which is
most of the cost of a training step for a 32-wide model with a 30k vocabulary.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes import make_prompt

import numpy as np


def corpus(n: int = 400, seed: int = 123) -> list[str]:
    rng = np.random.default_rng(seed)
    return [make_prompt(rng, bool(i % 2)) for i in range(n)] + ["hi", "hello world", "a b c"]


def word_tokenizer(kind: str):
    """A trained word-level PreTrainedTokenizerFast. ``kind``: "bert" ([CLS] x [SEP], [PAD]) or
    "causal" (<s> prefix, </s> eos, <pad>)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "bert":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        unk = "[UNK]"
    else:
        specials = ["<pad>", "<unk>", "<s>", "</s>"]
        unk = "<unk>"
    tok = Tokenizer(models.WordLevel(unk_token=unk))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus(), trainers.WordLevelTrainer(special_tokens=specials))
    if kind == "bert":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                       cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>")


def tiny_bert(path: Path, seed: int = 0) -> Path:
    """Save a random 2-layer, 32-wide BERT encoder and its tokenizer to ``path``."""
    import torch
    from transformers import BertConfig, BertModel

    tok = word_tokenizer("bert")
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_llama(path: Path, seed: int = 0) -> Path:
    """Save a random 2-layer, 32-wide Llama (untied head) and its tokenizer to ``path``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = word_tokenizer("causal")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=False, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path
