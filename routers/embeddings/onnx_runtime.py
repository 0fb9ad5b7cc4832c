"""A faster CPU path for the default MiniLM embedder: ONNX Runtime, optional int8 weights, and
token-length bucketing (batches of similar length waste no work on padding).

The ONNX graph (encoder + mean pooling + L2 normalisation) is exported from the same packaged
all-MiniLM-L6-v2 weights on first use into the cache directory, never downloaded and never
committed. fp32 gives the same vectors as sentence-transformers to ~1e-6 cosine; int8 is faster
but approximate, so a test checks the routing decisions it gives before anyone relies on it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from routers.embeddings.common import DEFAULT_MODEL, default_cache_dir, local_model_path
from routers.errors import ConfigError, EmbeddingError

log = logging.getLogger(__name__)

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_onnx(out_path: str | Path, model_path: str | None = None) -> Path:
    """Export the MiniLM encoder with mean pooling and normalisation to ONNX (atomically)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model_path = model_path or local_model_path()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(model_path)
    encoder = AutoModel.from_pretrained(model_path).eval()

    class _Pooled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.m(input_ids=input_ids, attention_mask=attention_mask,
                       token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            v = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(v, dim=-1)

    enc = tok(["a short example", "another one, a little longer"], padding=True, return_tensors="pt")
    tmp = out_path.with_suffix(".tmp.onnx")
    axes = {k: {0: "batch", 1: "seq"} for k in _INPUTS}
    axes["embedding"] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            _Pooled(encoder), tuple(enc[k] for k in _INPUTS), str(tmp),
            input_names=list(_INPUTS), output_names=["embedding"], dynamic_axes=axes,
            opset_version=17, dynamo=False,
        )
    os.replace(tmp, out_path)
    return out_path


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(dst)
    tmp = dst.with_suffix(".tmp.onnx")
    quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8)
    os.replace(tmp, dst)
    return dst


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime. ``precision`` is ``fp32`` (default, exact) or ``int8``.

    Same contract as every ``Embedder``: float32 (N, 384), rows L2-normalised; texts longer than
    256 word pieces are truncated exactly as sentence-transformers does.
    """

    def __init__(
        self,
        precision: str = "fp32",
        batch_size: int = 8,  # micro-batch after sorting by length; see SentenceTransformerEmbedder
        num_threads: int | None = None,
        cache_dir: str | Path | None = None,
        max_length: int = 256,
    ) -> None:
        if precision not in ("fp32", "int8"):
            raise ConfigError(f"ONNX precision must be 'fp32' or 'int8', got {precision!r}")
        self.precision = precision
        self.name = f"onnx-{precision}:{DEFAULT_MODEL}"
        self.dim = 384
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.max_length = max_length
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir().parent / "onnx"
        self._session = None
        self._tok = None
        self._lock = threading.Lock()

    def model_file(self) -> Path:
        return self.cache_dir / f"{DEFAULT_MODEL}-{self.precision}.onnx"

    def _load(self):
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime as ort
                    from transformers import AutoTokenizer

                    path = self.model_file()
                    if not path.exists():
                        log.info("exporting %s to ONNX at %s (one-off)", DEFAULT_MODEL, path)
                        fp32 = self.cache_dir / f"{DEFAULT_MODEL}-fp32.onnx"
                        if not fp32.exists():
                            export_onnx(fp32)
                        if self.precision == "int8":
                            quantize_int8(fp32, path)
                    opts = ort.SessionOptions()
                    if self.num_threads:
                        opts.intra_op_num_threads = self.num_threads
                    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                    self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                    self._tok = AutoTokenizer.from_pretrained(local_model_path())
                except ImportError as exc:
                    raise EmbeddingError(f"the ONNX embedder needs onnxruntime, onnx and transformers: {exc}") from exc
        return self._session, self._tok

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        texts = list(texts)
        session, tok = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Bucket by length: sort, then batch neighbours, so padding stays small.
        order = np.argsort([len(t) for t in texts], kind="stable")
        starts = range(0, len(texts), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"embed {self.name}", unit="batch")
        for start in starts:
            idx = order[start : start + self.batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True,
                      max_length=self.max_length, return_tensors="np")
            feeds = {k: enc[k].astype(np.int64) for k in _INPUTS}
            out[idx] = session.run(None, feeds)[0]
        return out
