"""`rayroute bench-ceiling`: the FLOP formula against PyTorch's own counter, and a smoke run.

The figures themselves are the machine's; only their consistency is asserted."""

import json

import numpy as np
import pytest

from bench.ceiling import encoder_flops
from cli.main import main
from routers.errors import ConfigError


@pytest.mark.parametrize("length", [1, 7, 40])
def test_encoder_flops_match_torch_flop_counter(length):
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=50, hidden_size=32, intermediate_size=80, num_hidden_layers=3,
                     num_attention_heads=4, max_position_embeddings=64)
    cfg._attn_implementation = "eager"  # SDPA on CPU hides the attention products from the counter
    model = BertModel(cfg, add_pooling_layer=False).eval()
    ids = torch.randint(0, 50, (1, length))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids)
    expected = encoder_flops([length], hidden=32, intermediate=80, layers=3)[0]
    assert counter.get_total_flops() == pytest.approx(expected, rel=1e-9)


def test_encoder_flops_rejects_empty_sequences():
    with pytest.raises(ConfigError, match="token counts"):
        encoder_flops([3, 0], 8, 16, 1)


def test_bench_ceiling_smoke(tmp_path):
    prompts = tmp_path / "p.jsonl"
    texts = ["What is 2 + 2?", "Explain the French revolution " * 100, "hi"]
    prompts.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    out = tmp_path / "ceiling.json"
    rc = main(["bench-ceiling", "--prompts-file", str(prompts), "--rows", "32,64", "--min-time-s", "0.01",
               "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    rows = {r["router"]: r for r in res["rows"]}
    assert set(rows) == {"mf", "sw_ranking", "bert"}
    # the long prompt is cut at 256 word pieces for the embedder and kept longer for bert
    assert rows["mf"]["mean_tokens"] < rows["bert"]["mean_tokens"]
    assert rows["mf"]["gflop_per_prompt"] == rows["sw_ranking"]["gflop_per_prompt"]
    for r in rows.values():
        assert 0 < r["ceiling_fp32_prompts_per_s"] and 0 < r["ceiling_int8_prompts_per_s"]
        assert r["target_over_fp32_ceiling"] == pytest.approx(
            r["target_prompts_per_s"] / r["ceiling_fp32_prompts_per_s"], rel=0.01)
    assert res["measured_minilm_prompts_per_s"] > 0
    assert "| bert | 512 |" in out.with_suffix(".md").read_text()


def test_bench_ceiling_rejects_bad_rows():
    from bench.ceiling import gemm_rates

    with pytest.raises(ConfigError, match="row counts"):
        gemm_rates(8, 16, rows=[0])
    assert np.isfinite(gemm_rates(8, 16, rows=[4], int8=False, min_time_s=0.001)["fp32"]["qkvo"])
