"""Prompts/s of each available router at batch 1 and batch 32, embedding included.

    python benchmarks/router_throughput.py [--prompts 256] [--routers random,length,mf,...]

Routers that need a checkpoint are skipped (with a note) when ``checkpoints/<name>`` is absent.
The embedding cache is disabled so every prompt is really embedded (the real MiniLM model);
prompts are distinct real-looking texts built here, cycled to the requested count. Prints one line
per (router, batch size); nothing is asserted (figures, not a test).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOPICS = ["the integral of x^2 sin(x)", "a haiku about autumn", "the causes of World War I",
          "a Python function that merges two sorted lists", "the best pizza toppings",
          "why the sky is blue", "a proof that sqrt(2) is irrational", "a polite email declining a meeting",
          "the time complexity of quicksort", "a summary of Hamlet", "how vaccines work",
          "a SQL query for the top 5 customers by revenue"]
TEMPLATES = ["Explain {t}.", "Can you help me with {t}? Please be detailed and give an example.",
             "Write {t} in under 100 words.", "I am a student ({i}). Tell me about {t} step by step, "
             "with the key ideas first and common mistakes at the end."]


def make_prompts(n: int) -> list[str]:
    return [TEMPLATES[i % len(TEMPLATES)].format(t=TOPICS[(i // len(TEMPLATES)) % len(TOPICS)], i=i)
            for i in range(n)]


def build(name: str):
    from routers.registry import default_checkpoint_dir, load_router

    if name in ("random", "length"):
        return load_router(name)
    if not (default_checkpoint_dir() / name).is_dir():
        return None
    router = load_router(name)
    if hasattr(router, "_embedder") and getattr(router, "embedder_name", None):
        from routers.router_embedding import embedder_from_spec

        router._embedder = embedder_from_spec(router.embedder_name, cache=False)  # measure real embedding
    return router


def measure(router, prompts: list[str], batch: int) -> float:
    router.score(prompts[:batch])  # warm-up: model load, first-call allocations
    start = time.perf_counter()
    for i in range(0, len(prompts), batch):
        router.score(prompts[i:i + batch])
    return len(prompts) / (time.perf_counter() - start)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=256, help="prompts per measurement")
    ap.add_argument("--routers", default="random,length,mf,sw_ranking,bert,causal_llm")
    ap.add_argument("--batches", default="1,32")
    args = ap.parse_args(argv)
    prompts = make_prompts(args.prompts)
    print(f"# {args.prompts} prompts, {os.cpu_count()} CPUs, embedding included (no cache)")
    for name in args.routers.split(","):
        router = build(name)
        if router is None:
            print(f"{name:>11}: skipped (no checkpoint in checkpoints/{name})")
            continue
        for batch in (int(b) for b in args.batches.split(",")):
            n = args.prompts if batch > 1 or name in ("random", "length", "mf", "sw_ranking") else min(args.prompts, 64)
            print(f"{name:>11}  batch {batch:>3}: {measure(router, prompts[:n], batch):10.1f} prompts/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
