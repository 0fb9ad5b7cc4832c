"""Static token vectors distilled from all-MiniLM-L6-v2: an embedder that costs almost nothing.

Why: on a small CPU, MiniLM itself is the whole cost of an embedding router (~40-65 real prompts/s
on 2 vCPUs, docs/routing-overhead.md), while scoring the embedding costs microseconds. A static
embedder keeps MiniLM's vocabulary and its view of each word piece but drops the transformer at
serving time (the model2vec idea): each word piece gets, once, the vector MiniLM gives that piece
on its own (post-processed, see ``postprocess``); a prompt's embedding is the L2-normalised
weighted sum of its pieces' vectors. Tokenising and summing ran at ~1,500-2,500 real prompts/s
on this project's 2-vCPU machine (the tokenizer is most of it).

It is a *different* embedding from MiniLM's, not a faster path to the same one: a router trained
on MiniLM vectors must not be served with these. Routers are trained on it by name
(``rayroute train mf --embedder static``) and their quality is measured like any other router's.

The table (30,522 × 384 float32, 47 MB) is built from the packaged weights on first use (~20 s on
2 vCPUs, a progress bar shows it), written atomically into the cache directory, and
never downloaded or committed. Its file name carries a digest of the build recipe, so a change to
the recipe builds a new table instead of reusing a stale one, and the recipe's version is in the
embedder's name: a checkpoint trained on an older table fails to load, naming the fix.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from routers.embeddings.common import DEFAULT_MODEL, default_cache_dir, l2_normalize, local_model_path
from routers.errors import ConfigError, EmbeddingError

log = logging.getLogger(__name__)

#: bump when the way the table is built changes. The version is part of the embedder's name, which
#: checkpoints store, so a router trained on one table is never served with another (the cache file
#: name carries a digest of RECIPE, so tables of different recipes never overwrite each other)
RECIPE_VERSION = "v2"
RECIPE = (f"{RECIPE_VERSION}: mean-pooled MiniLM output of [CLS] piece [SEP] per vocabulary entry; "
          "centred; top 2 principal components removed; rows scaled by their squared norm")
STATIC_NAME = f"static-{RECIPE_VERSION}:{DEFAULT_MODEL}"


def check_static_spec(spec: str) -> None:
    """Raise ConfigError unless ``spec`` ("static" or a full name) names the table this code builds."""
    if spec not in ("static", STATIC_NAME):
        raise ConfigError(
            f"embedder {spec!r} is a static table this version does not build (it builds {STATIC_NAME!r}); "
            "retrain the router with `--embedder static`")
REMOVED_COMPONENTS = 2


def piece_vectors(ids: Sequence[int] | None = None, model_path: str | None = None, batch_size: int = 512,
                  progress: bool = False) -> np.ndarray:
    """MiniLM's mean-pooled output for ``[CLS] piece [SEP]``, one row per vocabulary id in ``ids``
    (default: the whole vocabulary): what sentence-transformers gives for the piece alone, before
    normalisation."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model_path = model_path or local_model_path()
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path, dtype=torch.float32).eval()
    all_ids = torch.arange(len(tok)) if ids is None else torch.as_tensor(list(ids), dtype=torch.long)
    out = np.zeros((len(all_ids), model.config.hidden_size), dtype=np.float32)
    starts = range(0, len(all_ids), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"build {STATIC_NAME} table", unit="batch")
    with torch.inference_mode():
        for start in starts:
            chunk = all_ids[start:start + batch_size]
            input_ids = torch.stack([torch.full_like(chunk, tok.cls_token_id), chunk,
                                     torch.full_like(chunk, tok.sep_token_id)], dim=1)
            h = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state
            out[start:start + len(chunk)] = h.mean(dim=1).numpy()
    return out


