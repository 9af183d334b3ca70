"""The paper's 29 properties and 33 judges (dataset.md §3.1 and §5.1).

This is the one place where a property or a judge is named; every other module
imports from here, so the paper order and spellings cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PropertyKind = Literal["basic", "error", "query-specific", "length"]


@dataclass(frozen=True)
class Property:
    """One comparison property: paper index, annotation key, display name, kind."""

    index: int
    key: str
    name: str
    kind: PropertyKind
    case: str | None = None  # the query-specific case this property is asked in


@dataclass(frozen=True)
class Judge:
    """One judge of the paper: label key, display name, size in billions, type."""

    key: str
    display: str
    size: float
    type: Literal["base", "aligned", "proprietary", "human"]


_P = Property
PROPERTIES: tuple[Property, ...] = (
    _P(0, "harmlessness", "harmless", "basic"),
    _P(1, "grammar, spelling, punctuation, and code-switching", "grammarly correct", "basic"),
    _P(2, "friendly", "friendly", "basic"),
    _P(3, "polite", "polite", "basic"),
    _P(4, "interactive", "interactive", "basic"),
    _P(5, "authoritative tone", "authoritative", "basic"),
    _P(6, "funny and humorous", "funny", "basic"),
    _P(7, "metaphors, personification, similes, hyperboles, irony, parallelism",
       "use rhetorical devices", "basic"),
    _P(8, "complex word usage and sentence structure", "complex word & sentence", "basic"),
    _P(9, "use of direct and explicit supporting materials", "use supporting materials", "basic"),
    _P(10, "well formatted", "well formatted", "basic"),
    _P(11, "admit limitations or mistakes", "admit limits", "basic"),
    _P(12, "persuade user", "persuasive", "basic"),
    _P(13, "step by step solution", "step-by-step", "basic"),
    _P(14, "use of informal expressions", "use informal expressions", "basic"),
    _P(15, "repetitive", "non-repetitive", "basic"),
    _P(16, "clear and understandable", "clear", "basic"),
    _P(17, "relevance without considering inaccuracy", "relevant", "basic"),
    _P(18, "innovative and novel", "novel", "basic"),
    _P(19, "information richness without considering inaccuracy", "contain rich info", "basic"),
    _P(20, "no minor errors", "no minor errors", "error"),
    _P(21, "no moderate errors", "no moderate errors", "error"),
    _P(22, "no severe errors", "no severe errors", "error"),
    _P(23, "clarify user intent", "clarify intent", "query-specific", "intent_unclear"),
    _P(24, "showing empathetic", "show empathetic", "query-specific", "express_feeling"),
    _P(25, "satisfying explicit constraints", "satisfy constraints", "query-specific",
       "w_constraints"),
    _P(26, "supporting explicit subjective stances", "support stances", "query-specific",
       "w_stances"),
    _P(27, "correcting explicit mistakes or biases", "correct mistakes", "query-specific",
       "w_mistakes"),
    _P(28, "length", "lengthy", "length"),
)
PROPERTY_NAMES: tuple[str, ...] = tuple(p.name for p in PROPERTIES)
#: Keys of the ``basic_response_*`` struct (20 ratings; ``repetitive`` is stored raw).
BASIC_KEYS: tuple[str, ...] = tuple(p.key for p in PROPERTIES if p.kind == "basic")

#: The five query-specific cases (dataset.md §4.2), in the order of their properties.
CASES: tuple[str, ...] = tuple(p.case for p in PROPERTIES if p.case is not None)

#: The 11 scenario groups with the paper's sizes (dataset.md §4.1).
SCENARIO_SIZES: dict[str, int] = {
    "Advice": 400, "Code": 400, "Communication": 400, "Creative Writing": 400,
    "Daily Tasks": 400, "Exam Questions": 400, "Functional Writing": 400,
    "Knowledge-aware": 820, "NLP Tasks": 400, "Others": 820, "Unsafe Queries": 400,
}
#: The five case sizes of the paper (dataset.md §4.2).
CASE_SIZES: dict[str, int] = {
    "intent_unclear": 459, "express_feeling": 121, "w_constraints": 1418,
    "w_stances": 388, "w_mistakes": 401,
}
#: Rows of the released dataset (dataset.md §1).
PAPER_ROWS = 5240
#: Human labels "A" (response 1 preferred) per scenario group and per case, and over all
#: 5,240 rows: the shares of dataset.md §4.1 / §4.2 / §8 times the sizes above.
HUMAN_A_COUNTS: dict[str, int] = {
    "Advice": 189, "Code": 186, "Communication": 192, "Creative Writing": 215,
    "Daily Tasks": 187, "Exam Questions": 214, "Functional Writing": 191,
    "Knowledge-aware": 390, "NLP Tasks": 209, "Others": 432, "Unsafe Queries": 204,
    "intent_unclear": 231, "express_feeling": 67, "w_constraints": 718, "w_stances": 194,
    "w_mistakes": 193,
}
HUMAN_A_TOTAL = 2609

_J = Judge
JUDGES: tuple[Judge, ...] = (
    _J("yi-6b", "Yi-6B", 6, "base"),
    _J("yi-6b-chat", "Yi-6B-Chat", 6, "aligned"),
    _J("llama-2-7b", "LLaMA-2-7B", 7, "base"),
    _J("llama-2-7b-chat", "LLaMA-2-7B-Chat", 7, "aligned"),
    _J("vicuna-7b-v1.5", "Vicuna-7B-v1.5", 7, "aligned"),
    _J("tulu-2-dpo-7b", "Tulu-2-DPO-7B", 7, "aligned"),
    _J("mistral-7b", "Mistral-7B", 7, "base"),
    _J("mistral-7b-instruct-v0.1", "Mistral-7B-Inst-v0.1", 7, "aligned"),
    _J("mistral-7b-instruct-v0.2", "Mistral-7B-Inst-v0.2", 7, "aligned"),
    _J("zephyr-7b-alpha", "Zephyr-7B-alpha", 7, "aligned"),
    _J("zephyr-7b-beta", "Zephyr-7B-beta", 7, "aligned"),
    _J("qwen-7b", "Qwen-7B", 7, "base"),
    _J("qwen-7b-chat", "Qwen-7B-Chat", 7, "aligned"),
    _J("llama-2-13b", "LLaMA-2-13B", 13, "base"),
    _J("llama-2-13b-chat", "LLaMA-2-13B-Chat", 13, "aligned"),
    _J("wizardLM-13b-v1.2", "WizardLM-13B-v1.2", 13, "aligned"),
    _J("vicuna-13b-v1.5", "Vicuna-13B-v1.5", 13, "aligned"),
    _J("tulu-2-dpo-13b", "Tulu-2-DPO-13B", 13, "aligned"),
    _J("qwen-14b", "Qwen-14B", 14, "base"),
    _J("qwen-14b-chat", "Qwen-14B-Chat", 14, "aligned"),
    _J("yi-34b", "Yi-34B", 34, "base"),
    _J("yi-34b-chat", "Yi-34B-Chat", 34, "aligned"),
    _J("mistral-8x7b", "Mistral-8x7B", 56, "base"),
    _J("mistral-8x7b-instruct-v0.1", "Mistral-8x7B-Inst-v0.1", 56, "aligned"),
    _J("llama-2-70b", "LLaMA-2-70B", 70, "base"),
    _J("llama-2-70b-chat", "LLaMA-2-70B-Chat", 70, "aligned"),
    _J("wizardLM-70b-v1.0", "WizardLM-70B-v1.0", 70, "aligned"),
    _J("tulu-2-dpo-70b", "Tulu-2-DPO-70B", 70, "aligned"),
    _J("qwen-72b", "Qwen-72B", 72, "base"),
    _J("qwen-72b-chat", "Qwen-72B-Chat", 72, "aligned"),
    _J("gpt-3.5-turbo-1106", "GPT-3.5-Turbo", 500, "proprietary"),
    _J("gpt-4-1106-preview", "GPT-4-Turbo", 2000, "proprietary"),
    _J("human", "Human", 10000, "human"),
)
JUDGE_KEYS: tuple[str, ...] = tuple(j.key for j in JUDGES)
_JUDGES_BY_KEY = {j.key: j for j in JUDGES}


def judge_info(key: str) -> Judge:
    """Metadata for a judge key; judges unknown to the paper get neutral defaults."""
    return _JUDGES_BY_KEY.get(key, Judge(key, key, float("nan"), "unknown"))  # type: ignore[arg-type]
