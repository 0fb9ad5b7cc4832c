"""One explicit alias table that unifies model names across data sources.

Contract: ``canonical(name)`` returns the canonical spelling of ``name`` when the table lists it
(lookup is case-insensitive and ignores surrounding whitespace), and ``name`` stripped but
otherwise unchanged when it does not. Unknown names are never guessed at: two spellings are
the same model only if this table says so.

The table was built by listing the model names in ``../shared/data`` (AlpacaEval ``model_1`` /
``model_2``, RouterBench correctness columns, open7 score keys, the benchmark CSV headers) plus the
names lmsys-arena-human-preference-55k uses for the same models.

Deliberately *not* aliased (the versions are unclear or differ, so merging would mix two models):
- AlpacaEval ``*_concise`` / ``*_verbose`` entries: the same model prompted for another length;
- RouterBench ``mistralai/mistral-7b-chat`` (Instruct v0.1?) vs AlpacaEval
  ``Mistral-7B-Instruct-v0.2``;
- RouterBench ``claude-instant-v1`` / ``claude-v1`` vs AlpacaEval ``claude-instant-1.2`` /
  ``claude``; RouterBench ``WizardLM/WizardLM-13B-V1.2`` vs AlpacaEval ``wizardlm-13b``;
- AlpacaEval ``gpt4`` / ``gpt4_0314`` (older GPT-4 snapshots, not gpt-4-1106-preview).
"""

from __future__ import annotations

#: The paper's pair (and the benchmarks' columns, after ``canonical``).
STRONG_DEFAULT = "gpt-4-1106-preview"
WEAK_DEFAULT = "Mixtral-8x7B-Instruct-v0.1"

#: canonical name -> every other spelling seen in a source (any case).
_CANONICAL_TO_ALIASES: dict[str, tuple[str, ...]] = {
    STRONG_DEFAULT: (
        "gpt4_1106_preview",  # AlpacaEval
        "gpt-4-1106-preview",  # RouterBench, benchmarks, Arena
        "openai/gpt-4-1106-preview",
    ),
    WEAK_DEFAULT: (
        "Mixtral-8x7B-Instruct-v0.1",  # AlpacaEval
        "mistralai/mixtral-8x7b-chat",  # RouterBench (served through Together)
        "mistralai/Mixtral-8x7B-Instruct-v0.1",  # benchmarks (Hugging Face id)
        "mixtral-8x7b-instruct-v0.1",  # Chatbot Arena
        "mixtral-8x7b-chat",
    ),
    "gpt-3.5-turbo-1106": ("gpt-3.5-turbo-1106", "gpt35_turbo_1106", "openai/gpt-3.5-turbo-1106"),
    # Claude 2.0: AlpacaEval "claude-2", RouterBench (Bedrock id) "claude-v2", Arena "claude-2.0".
    "claude-2": ("claude-2", "claude-v2", "claude-2.0", "anthropic/claude-2"),
    "claude-2.1": ("claude-2.1", "claude-v2.1", "claude-v2:1"),
    "Yi-34B-Chat": ("Yi-34B-Chat", "zero-one-ai/Yi-34B-Chat", "01-ai/Yi-34B-Chat", "yi-34b-chat"),
    # Same weights: AlpacaEval ran the HF checkpoint, RouterBench the hosted one, Arena the same.
    "llama-2-70b-chat": ("llama-2-70b-chat", "llama-2-70b-chat-hf", "meta/llama-2-70b-chat",
                         "meta-llama/Llama-2-70b-chat-hf"),
    "llama-2-13b-chat": ("llama-2-13b-chat", "llama-2-13b-chat-hf", "meta-llama/Llama-2-13b-chat-hf"),
    "llama-2-7b-chat": ("llama-2-7b-chat", "llama-2-7b-chat-hf", "meta-llama/Llama-2-7b-chat-hf"),
    "code-llama-instruct-34b": ("meta/code-llama-instruct-34b-chat", "codellama-34b-instruct",
                                "codellama/CodeLlama-34b-Instruct-hf"),
    "zephyr-7b-beta": ("zephyr-7b-beta", "HuggingFaceH4/zephyr-7b-beta"),
    "Mistral-7B-Instruct-v0.2": ("Mistral-7B-Instruct-v0.2", "mistralai/Mistral-7B-Instruct-v0.2",
                                 "mistral-7b-instruct-v0.2"),
}

#: lower-cased alias -> canonical name; built once, checked for conflicts at import.
ALIASES: dict[str, str] = {}
for _canon, _names in _CANONICAL_TO_ALIASES.items():
    for _n in (_canon, *_names):
        _key = _n.strip().lower()
        if ALIASES.get(_key, _canon) != _canon:  # a spelling claimed by two models: a table bug
            raise RuntimeError(f"alias {_n!r} maps to both {ALIASES[_key]!r} and {_canon!r}")
        ALIASES[_key] = _canon
del _canon, _names, _n, _key


def canonical(name: str) -> str:
    """The canonical spelling of a model name (unchanged, stripped, if the table doesn't list it)."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {name!r}")
    stripped = name.strip()
    return ALIASES.get(stripped.lower(), stripped)


def aliases_of(name: str) -> list[str]:
    """Every spelling the table maps to the same canonical model as ``name`` (for messages)."""
    target = canonical(name)
    return sorted({k for k, v in ALIASES.items() if v == target} | {target})