def postprocess(raw: np.ndarray, components: int = REMOVED_COMPONENTS) -> np.ndarray:
    """Make averaged rows discriminate. Raw piece vectors share a large common direction, so means
    of them all look alike (pairwise similarities of 512 real prompts correlated 0.20 with MiniLM's);
    centring, removing the top principal components and weighting each piece by its squared norm
    (distinctive pieces weigh more) raised that to 0.30 with no data beyond the model itself.
    Weights are folded into the rows: a prompt's vector is the normalised *sum* of its rows."""
    centred = raw - raw.mean(axis=0, keepdims=True)
    if components:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        top = vt[:components]
        centred = centred - (centred @ top.T) @ top
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return np.ascontiguousarray(centred * norms ** 2, dtype=np.float32)


def build_table(model_path: str | None = None, progress: bool = True) -> np.ndarray:
    """The serving table: ``postprocess(piece_vectors())``."""
    return postprocess(piece_vectors(model_path=model_path, progress=progress))


class StaticMiniLMEmbedder:
    """Word-piece vectors from all-MiniLM-L6-v2, weighted and summed. Same contract as every
    ``Embedder``: float32 (N, 384), rows L2-normalised. Texts are cut at ``max_length`` word pieces; a text with
    no word piece (empty or whitespace) gets the vector of ``[UNK]``, so every row is defined."""

    def __init__(self, cache_dir: str | Path | None = None, max_length: int = 512,
                 progress: bool = True) -> None:
        if int(max_length) < 1:
            raise ConfigError(f"static embedder max_length must be >= 1, got {max_length!r}")
        self.name = STATIC_NAME
        self.dim = 384
        self.max_length = int(max_length)
        self.progress = progress
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir().parent / "static"
        self._table: np.ndarray | None = None
        self._tok = None
        self._lock = threading.Lock()

    def table_file(self) -> Path:
        digest = hashlib.sha256(RECIPE.encode()).hexdigest()[:10]
        return self.cache_dir / f"{DEFAULT_MODEL}-static-{digest}.npy"

    def _load(self):
        with self._lock:
            if self._table is None:
                try:
                    from transformers import AutoTokenizer
                except ImportError as exc:  # pragma: no cover - a dependency of the package
                    raise EmbeddingError(f"the static embedder needs transformers: {exc}") from exc
                path = self.table_file()
                if not path.exists():
                    log.info("building the %s table at %s (one-off)", STATIC_NAME, path)
                    table = build_table(progress=self.progress)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                    with open(tmp, "wb") as f:  # np.save on a path would add a second .npy suffix
                        np.save(f, table)
                    os.replace(tmp, path)  # atomic: readers never see half a table
                table = np.load(path)
                tok = AutoTokenizer.from_pretrained(local_model_path())
                if table.shape != (len(tok), self.dim):
                    raise EmbeddingError(f"static table {str(path)!r} has shape {table.shape}, expected "
                                         f"{(len(tok), self.dim)}; delete it and it is rebuilt")
                self._tok, self._table = tok, table
        return self._table, self._tok

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        texts = list(texts)
        table, tok = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = tok(texts, add_special_tokens=False, truncation=True, max_length=self.max_length)["input_ids"]
        ids = [x if x else [tok.unk_token_id] for x in ids]  # empty text: the [UNK] piece, so every row is defined
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((i for x in ids for i in x), dtype=np.int64, count=int(lengths.sum()))
        # The sum of each text's rows as a sparse (texts × vocabulary) count matrix times the table:
        # gathering table[flat] first copied ~1.5 KB per piece (21 MB for 128 prompts) and made a
        # batch slower per prompt than one prompt alone. Each row is computed on its own either
        # way, so a text gets the same vector alone or in a batch.
        from scipy.sparse import csr_matrix

        counts = csr_matrix((np.ones(len(flat), dtype=np.float32), flat, np.concatenate([[0], np.cumsum(lengths)])),
                            shape=(len(ids), table.shape[0]))
        return l2_normalize(np.asarray(counts @ table, dtype=np.float32))
