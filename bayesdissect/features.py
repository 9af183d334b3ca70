"""GAIR rows -> the paper's 29 comparison features, labels, groups, case flags, drop mask.

Implements dataset.md §5 exactly (comparison encoding, +1 = response 1 better):

* basic properties: sign(r1 - r2) of the parsed 0-3 ratings (§5.3);
* ``non-repetitive`` (slot 15): sign(rep2 - rep1) of the raw ``repetitive`` rating (§5.4);
* ``relevant`` (slot 17): zero-vs-nonzero rule (§5.5);
* errors (slots 20-22): one independent comparison per severity, sign(n2 - n1) (§5.6);
  a pair whose ``accuracy check`` is not exactly ``"applicable"`` on either side is dropped;
* query-specific (slots 23-27): 0 outside their case; sign of the difference of the
  per-response item means, with the label maps of §5.7 (unknown labels count 0);
* ``lengthy`` (slot 28): the word-count rule of §5.8, in exact integer arithmetic.

Each rule is a small vectorised function so it can be tested on its own; ``gair_table``
applies them all to a sequence of row mappings. Every malformed input raises
``BayesDissectError`` naming the source, the row and the field, and what was expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .catalogue import BASIC_KEYS, CASES, JUDGE_KEYS, PROPERTIES
from .errors import BayesDissectError

N_PROPERTIES = len(PROPERTIES)
SEVERITIES: tuple[str, ...] = ("minor", "moderate", "severe")

#: Query-level fields that decide the five cases (dataset.md §4.2), by case.
CASE_FIELDS: dict[str, str] = {
    "intent_unclear": "clear intent",
    "express_feeling": "explicitly express feelings",
    "w_constraints": "explicit constraints",
    "w_stances": "explicit subjective stances",
    "w_mistakes": "explicit mistakes or biases",
}
#: Stance label -> value (§5.7); labels are lower-cased and trimmed, unknown labels count 0.
STANCE_MAP: dict[str, int] = {
    "strongly supported": 2, "weakly supported": 1, "neutral": 0,
    "weakly opposed": -1, "strongly opposed": -2,
}
#: Mistake-correction label -> value (§5.7); unknown labels count 0.
MISTAKE_MAP: dict[str, int] = {
    "pointed out and corrected": 3, "corrected without being pointed out": 2,
    "pointed out but not corrected": 1, "neither": 0,
}
#: §5.8: for a shorter count s <= 11, the minimum longer count that makes it "worse".
LENGTH_THRESHOLDS: tuple[int, ...] = (1, 3, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19)
#: Accepted label spellings (after str.strip().lower()) -> y (1 = response 1 preferred).
LABEL_VALUES: dict[Any, float] = {
    "response_1": 1.0, "response_2": 0.0, "a": 1.0, "b": 0.0, "1": 1.0, "2": 0.0,
    1: 1.0, 2: 0.0,
}

_IDX = {p.key: p.index for p in PROPERTIES}
_QS_KEYS = {p.case: p.key for p in PROPERTIES if p.case is not None}
_MISSING = object()


# ---------------------------------------------------------------------------
# Single rules, vectorised
# ---------------------------------------------------------------------------

def parse_rating(value: Any) -> int:
    """One raw rating -> 0..3 (§5.2): ints 0-3, floats equal to them, strings "0"-"3";
    anything else (None, "N/A", 2.5, "3/3", bools) becomes 0."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, (int, np.integer)):
        return int(value) if 0 <= value <= 3 else 0
    if isinstance(value, (float, np.floating)):
        if math.isfinite(value) and float(value).is_integer() and 0 <= value <= 3:
            return int(value)
        return 0
    if isinstance(value, str):
        s = value.strip()
        return int(s) if s in ("0", "1", "2", "3") else 0
    return 0


def parse_ratings(values: Sequence[Any]) -> np.ndarray:
    """Vector of raw ratings -> int8 array (see ``parse_rating``)."""
    return np.fromiter((parse_rating(v) for v in values), dtype=np.int8, count=len(values))


