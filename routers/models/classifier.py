"""Pieces shared by the two neural classifier routers (``bert`` and ``causal_llm``).

Both predict a distribution over the three comparison outcomes of paper section 3.1,
L = {win_s, tie, win_w}, in the fixed order of ``LABELS``; P(strong wins) is the first entry,
which equals 1 - P(tie) - P(weak wins) (Eq. 13 generalised to three classes).

Nothing here imports torch at import time: the registry must be able to list routers cheaply.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from routers.base import check_prompts
from routers.errors import CheckpointError, ConfigError

#: Outcome classes, in the order of the classifier outputs. Index 0 is "strong model wins".
LABELS: tuple[str, str, str] = ("strong", "tie", "weak")
STRONG_INDEX = 0


def resolve_device(device: str | None) -> str:
    """``None``/``"auto"`` -> "cuda" when available, else "cpu"; anything else is passed through."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def set_threads(num_threads: int | None) -> None:
    """Set torch's intra-op thread count (process-wide) when ``num_threads`` is given.

    Why: on a small shared CPU, torch's default (one thread per core) spin-waits when other
    processes hold the cores; measured here, MiniLM at batch 1 ran 3.7 prompts/s with 2 threads
    under load and 47 prompts/s with 1. A serving replica should pin its thread count.
    """
    if num_threads is None:
        return
    import torch

    torch.set_num_threads(check_positive_int("num_threads", num_threads))


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` as an int >= minimum, else ConfigError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def length_sorted_batches(texts: Sequence[str], batch_size: int) -> Iterator[list[int]]:
    """Yield index lists of at most ``batch_size`` prompts of similar length (longest first).

    Sorting by character length is a cheap proxy for token length; it keeps padding small, which
    is most of the speed-up of batching on CPU. Callers scatter results back by index.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def require_files(ckpt: Path, names: Sequence[str], what: str) -> None:
    """CheckpointError naming the checkpoint and the first missing file among ``names``
    (paths relative to ``ckpt``)."""
    for name in names:
        if not (ckpt / name).exists():
            raise CheckpointError(
                f"{what} checkpoint {str(ckpt)!r} is incomplete: {name!r} is missing; "
                f"re-run training or point at a complete checkpoint"
            )


def replace_subdir(root: Path, name: str, writer: Callable[[Path], None]) -> None:
    """Write ``root/name`` by calling ``writer(tmpdir)`` then swapping it in.

    Why: a crash mid-save must not leave a half-written weights folder next to a valid
    ``config.json``; the router's config is written after this returns, so it only ever names
    complete folders.
    """
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; a serving user must be able to read it
    try:
        writer(tmp)
        target = root / name
        old = None
        if target.exists():
            old = root / f".{name}.old"
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class LabelProbabilities:
    """``predict_proba`` / ``score`` of both classifier routers. The class provides ``model`` (a torch
    module), ``batch_size`` and ``logits(prompts)`` -> (N, 3) logits over ``LABELS``."""

    def predict_proba(self, prompts: Sequence[str]) -> np.ndarray:
        """(N, 3) float64 probabilities over LABELS: length-sorted batches, eval mode, no autograd."""
        import torch

        prompts = check_prompts(prompts)
        out = np.zeros((len(prompts), len(LABELS)), dtype=np.float64)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for idx in length_sorted_batches(prompts, self.batch_size):
                    logits = self.logits([prompts[i] for i in idx]).float()
                    out[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        """P(strong wins) per prompt = 1 - P(tie) - P(weak wins)."""
        return np.clip(self.predict_proba(prompts)[:, STRONG_INDEX], 0.0, 1.0)
