from types import SimpleNamespace

import numpy as np
import pytest

from routers.base import routing_text
from routers.embeddings import (
    CachedEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    build_embedder,
)
from routers.errors import ConfigError, EmbeddingError
from tests.fakes import HashEmbedder

TEXTS = [
    "What is the derivative of x^2 sin(x)?",
    "Write a haiku about autumn leaves falling in the park.",
    "Explain the difference between TCP and UDP in two sentences.",
    "Bonjour, comment ça va aujourd'hui ?",
    "hi",
]


@pytest.fixture(scope="module")
def minilm():
    return SentenceTransformerEmbedder()


def test_minilm_shape_norm_and_batch_invariance(minilm):
    batch = minilm.embed(TEXTS)
    assert batch.shape == (len(TEXTS), 384) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    single = np.stack([minilm.embed([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    # semantically close texts are closer than unrelated ones
    a, b, c = minilm.embed(["How do I bake bread?", "What is a recipe for baking bread?", "Prove Fermat's little theorem."])
    assert a @ b > a @ c + 0.2


def test_micro_batches_do_not_change_vectors(minilm):
    # 20 texts of very different lengths: micro-batches of 8 (sorted by length) must give the
    # vectors one padded batch of 64 gives, in the caller's order
    texts = [(" ".join(TEXTS) + " ") * (i % 7) + TEXTS[i % len(TEXTS)] for i in range(20)]
    small = minilm.embed(texts)
    big = SentenceTransformerEmbedder(batch_size=64).embed(texts)
    assert minilm.batch_size == 8
    np.testing.assert_allclose(small, big, atol=1e-5)
    np.testing.assert_allclose(small[3], minilm.embed([texts[3]])[0], atol=1e-5)


def test_onnx_fp32_matches_sentence_transformers(minilm, tmp_path):
    from routers.embeddings.onnx_runtime import OnnxMiniLMEmbedder

    onnx = OnnxMiniLMEmbedder(precision="fp32", cache_dir=tmp_path)
    long_text = "word " * 600  # longer than the 256-token window: both must truncate the same way
    texts = TEXTS + [long_text]
    np.testing.assert_allclose(onnx.embed(texts), minilm.embed(texts), atol=2e-4)
    assert onnx.model_file().exists()


class Counting(HashEmbedder):
    def __init__(self):
        super().__init__(dim=16)
        self.seen = []

    def embed(self, texts, progress=False):
        self.seen.append(list(texts))
        return super().embed(texts)


def test_cache_embeds_each_text_once(tmp_path):
    inner = Counting()
    cached = CachedEmbedder(inner, tmp_path)
    first = cached.embed(["a b", "c d", "a b"])
    assert inner.seen == [["a b", "c d"]]  # duplicate embedded once
    second = cached.embed(["c d", "e f"])
    assert inner.seen[-1] == ["e f"]
    np.testing.assert_array_equal(first[1], second[0])
    # a fresh process (new object) reads the same cache from disk
    again = CachedEmbedder(Counting(), tmp_path)
    np.testing.assert_array_equal(again.embed(["a b"])[0], first[0])
    assert again.inner.seen == []


def test_cache_keys_include_model_name(tmp_path):
    a, b = Counting(), Counting()
    b.name = "other-model"
    CachedEmbedder(a, tmp_path).embed(["same text"])
    CachedEmbedder(b, tmp_path).embed(["same text"])
    assert b.seen == [["same text"]]


def test_cache_failure_leaves_nothing_half_written(tmp_path):
    class Failing(Counting):
        def embed(self, texts, progress=False):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        CachedEmbedder(Failing(), tmp_path).embed(["x y"])
    ok = Counting()
    CachedEmbedder(ok, tmp_path).embed(["x y"])
    assert ok.seen == [["x y"]]


def test_routing_text():
    msgs = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": [{"type": "text", "text": "look at"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "this"}]},
    ]
    assert routing_text(msgs) == "look at\nthis"
    assert routing_text(msgs, mode="all_user") == "first question\n\nlook at\nthis"
    assert routing_text("plain") == "plain"
    with pytest.raises(ConfigError, match="no user message"):
        routing_text([{"role": "system", "content": "x"}])
    with pytest.raises(ConfigError, match="no user message"):
        routing_text([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    with pytest.raises(ConfigError, match="mode"):
        routing_text(msgs, mode="first")


def test_openai_embedder_needs_key_and_normalises(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY"):
        OpenAIEmbedder().embed(["x"])

    class FakeEmbeddings:
        def __init__(self):
            self.calls = []

        def create(self, model, input):
            self.calls.append((model, list(input)))
            return SimpleNamespace(data=[SimpleNamespace(embedding=[3.0, 4.0]) for _ in input])

    fake = SimpleNamespace(embeddings=FakeEmbeddings())
    emb = OpenAIEmbedder(client=fake, batch_size=2)
    out = emb.embed(["a", "b", "c"])
    np.testing.assert_allclose(out, [[0.6, 0.8]] * 3, atol=1e-6)
    assert [len(c[1]) for c in fake.embeddings.calls] == [2, 1]
    assert fake.embeddings.calls[0][0] == "text-embedding-3-small"


def test_build_embedder_specs(tmp_path):
    assert isinstance(build_embedder(cache=tmp_path), CachedEmbedder)
    assert isinstance(build_embedder(cache=False), SentenceTransformerEmbedder)
    assert build_embedder("openai:text-embedding-3-large", cache=False).name == "openai:text-embedding-3-large"
    assert build_embedder("onnx-int8", cache=False).name == "onnx-int8:all-MiniLM-L6-v2"
