"""The static MiniLM embedder: its table is what MiniLM says of each word piece, its vectors are
means of those rows, it is built once and atomically, and a broken table is named, not used."""

import numpy as np
import pytest

from routers.embeddings import static as st
from routers.embeddings import build_embedder, l2_normalize
from routers.errors import ConfigError, EmbeddingError


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("static")


@pytest.fixture(scope="module")
def static(cache_dir):
    emb = st.StaticMiniLMEmbedder(cache_dir=cache_dir, progress=False)
    emb.embed(["build the table once for the module"])
    return emb


def test_piece_vectors_are_minilm_on_each_piece():
    import torch
    from transformers import AutoModel, AutoTokenizer

    from routers.embeddings import local_model_path

    tok = AutoTokenizer.from_pretrained(local_model_path())
    model = AutoModel.from_pretrained(local_model_path()).eval()
    pieces = ("hello", "##ing", "gpu", "[UNK]")
    ids = tok.convert_tokens_to_ids(list(pieces))
    got = st.piece_vectors(ids, batch_size=3)  # two batches
    for row, i in zip(got, ids):
        x = torch.tensor([[tok.cls_token_id, i, tok.sep_token_id]])
        with torch.inference_mode():
            want = model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state.mean(1)[0]
        np.testing.assert_allclose(row, want.numpy(), atol=1e-4)


def test_postprocess_removes_the_common_direction():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(500, 16)).astype(np.float32) + 5.0 * rng.normal(size=16).astype(np.float32)
    out = st.postprocess(raw, components=2)
    assert out.shape == raw.shape and out.dtype == np.float32

    def mean_cos(x):
        x = l2_normalize(x)
        return float((x[:250] * x[250:]).sum(1).mean())

    assert mean_cos(raw) > 0.9 and abs(mean_cos(out)) < 0.1
    # the two strongest directions of the centred rows are gone from the output
    _, _, vt = np.linalg.svd(raw - raw.mean(0), full_matrices=False)
    assert np.abs(out @ vt[:2].T).max() < 1e-3 * np.abs(out).max()


def test_vectors_are_normalised_sums_of_piece_rows(static):
    table, tok = static._load()
    texts = ["Route this prompt to the cheaper model, please.", "hi", "", "   ", "naïve café ünïcode"]
    out = static.embed(texts)
    assert out.shape == (5, 384) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    ids = tok(texts[0], add_special_tokens=False)["input_ids"]
    np.testing.assert_allclose(out[0], l2_normalize(table[ids].sum(0, keepdims=True))[0], atol=1e-6)
    # no word piece: the [UNK] row, for empty and blank text alike
    unk = l2_normalize(table[[tok.unk_token_id]])[0]
    np.testing.assert_allclose(out[2], unk, atol=1e-6)
    np.testing.assert_allclose(out[3], unk, atol=1e-6)
    # batch and order invariant, bit for bit (each row is summed on its own)
    np.testing.assert_array_equal(static.embed(texts[::-1])[::-1], out)
    for i, text in enumerate(texts):
        np.testing.assert_array_equal(static.embed([text])[0], out[i])
    assert static.embed([]).shape == (0, 384)


def test_max_length_cuts_long_texts(cache_dir, static):
    short = st.StaticMiniLMEmbedder(cache_dir=cache_dir, max_length=4, progress=False)
    long_text = "alpha beta gamma delta epsilon zeta eta theta"
    np.testing.assert_allclose(short.embed([long_text])[0], static.embed(["alpha beta gamma delta"])[0], atol=1e-6)
    with pytest.raises(ConfigError, match="max_length must be >= 1, got 0"):
        st.StaticMiniLMEmbedder(max_length=0)


def test_table_is_built_once_and_reused(cache_dir, static, monkeypatch):
    path = static.table_file()
    assert path.is_file() and path.parent == cache_dir
    assert not list(cache_dir.glob("*.tmp"))  # nothing half-written left behind
    monkeypatch.setattr(st, "build_table", lambda **_: pytest.fail("the cached table must be reused"))
    again = st.StaticMiniLMEmbedder(cache_dir=cache_dir, progress=False)
    np.testing.assert_allclose(again.embed(["reuse"]), static.embed(["reuse"]), atol=1e-7)


def test_recipe_change_gets_a_new_file(cache_dir, monkeypatch):
    before = st.StaticMiniLMEmbedder(cache_dir=cache_dir).table_file()
    monkeypatch.setattr(st, "RECIPE", st.RECIPE + " (changed)")
    assert st.StaticMiniLMEmbedder(cache_dir=cache_dir).table_file() != before


def test_a_broken_table_is_named(tmp_path):
    emb = st.StaticMiniLMEmbedder(cache_dir=tmp_path, progress=False)
    emb.table_file().parent.mkdir(parents=True, exist_ok=True)
    np.save(emb.table_file(), np.zeros((10, 384), dtype=np.float32))
    with pytest.raises(EmbeddingError, match=r"shape \(10, 384\).*delete it"):
        emb.embed(["x"])


def test_factory_spec(tmp_path):
    for spec in ("static", f"static-{st.RECIPE_VERSION}:all-MiniLM-L6-v2"):
        emb = build_embedder(spec, cache=True, cache_dir=tmp_path)  # (never wrapped in the cache)
        assert isinstance(emb, st.StaticMiniLMEmbedder) and emb.name == st.STATIC_NAME


def test_a_checkpoint_of_another_table_version_is_refused(tmp_path):
    # a router trained on another recipe's table must not be served with this one
    with pytest.raises(ConfigError, match=r"'static-v1:all-MiniLM-L6-v2'.*retrain"):
        build_embedder("static-v1:all-MiniLM-L6-v2", cache=False)
    from routers.registry import load_router

    for name in ("mf_static", "sw_static"):  # the committed checkpoints name this version's table
        assert load_router(name).embedder_name == st.STATIC_NAME
