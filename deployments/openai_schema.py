"""OpenAI's chat-completions request schema, from the official ``openai`` package's own types, as a
strict pydantic validator: the ingress checks every field a client sends against it (a known field
of the wrong type is a 400 naming it) and forwards the body unchanged.

The SDK declares lists as ``Iterable[...]``, which pydantic validates lazily (only when iterated),
so ``tools: "nope"`` would pass; ``_eager`` rebuilds the types with ``list[...]`` instead. Strict
mode, because lax mode turns ``"yes"`` into ``True``.
"""

from __future__ import annotations

import collections.abc
import functools
import types
import typing
from typing import Any

from pydantic import TypeAdapter
from typing_extensions import NotRequired, Required, TypedDict, is_typeddict

_WRAPPERS = (Required, NotRequired)


def _eager(tp: Any, seen: dict[int, Any]) -> Any:
    """``tp`` with every ``Iterable[X]`` (at any depth, in TypedDicts too) replaced by ``list[X]``."""
    if is_typeddict(tp):
        if id(tp) not in seen:
            hints = typing.get_type_hints(tp, include_extras=True)
            seen[id(tp)] = TypedDict(tp.__name__, {k: _eager(v, seen) for k, v in hints.items()},
                                     total=tp.__total__)
        return seen[id(tp)]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is None or not args:
        return tp
    if origin is collections.abc.Iterable:
        return list[_eager(args[0], seen)]
    if origin is typing.Annotated:
        return typing.Annotated[(_eager(args[0], seen), *tp.__metadata__)]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_eager(a, seen) for a in args)]
    if origin in _WRAPPERS:
        return origin[_eager(args[0], seen)]
    if origin is typing.Literal:
        return tp
    if origin in (dict, list, collections.abc.Mapping, collections.abc.Sequence):
        return origin[tuple(_eager(a, seen) for a in args)] if len(args) > 1 else origin[_eager(args[0], seen)]
    return tp


@functools.cache
def chat_request_schema() -> TypeAdapter:
    """The validator of a chat-completions body (``CompletionCreateParamsBase``; ``stream`` is
    checked by the ingress's own model). Built once per process."""
    from openai.types.chat.completion_create_params import CompletionCreateParamsBase

    return TypeAdapter(_eager(CompletionCreateParamsBase, {}))


@functools.cache
def chat_request_fields() -> frozenset[str]:
    """The request fields the SDK knows (its ``create()`` keyword arguments, less ``stream``)."""
    from openai.types.chat.completion_create_params import CompletionCreateParamsBase

    return frozenset(typing.get_type_hints(CompletionCreateParamsBase))


def check_chat_request(body: dict[str, Any]) -> None:
    """Raise pydantic's ValidationError for the first field of ``body`` that breaks OpenAI's schema."""
    chat_request_schema().validate_python(body, strict=True)