def compare(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The default comparison sign(a - b) as float64."""
    return np.sign(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))


def relevance_feature(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """§5.5: +1 if r1 > 0 and r2 == 0, -1 if r1 == 0 and r2 > 0, else 0."""
    return compare(np.asarray(r1) > 0, np.asarray(r2) > 0)


def non_repetitive_feature(rep1: np.ndarray, rep2: np.ndarray) -> np.ndarray:
    """§5.4: sign(rep2 - rep1): +1 when response 1 is *less* repetitive."""
    return compare(rep2, rep1)


def error_features(counts1: np.ndarray, counts2: np.ndarray) -> np.ndarray:
    """§5.6: per severity (columns minor, moderate, severe) sign(n2 - n1), independently."""
    return compare(counts2, counts1)


def length_feature(w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """§5.8: +1/-1 when the longer response is clearly longer, else 0 (integer arithmetic)."""
    w1 = np.asarray(w1, dtype=np.int64)
    w2 = np.asarray(w2, dtype=np.int64)
    s = np.minimum(w1, w2)
    big = np.maximum(w1, w2)
    d = big - s
    table = np.asarray(LENGTH_THRESHOLDS, dtype=np.int64)
    small = (s <= 11) & (big >= table[np.clip(s, 0, 11)])
    large = (s >= 12) & (
        ((10 * s <= 7 * big) & (d >= 10))
        | ((10 * s <= 8 * big) & (d >= 20))
        | ((10 * s <= 9 * big) & (d >= 40))
    )
    return np.where(small | large, compare(w1, w2), 0.0)


def item_value(kind: str, item: Any) -> float:
    """One query-specific list item -> number: constraints are 0-3 ratings, stances and
    mistakes use STANCE_MAP / MISTAKE_MAP (unknown labels 0)."""
    if kind == "w_constraints":
        return float(parse_rating(item))
    table = STANCE_MAP if kind == "w_stances" else MISTAKE_MAP
    if isinstance(item, str):
        return float(table.get(item.strip().lower(), 0))
    return 0.0


def item_mean(kind: str, items: Any) -> float:
    """Mean item value of one response's list; NaN when the list is missing or empty."""
    if not isinstance(items, (list, tuple, np.ndarray)) or len(items) == 0:
        return math.nan
    return float(np.mean([item_value(kind, v) for v in items]))


def parse_label(value: Any) -> float:
    """One label -> 1.0 (response 1), 0.0 (response 2), NaN (None: not labelled).
    Raises KeyError for any other value (the caller names row and judge)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, bool):
        raise KeyError(value)
    if isinstance(value, str):
        key: Any = value.strip().lower()
    elif isinstance(value, (int, float, np.integer, np.floating)):
        key = float(value)
    else:
        raise KeyError(value)
    return LABEL_VALUES[key]


# ---------------------------------------------------------------------------
# Whole rows
# ---------------------------------------------------------------------------

@dataclass
class GairTable:
    """Everything ``load`` needs from GAIR rows, for *all* rows (dropped ones included)."""

    x: np.ndarray                # (n, 29) float64; rows of dropped pairs are 0
    keep: np.ndarray             # (n,) bool: False = dropped by the accuracy rule
    y: np.ndarray                # (n, J) float64 1/0/NaN
    judges: list[str]
    group: np.ndarray            # (n,) object (str)
    cases: dict[str, np.ndarray] = field(default_factory=dict)  # case name -> (n,) bool


class _Rows:
    """Field access with a user field map and error messages naming source/row/field."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], source: str,
                 field_map: Mapping[str, str] | None, row_ids: Sequence[int] | None) -> None:
        self.rows = rows
        self.source = source
        self.map = dict(field_map or {})
        self.row_ids = row_ids

    def name(self, canonical: str) -> str:
        return self.map.get(canonical, canonical)

    def where(self, i: int, path: str) -> str:
        rid = self.row_ids[i] if self.row_ids is not None else i
        return f"{self.source}: row {rid}, field {path!r}"

    def fail(self, i: int, path: str, expected: str, got: Any = _MISSING) -> BayesDissectError:
        what = "is missing" if got is _MISSING else f"is {_short(got)}"
        return BayesDissectError(f"{self.where(i, path)} {what}; expected {expected}")

    def column(self, canonical: str, expected: str) -> list[Any]:
        """Top-level field of every row; raises if absent from any row."""
        name = self.name(canonical)
        out = []
        for i, row in enumerate(self.rows):
            if not isinstance(row, Mapping):
                raise self.fail(i, "<row>", "a JSON object / struct per row", row)
            v = row.get(name, _MISSING)
            if v is _MISSING:
                raise self.fail(i, name, expected)
            out.append(v)
        return out

    def structs(self, canonical: str, expected: str, nullable: bool = False) -> list[Any]:
        """Top-level struct field of every row (a mapping; None allowed if ``nullable``).
        A struct stored as a JSON-object string is decoded."""
        vals = self.column(canonical, expected)
        name = self.name(canonical)
        for i, v in enumerate(vals):
            v = vals[i] = self.decode(i, name, v, expected)
            if not (isinstance(v, Mapping) or (nullable and v is None)):
                raise self.fail(i, name, expected, v)
        return vals

    def decode(self, i: int, name: str, v: Any, expected: str) -> Any:
        """A JSON-object string -> dict (some exports serialise nested fields as text)."""
        if isinstance(v, str) and v.lstrip().startswith("{"):
            try:
                return json.loads(v)
            except ValueError:
                raise self.fail(i, name, f"{expected} (as JSON text: it does not parse)",
                                v) from None
        return v

    def keys(self, structs: list[Any], parent: str, canonical: str, expected: str) -> list[Any]:
        """One key of each struct; raises if absent."""
        name = self.name(canonical)
        out = []
        for i, s in enumerate(structs):
            v = s.get(name, _MISSING)
            if v is _MISSING:
                raise self.fail(i, f"{parent}.{name}", expected)
            out.append(v)
        return out


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _word_counts(r: _Rows, side: int) -> np.ndarray:
    parent = r.name(f"response_{side}")
    structs = r.structs(f"response_{side}", "a struct {content, model, num_words}")
    vals = r.keys(structs, parent, "num_words", "a non-negative integer word count")
    out = np.empty(len(vals), dtype=np.int64)
    for i, v in enumerate(vals):
        ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        if not ok and isinstance(v, (float, np.floating)) and math.isfinite(v) \
                and float(v).is_integer():
            ok = True
        if not ok or v < 0:
            raise r.fail(i, f"{parent}.{r.name('num_words')}",
                         "a non-negative integer word count", v)
        out[i] = int(v)
    return out


