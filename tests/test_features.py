"""Every feature rule of dataset.md §5, each on its own, through ``features.gair_table``."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from bayesdissect.data.catalogue import BASIC_KEYS, JUDGE_KEYS, PROPERTIES, PROPERTY_NAMES
from bayesdissect.data.features import (
    LENGTH_THRESHOLDS,
    MISTAKE_MAP,
    STANCE_MAP,
    gair_table,
    length_feature,
    parse_label,
    parse_rating,
)

SLOT = {p.name: p.index for p in PROPERTIES}
QS_NULL = {"clarify user intent": None, "showing empathetic": None,
           "satisfying explicit constraints": None,
           "supporting explicit subjective stances": None,
           "correcting explicit mistakes or biases": None}


def base_row(**overrides: Any) -> dict[str, Any]:
    """A canonical GAIR row (dataset.md §2.2b) on which every feature is 0."""
    row: dict[str, Any] = {
        "query": "q", "scenario_auto-j": "default", "scenario_group": "Others",
        "response_1": {"content": "a", "model": "m1", "num_words": 100},
        "response_2": {"content": "b", "model": "m2", "num_words": 100},
        "gpt-4-turbo_reference": "ref",
        "clear intent": "Yes", "explicitly express feelings": "No",
        "explicit constraints": [], "explicit subjective stances": [],
        "explicit mistakes or biases": [],
        "preference_labels": {"human": "response_1", "gpt-4-1106-preview": "response_2"},
        "basic_response_1": dict.fromkeys(BASIC_KEYS, 2),
        "basic_response_2": dict.fromkeys(BASIC_KEYS, 2),
        "errors_response_1": {"accuracy check": "applicable", "errors": []},
        "errors_response_2": {"accuracy check": "applicable", "errors": []},
        "query-specific_response_1": None, "query-specific_response_2": None,
    }
    row.update(copy.deepcopy(overrides))
    return row


def feats(row: dict[str, Any]) -> np.ndarray:
    t = gair_table([row])
    assert t.keep[0]
    return t.x[0]


def with_basic(key: str, r1: Any, r2: Any) -> dict[str, Any]:
    row = base_row()
    row["basic_response_1"][key] = r1
    row["basic_response_2"][key] = r2
    return row


def errors(*severities: str) -> dict[str, Any]:
    return {"accuracy check": "applicable",
            "errors": [{"brief description": "e", "type": "factual error", "severity": s}
                       for s in severities]}


def test_neutral_row_is_all_zero_and_kept() -> None:
    t = gair_table([base_row()])
    assert t.x.shape == (1, 29) and not t.x.any() and t.keep.all()
    assert t.judges == ["gpt-4-1106-preview", "human"]  # paper order, not row order
    assert t.y.tolist() == [[0.0, 1.0]]


@pytest.mark.parametrize("key", [k for k in BASIC_KEYS
                                 if k not in ("repetitive",
                                              "relevance without considering inaccuracy")])
def test_default_rule_sign_of_difference(key: str) -> None:
    slot = next(p.index for p in PROPERTIES if p.key == key)
    for r1, r2, want in ((3, 1, 1.0), (1, 3, -1.0), (2, 2, 0.0), (1, 0, 1.0)):
        x = feats(with_basic(key, r1, r2))
        assert x[slot] == want
        assert np.count_nonzero(x) == (want != 0)  # only this slot moves


def test_non_repetitive_is_sign_flipped() -> None:
    slot = SLOT["non-repetitive"]
    assert slot == 15
    assert feats(with_basic("repetitive", 0, 2))[slot] == 1.0   # resp 1 less repetitive
    assert feats(with_basic("repetitive", 3, 1))[slot] == -1.0
    assert feats(with_basic("repetitive", 1, 1))[slot] == 0.0


def test_relevance_zero_vs_nonzero() -> None:
    key, slot = "relevance without considering inaccuracy", SLOT["relevant"]
    assert slot == 17
    for r1, r2, want in ((3, 0, 1.0), (1, 0, 1.0), (0, 2, -1.0), (3, 1, 0.0), (1, 3, 0.0),
                         (0, 0, 0.0), ("N/A", 2, -1.0)):
        assert feats(with_basic(key, r1, r2))[slot] == want, (r1, r2)


@pytest.mark.parametrize("raw, want", [
    (0, 0), (1, 1), (2, 2), (3, 3), (2.0, 2), ("2", 2), (" 3 ", 3), (np.int64(3), 3),
    ("N/A", 0), (2.5, 0), ("3/3", 0), (None, 0), (4, 0), (-1, 0), (True, 0), ("two", 0),
    ("2.0", 0), (float("nan"), 0), ([2], 0),
])
def test_rating_parsing(raw: Any, want: int) -> None:
    assert parse_rating(raw) == want


def test_rating_parsing_inside_rows() -> None:
    slot = SLOT["clear"]
    assert feats(with_basic("clear and understandable", "3", 2.0))[slot] == 1.0
    assert feats(with_basic("clear and understandable", "N/A", 1))[slot] == -1.0
    assert feats(with_basic("clear and understandable", 2.5, 0))[slot] == 0.0
    assert feats(with_basic("clear and understandable", None, "1"))[slot] == -1.0


def test_three_error_severities_are_independent() -> None:
    # resp 1: one severe; resp 2: three minor. Lexicographic would give one sign to all.
    row = base_row(errors_response_1=errors("severe"),
                   errors_response_2=errors("minor", "Minor ", " MINOR"))
    x = feats(row)
    assert (x[20], x[21], x[22]) == (1.0, 0.0, -1.0)
    assert PROPERTY_NAMES[20:23] == ("no minor errors", "no moderate errors",
                                     "no severe errors")


def test_error_counts_compare_and_unknown_severities_ignored() -> None:
    row = base_row(errors_response_1=errors("moderate", "moderate", "critical", "Severe"),
                   errors_response_2=errors("moderate", "severe", "", "catastrophic"))
    x = feats(row)
    assert (x[20], x[21], x[22]) == (0.0, -1.0, 0.0)
    # errors: null list means no errors; entries without severity are ignored
    row = base_row(errors_response_1={"accuracy check": "applicable", "errors": None},
                   errors_response_2={"accuracy check": "applicable",
                                      "errors": [{"type": "x"}, {"severity": "minor"}]})
    assert feats(row)[20] == 1.0


@pytest.mark.parametrize("check1, check2, kept", [
    ("applicable", "applicable", True), ("not applicable", "applicable", False),
    ("applicable", "not applicable", False), ("not applicable", "not applicable", False),
    ("Applicable", "applicable", False), ("applicable ", "applicable", False),
])
def test_accuracy_check_drop_rule(check1: str, check2: str, kept: bool) -> None:
    row = base_row(errors_response_1={"accuracy check": check1, "errors": []},
                   errors_response_2={"accuracy check": check2,
                                      "errors": [{"severity": "severe"}]})
    t = gair_table([row, base_row()])
    assert t.keep.tolist() == [kept, True]
    if not kept:
        assert not t.x[0].any()


def test_accuracy_drop_removes_pair_from_loaded_dataset(tmp_path) -> None:
    import json

    from bayesdissect import load

    rows = [base_row() for _ in range(4)]
    rows[1]["errors_response_2"]["accuracy check"] = "not applicable"
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load(path)
    assert data["pair"].values.tolist() == [0, 2, 3]
    assert data.attrs["n_dropped"] == 1 and data.attrs["simulated"] == 0


def qs_row(case_fields: dict[str, Any], key: str, v1: Any, v2: Any) -> dict[str, Any]:
    s1, s2 = dict(QS_NULL), dict(QS_NULL)
    s1[key], s2[key] = v1, v2
    return base_row(**case_fields, **{"query-specific_response_1": s1,
                                      "query-specific_response_2": s2})


def test_clarify_intent_only_when_intent_unclear() -> None:
    slot = SLOT["clarify intent"]
    assert feats(qs_row({"clear intent": "No"}, "clarify user intent", 3, 1))[slot] == 1.0
    assert feats(qs_row({"clear intent": "No"}, "clarify user intent", "1", "N/A"))[slot] == 1.0
    assert feats(qs_row({"clear intent": "Yes"}, "clarify user intent", 3, 1))[slot] == 0.0
    t = gair_table([qs_row({"clear intent": "No"}, "clarify user intent", 0, 2)])
    assert t.x[0, slot] == -1.0 and t.cases["intent_unclear"][0]


def test_show_empathetic_only_when_feelings_expressed() -> None:
    slot = SLOT["show empathetic"]
    yes = {"explicitly express feelings": "Yes"}
    assert feats(qs_row(yes, "showing empathetic", 1, 2))[slot] == -1.0
    assert feats(qs_row({}, "showing empathetic", 1, 2))[slot] == 0.0


def test_satisfy_constraints_compares_means() -> None:
    slot, key = SLOT["satisfy constraints"], "satisfying explicit constraints"
    case = {"explicit constraints": ["under 50 words", "a list"]}
    assert feats(qs_row(case, key, [3, 0], [1, 1]))[slot] == 1.0
    assert feats(qs_row(case, key, [3, 1], [2, 2]))[slot] == 0.0
    assert feats(qs_row(case, key, ["3", "N/A"], [2, 2]))[slot] == -1.0
    assert feats(qs_row({}, key, [3, 3], [0, 0]))[slot] == 0.0          # no constraints


def test_support_stances_label_map_and_unknown_labels() -> None:
    slot, key = SLOT["support stances"], "supporting explicit subjective stances"
    case = {"explicit subjective stances": ["cats are best", "dogs are loud"]}
    assert STANCE_MAP == {"strongly supported": 2, "weakly supported": 1, "neutral": 0,
                          "weakly opposed": -1, "strongly opposed": -2}
    assert feats(qs_row(case, key, ["strongly supported", "neutral"],
                        ["weakly supported", "weakly supported"]))[slot] == 0.0
    assert feats(qs_row(case, key, [" Weakly Supported ", "neutral"],
                        ["neutral", "weakly opposed"]))[slot] == 1.0
    assert feats(qs_row(case, key, ["strongly opposed", "neutral"],
                        ["weakly opposed", "weakly opposed"]))[slot] == 0.0
    # unknown labels count 0
    assert feats(qs_row(case, key, ["no idea", "whatever"], ["neutral", "neutral"]))[slot] == 0
    assert feats(qs_row(case, key, ["no idea"], ["weakly opposed"]))[slot] == 1.0
    assert feats(qs_row(case, key, [7], ["weakly supported"]))[slot] == -1.0


def test_correct_mistakes_label_map_and_unknown_labels() -> None:
    slot, key = SLOT["correct mistakes"], "correcting explicit mistakes or biases"
    case = {"explicit mistakes or biases": ["the earth is flat"]}
    assert MISTAKE_MAP == {"pointed out and corrected": 3,
                           "corrected without being pointed out": 2,
                           "pointed out but not corrected": 1, "neither": 0}
    labels = list(MISTAKE_MAP)  # values 3, 2, 1, 0
    for a in range(4):
        for b in range(4):
            want = float(np.sign(MISTAKE_MAP[labels[a]] - MISTAKE_MAP[labels[b]]))
            assert feats(qs_row(case, key, [labels[a]], [labels[b]]))[slot] == want
    assert feats(qs_row(case, key, ["Pointed Out And Corrected "], ["banana"]))[slot] == 1.0
    assert feats(qs_row(case, key, ["banana"], ["neither"]))[slot] == 0.0


def test_query_specific_missing_key_or_struct_gives_zero() -> None:
    case = {"clear intent": "No"}
    row = qs_row(case, "clarify user intent", 3, 0)
    del row["query-specific_response_2"]["clarify user intent"]
    assert feats(row)[SLOT["clarify intent"]] == 0.0
    row = qs_row(case, "clarify user intent", 3, 0)
    row["query-specific_response_1"] = None
    assert feats(row)[SLOT["clarify intent"]] == 0.0
    row = qs_row({"explicit constraints": ["c"]}, "satisfying explicit constraints", [3], [])
    assert feats(row)[SLOT["satisfy constraints"]] == 0.0


def test_case_flags_from_query_fields() -> None:
    row = base_row(**{"clear intent": "No", "explicitly express feelings": "Yes",
                      "explicit constraints": ["c"], "explicit subjective stances": [],
                      "explicit mistakes or biases": ["m1", "m2"]})
    t = gair_table([row, base_row()])
    assert {c: f.tolist() for c, f in t.cases.items()} == {
        "intent_unclear": [True, False], "express_feeling": [True, False],
        "w_constraints": [True, False], "w_stances": [False, False],
        "w_mistakes": [True, False]}


# §5.8 worked examples, plus the two sample rows of §8
@pytest.mark.parametrize("w1, w2, want", [
    (5, 10, -1), (100, 85, 0), (100, 79, 1), (12, 21, 0), (12, 22, -1), (400, 360, 1),
    (0, 0, 0), (144, 64, 1), (431, 8, 1),
])
def test_length_worked_examples(w1: int, w2: int, want: int) -> None:
    assert length_feature(np.array([w1]), np.array([w2]))[0] == want
    assert length_feature(np.array([w2]), np.array([w1]))[0] == -want  # antisymmetric
    row = base_row()
    row["response_1"]["num_words"], row["response_2"]["num_words"] = w1, w2
    assert feats(row)[SLOT["lengthy"]] == want


def test_length_short_response_table() -> None:
    table = {0: 1, 1: 3, 2: 5, 3: 7, 4: 8, 5: 10, 6: 11, 7: 13, 8: 14, 9: 16, 10: 17, 11: 19}
    assert LENGTH_THRESHOLDS == tuple(table.values())
    for s, minimum in table.items():
        longer = length_feature(np.array([minimum, minimum - 1]), np.array([s, s]))
        assert longer[0] == 1.0, s
        assert longer[1] == 0.0, s
        assert length_feature(np.array([s]), np.array([minimum]))[0] == -1.0
    # for s <= 11 the ratio rules do not apply: 11 vs 18 is 0 although 11 <= 0.7 * 18
    assert length_feature(np.array([11]), np.array([18]))[0] == 0.0


def test_length_ratio_rules_boundaries() -> None:
    w1 = np.array([100, 100, 100, 100, 100, 200, 200, 500, 500])
    w2 = np.array([70, 71, 80, 81, 90, 160, 180, 450, 451])
    # 70: 70 <= 70 and d = 30 >= 10; 71: 71 <= 80 and d = 29 >= 20; 80: d = 20 >= 20;
    # 81: 81 > 70 and d = 19 < 20 -> 0; 90: d = 10 < 20 and 90 > 70 -> 0;
    # 160: 160 <= 160 and d = 40; 180: 180 <= 180 but d = 20 < 40 and 180 > 160 -> 0;
    # 450: 450 <= 450 and d = 50 >= 40; 451 > 450 and 451 > 400 -> 0
    assert length_feature(w1, w2).tolist() == [1, 1, 1, 0, 0, 1, 0, 1, 0]


def test_label_spellings() -> None:
    for v in ("response_1", "A", "a", "1", 1, 1.0, " Response_1 "):
        assert parse_label(v) == 1.0
    for v in ("response_2", "B", "2", 2, 2.0):
        assert parse_label(v) == 0.0
    assert np.isnan(parse_label(None))
    for bad in ("C", "tie", 3, 0, True, "response_3", [1]):
        with pytest.raises((KeyError, TypeError)):
            parse_label(bad)


def test_swapping_responses_negates_every_feature() -> None:
    from bayesdissect.data.simulate import simulate

    rows = simulate(n_pairs=300, judges=2, groups=3, seed=5, messy=True).rows
    swapped = []
    for r in rows:
        s = copy.deepcopy(r)
        for f in ("response", "basic_response", "errors_response", "query-specific_response"):
            s[f"{f}_1"], s[f"{f}_2"] = r[f"{f}_2"], r[f"{f}_1"]
        swapped.append(s)
    a, b = gair_table(rows), gair_table(swapped)
    assert (a.keep == b.keep).all()
    assert np.array_equal(a.x, -b.x)
    assert np.abs(a.x).sum() > 1000  # the check is not vacuous


def test_all_judge_keys_accepted() -> None:
    row = base_row(preference_labels={j: "response_2" for j in reversed(JUDGE_KEYS)})
    t = gair_table([row])
    assert t.judges == list(JUDGE_KEYS) and (t.y == 0).all()


def test_structs_stored_as_json_text_are_decoded() -> None:
    import json

    row = base_row(errors_response_1=errors("severe"), **{"clear intent": "No"})
    row["query-specific_response_1"] = dict(QS_NULL, **{"clarify user intent": 3})
    row["query-specific_response_2"] = dict(QS_NULL, **{"clarify user intent": 1})
    want = feats(row)
    assert want[22] == -1.0 and want[23] == 1.0
    text = dict(row)
    for f in ("basic_response_1", "errors_response_1", "query-specific_response_1",
              "preference_labels", "response_2"):
        text[f] = json.dumps(row[f])
    assert np.array_equal(feats(text), want)
