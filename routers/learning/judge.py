"""The pairwise judge protocol, in the spirit of the paper's GPT-4-judge labelling (and MT Bench's
pairwise judge prompt): the judge sees the question and two answers, A and B, and ends with
``[[A]]``, ``[[B]]`` or ``[[C]]`` (a tie). Each pair is judged twice, the answers swapped the second
time, to cancel position bias; two verdicts that disagree count as a tie.

Pure functions: the server's collector (``deployments.learning``) sends the messages to any
OpenAI-compatible endpoint and feeds the replies back here.
"""

from __future__ import annotations

import re
from typing import Literal

Verdict = Literal["strong", "weak", "tie"]

SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
    "assistants to the user question displayed below. You should choose the assistant that follows "
    "the user's instructions and answers the user's question better. Your evaluation should consider "
    "factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of "
    "their responses. Begin your evaluation by comparing the two responses and provide a short "
    "explanation. Avoid any position biases and ensure that the order in which the responses were "
    "presented does not influence your decision. Do not allow the length of the responses to "
    "influence your evaluation. Do not favor certain names of the assistants. Be as objective as "
    "possible. After providing your explanation, output your final verdict by strictly following "
    'this format: "[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" '
    "for a tie."
)

TEMPLATE = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)

_VERDICT = re.compile(r"\[\[([ABC])\]\]")


class JudgeOutputError(ValueError):
    """The judge's reply carries no (or more than one distinct) final verdict."""


def messages(question: str, answer_a: str, answer_b: str) -> list[dict[str, str]]:
    """The chat messages asking which of A and B is better."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": TEMPLATE.format(question=question, answer_a=answer_a, answer_b=answer_b)}]


def both_orders(question: str, strong_answer: str, weak_answer: str) -> list[list[dict[str, str]]]:
    """The two judge conversations: strong as A, then weak as A."""
    return [messages(question, strong_answer, weak_answer), messages(question, weak_answer, strong_answer)]


def parse(reply: str | None) -> Literal["A", "B", "C"]:
    """The final verdict of one judge reply; ``JudgeOutputError`` when it has none or several."""
    found = set(_VERDICT.findall(reply or ""))
    if len(found) != 1:
        shown = (reply or "")[-120:]
        raise JudgeOutputError(f"judge reply has {'no' if not found else 'conflicting'} verdict "
                               f"([[A]], [[B]] or [[C]]): ...{shown!r}")
    return found.pop()  # type: ignore[return-value]


def combine(first: str, second: str) -> Verdict:
    """The label from the verdicts of both orders (first: strong was A; second: weak was A).
    Agreement gives the winner; disagreement, or a tie in either, a tie."""
    def who(v: str, strong_is_a: bool) -> Verdict:
        if v == "C":
            return "tie"
        return "strong" if (v == "A") == strong_is_a else "weak"

    a, b = who(first, True), who(second, False)
    return a if a == b else "tie"


#: P(model_b wins) of a stored judge record, model_a being the strong model and model_b the weak one
P_B_WINS: dict[Verdict, float] = {"strong": 0.0, "weak": 1.0, "tie": 0.5}