def _error_info(r: _Rows, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(applicable (n,) bool, severity counts (n, 3)) for one response side."""
    parent = r.name(f"errors_response_{side}")
    structs = r.structs(f"errors_response_{side}",
                        "a struct {'accuracy check', errors: list of {severity, ...}}")
    checks = r.keys(structs, parent, "accuracy check", "'applicable' or 'not applicable'")
    applicable = np.fromiter((c == "applicable" for c in checks), dtype=bool, count=len(checks))
    counts = np.zeros((len(structs), 3), dtype=np.int64)
    err_name, sev_name = r.name("errors"), r.name("severity")
    index = {s: k for k, s in enumerate(SEVERITIES)}
    for i, s in enumerate(structs):
        errs = s.get(err_name)
        if errs is None:
            continue
        if not isinstance(errs, (list, tuple, np.ndarray)):
            raise r.fail(i, f"{parent}.{err_name}", "a list of error structs", errs)
        for e in errs:
            sev = e.get(sev_name) if isinstance(e, Mapping) else None
            if isinstance(sev, str):
                k = index.get(sev.strip().lower())
                if k is not None:
                    counts[i, k] += 1
    return applicable, counts


def _case_flags(r: _Rows) -> dict[str, np.ndarray]:
    flags: dict[str, np.ndarray] = {}
    for case, canonical in CASE_FIELDS.items():
        name = r.name(canonical)
        if case in ("intent_unclear", "express_feeling"):
            vals = r.column(canonical, "'Yes' or 'No'")
            target = "no" if case == "intent_unclear" else "yes"
            out = np.zeros(len(vals), dtype=bool)
            for i, v in enumerate(vals):
                if v is None:
                    continue
                if not isinstance(v, str):
                    raise r.fail(i, name, "'Yes' or 'No'", v)
                out[i] = v.strip().lower() == target
        else:
            vals = r.column(canonical, "a list of strings (empty if none)")
            out = np.zeros(len(vals), dtype=bool)
            for i, v in enumerate(vals):
                if v is None:
                    continue
                if not isinstance(v, (list, tuple, np.ndarray)):
                    raise r.fail(i, name, "a list of strings (empty if none)", v)
                out[i] = len(v) > 0
        flags[case] = out
    return flags


def _query_specific(r: _Rows, cases: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 5) features for slots 23-27; 0 outside the case or when a key is absent."""
    n = len(r.rows)
    sides = []
    for side in (1, 2):
        name = r.name(f"query-specific_response_{side}")
        vals = []
        for i, row in enumerate(r.rows):
            v = r.decode(i, name, row.get(name), "a struct of query-specific ratings")
            if v is not None and not isinstance(v, Mapping):
                raise r.fail(i, name, "a struct of query-specific ratings, or null", v)
            vals.append(v)
        sides.append(vals)
    out = np.zeros((n, 5), dtype=np.float64)
    for k, case in enumerate(CASES):
        key = r.name(_QS_KEYS[case])
        rows = np.flatnonzero(cases[case])
        for i in rows:
            s1, s2 = sides[0][i], sides[1][i]
            if s1 is None or s2 is None:
                continue
            v1, v2 = s1.get(key, _MISSING), s2.get(key, _MISSING)
            if v1 is _MISSING or v2 is _MISSING:
                continue
            if case in ("intent_unclear", "express_feeling"):
                m1, m2 = float(parse_rating(v1)), float(parse_rating(v2))
            else:
                m1, m2 = item_mean(case, v1), item_mean(case, v2)
                if math.isnan(m1) or math.isnan(m2):
                    continue
            out[i, k] = float(np.sign(m1 - m2))
    return out


def _labels(r: _Rows) -> tuple[np.ndarray, list[str]]:
    name = r.name("preference_labels")
    structs = r.structs("preference_labels", "a struct of judge -> 'response_1'/'response_2'")
    seen: dict[str, None] = {}
    for s in structs:
        seen.update(dict.fromkeys(s))
    if not seen:
        raise BayesDissectError(f"{r.source}: field {name!r} has no judges in any row; "
                                "expected one key per judge")
    known = [j for j in JUDGE_KEYS if j in seen]
    known_set = set(known)
    judges = known + [j for j in seen if j not in known_set]
    y = np.empty((len(structs), len(judges)), dtype=np.float64)
    for k, judge in enumerate(judges):
        vals = [s.get(judge) for s in structs]
        try:
            y[:, k] = np.fromiter(map(parse_label, vals), dtype=np.float64, count=len(vals))
        except (KeyError, TypeError):
            for i, v in enumerate(vals):
                try:
                    parse_label(v)
                except (KeyError, TypeError):
                    raise r.fail(i, f"{name}.{judge}",
                                 "'response_1'/'response_2' (or A/B, 1/2)", v) from None
            raise
    return y, judges


def gair_table(rows: Sequence[Mapping[str, Any]], *, source: str = "<rows>",
               field_map: Mapping[str, str] | None = None,
               row_ids: Sequence[int] | None = None) -> GairTable:
    """Compute features, drop mask, labels, group and case flags for GAIR rows.

    ``field_map`` maps canonical names (top-level fields or keys inside the structs, as in
    dataset.md §2.2b) to the names used in ``rows``. ``row_ids`` name rows in messages.
    """
    if len(rows) == 0:
        raise BayesDissectError(f"{source}: no rows; expected at least one pair")
    r = _Rows(rows, source, field_map, row_ids)
    n = len(rows)
    x = np.zeros((n, N_PROPERTIES), dtype=np.float64)

    groups = r.column("scenario_group", "a scenario group name (string)")
    for i, g in enumerate(groups):
        if not isinstance(g, str) or not g.strip():
            raise r.fail(i, r.name("scenario_group"), "a non-empty scenario group name", g)
    group = np.asarray(groups, dtype=object)

    cases = _case_flags(r)

    basic = []
    for side in (1, 2):
        parent = r.name(f"basic_response_{side}")
        structs = r.structs(f"basic_response_{side}", "a struct of 20 ratings 0-3")
        basic.append({k: parse_ratings(r.keys(structs, parent, k, "a rating 0-3"))
                      for k in BASIC_KEYS})
    for key in BASIC_KEYS:
        a, b = basic[0][key], basic[1][key]
        if key == "repetitive":
            x[:, _IDX[key]] = non_repetitive_feature(a, b)
        elif key == "relevance without considering inaccuracy":
            x[:, _IDX[key]] = relevance_feature(a, b)
        else:
            x[:, _IDX[key]] = compare(a, b)

    app1, c1 = _error_info(r, 1)
    app2, c2 = _error_info(r, 2)
    keep = app1 & app2
    x[:, 20:23] = error_features(c1, c2)
    x[:, 23:28] = _query_specific(r, cases)
    x[:, 28] = length_feature(_word_counts(r, 1), _word_counts(r, 2))
    x[~keep] = 0.0

    y, judges = _labels(r)
    return GairTable(x=x, keep=keep, y=y, judges=judges, group=group, cases=cases)
