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

What the rules turn into 0 without having seen it is never silent: ``gair_table`` records
one line per finding in ``GairTable.notes`` (a field or key that feeds a property but is
absent or null, a key the loader does not read, ratings that could not be parsed), which
``load`` raises as ``DataWarning``s; facts that the paper's rules expect (a few null
ratings, unknown severities or labels) are only counted, in ``GairTable.counts``.
A field map value ``"-name"`` names a key that holds the *inverted* 0-3 rating (3 - r).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesdissect.data.catalogue import BASIC_KEYS, CASES, JUDGE_KEYS, PROPERTIES
from bayesdissect.errors import BayesDissectError

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

#: Keys of the structs the loader reads (dataset.md §2.2b).
RESPONSE_KEYS: tuple[str, ...] = ("content", "model", "num_words")
ERROR_KEYS: tuple[str, ...] = ("accuracy check", "errors")
ERROR_ITEM_KEYS: tuple[str, ...] = ("brief description", "type", "severity")
QS_KEYS: tuple[str, ...] = tuple(p.key for p in PROPERTIES if p.case is not None)
#: Top-level fields of a canonical GAIR row (dataset.md §2.1 and §2.2b).
TOP_FIELDS: tuple[str, ...] = (
    "query", "scenario_auto-j", "scenario_group", "response_1", "response_2",
    "gpt-4-turbo_reference", *CASE_FIELDS.values(), "preference_labels",
    "basic_response_1", "basic_response_2", "errors_response_1", "errors_response_2",
    "query-specific_response_1", "query-specific_response_2",
)
#: Every name a field map may rename: top-level fields and the keys inside the structs.
CANONICAL_NAMES: frozenset[str] = frozenset(
    TOP_FIELDS + RESPONSE_KEYS + BASIC_KEYS + ERROR_KEYS + ERROR_ITEM_KEYS + QS_KEYS)
#: Keys holding 0-3 ratings; only these may be mapped to an inverted key ("-name").
RATING_KEYS: tuple[str, ...] = BASIC_KEYS + (
    "clarify user intent", "showing empathetic", "satisfying explicit constraints")
#: Field-map prefix: ``{"repetitive": "-non-repetitive"}`` reads 3 - r of that key.
INVERTED_PREFIX = "-"

_IDX = {p.key: p.index for p in PROPERTIES}
_NAME = {p.key: p.name for p in PROPERTIES}
_QS_KEYS = {p.case: p.key for p in PROPERTIES if p.case is not None}
_ERROR_NAMES = tuple(p.name for p in PROPERTIES if p.kind == "error")
_MISSING = object()


# ---------------------------------------------------------------------------
# Single rules, vectorised
# ---------------------------------------------------------------------------

def rating_or_none(value: Any) -> int | None:
    """One raw rating -> 0..3 (§5.2): ints 0-3, floats equal to them, strings "0"-"3";
    None for anything else (None, "N/A", 2.5, "3/3", bools), which the paper counts as 0."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value) if 0 <= value <= 3 else None
    if isinstance(value, (float, np.floating)):
        if math.isfinite(value) and float(value).is_integer() and 0 <= value <= 3:
            return int(value)
        return None
    if isinstance(value, str):
        s = value.strip()
        return int(s) if s in ("0", "1", "2", "3") else None
    return None


def parse_rating(value: Any) -> int:
    """One raw rating -> 0..3 (§5.2); anything that is not a rating becomes 0."""
    r = rating_or_none(value)
    return 0 if r is None else r


def is_null(value: Any) -> bool:
    """None or a float NaN: a value that is not there (as opposed to one that is wrong)."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


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
    #: One line per thing the rules could not see (``load`` raises each as a DataWarning).
    notes: list[str] = field(default_factory=list)
    #: What the paper's rules expect and turn into 0 or ignore (null ratings, unknown
    #: severities and labels), counted on kept pairs; ``bayesdissect info`` prints them.
    counts: dict[str, int] = field(default_factory=dict)
    #: Property name -> the fields it is read from (for messages).
    sources: dict[str, str] = field(default_factory=dict)


def split_field_map(field_map: Mapping[str, str] | None) -> tuple[dict[str, str], frozenset[str]]:
    """A field map -> (canonical name -> your name, canonical names whose key holds the
    inverted rating). ``{"repetitive": "-non-repetitive"}`` reads 3 - r of
    ``non-repetitive`` as ``repetitive``. Raises on a name that is not canonical (a typo
    would otherwise be ignored), an empty name, or an inverted key that is not a rating."""
    names: dict[str, str] = {}
    inverted: set[str] = set()
    for canonical, yours in (field_map or {}).items():
        if canonical not in CANONICAL_NAMES:
            raise BayesDissectError(
                f"field map: {canonical!r} is not a field or key the loader reads; expected "
                "a canonical name of dataset.md §2.2b (e.g. 'scenario_group', 'errors', "
                "'repetitive') mapped to yours")
        inv = yours.startswith(INVERTED_PREFIX)
        name = yours[len(INVERTED_PREFIX):] if inv else yours
        if not name.strip():
            raise BayesDissectError(f"field map: {canonical!r} -> {yours!r}: expected a "
                                    "non-empty field name")
        if inv and canonical not in RATING_KEYS:
            raise BayesDissectError(
                f"field map: {canonical!r} -> {yours!r}: an inverted key ('-name') is only "
                "for 0-3 rating keys (the basic properties, 'clarify user intent', "
                "'showing empathetic', 'satisfying explicit constraints')")
        names[canonical] = name
        if inv:
            inverted.add(canonical)
    return names, frozenset(inverted)


def _feeds(canonical: str) -> str:
    """What a top-level field feeds, for messages."""
    if canonical.startswith("basic_response_"):
        return "the 20 basic properties"
    if canonical.startswith("errors_response_"):
        return f"properties {_names(_ERROR_NAMES)} and the accuracy drop rule"
    if canonical.startswith("query-specific_response_"):
        return f"properties {_names(_NAME[k] for k in QS_KEYS)}"
    if canonical.startswith("response_"):
        return "property 'lengthy' (through num_words)"
    for case, f in CASE_FIELDS.items():
        if f == canonical:
            return f"case {case} and property {_NAME[_QS_KEYS[case]]!r}"
    if canonical == "scenario_group":
        return "the scenario groups"
    if canonical == "preference_labels":
        return "the judges' labels"
    return "nothing the model uses"


def _names(names: Any) -> str:
    return ", ".join(repr(n) for n in names)


def _closest(name: str, candidates: Sequence[str]) -> str:
    """The candidate most like ``name`` (for a field-map suggestion)."""
    return (difflib.get_close_matches(name, candidates, n=1, cutoff=0.0) or [candidates[0]])[0]


def _both(parent1: str, parent2: str, key: str) -> str:
    """'basic_response_1/2.polite' for the two sides of one key (as named in the data)."""
    if parent1[:-1] == parent2[:-1] and parent1[-1:] == "1" and parent2[-1:] == "2":
        return f"{parent1}/2.{key}"
    return f"{parent1}.{key} and {parent2}.{key}"


class _Rows:
    """Field access with a user field map, error messages naming source/row/field, and
    the notes and counts of what could not be seen."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], source: str,
                 field_map: Mapping[str, str] | None, row_ids: Sequence[int] | None) -> None:
        self.rows = rows
        self.source = source
        self.map, self.inverted = split_field_map(field_map)
        self.row_ids = row_ids
        self.notes: list[str] = []
        self.counts: dict[str, int] = {}
        self.unread: dict[str, list[str]] = {}  # struct (as named) -> keys not read there

    def name(self, canonical: str) -> str:
        return self.map.get(canonical, canonical)

    def count(self, what: str, n: Any) -> None:
        if int(n):
            self.counts[what] = self.counts.get(what, 0) + int(n)

    def where(self, i: int, path: str) -> str:
        rid = self.row_ids[i] if self.row_ids is not None else i
        return f"{self.source}: row {rid}, field {path!r}"

    def fail(self, i: int, path: str, expected: str, got: Any = _MISSING) -> BayesDissectError:
        what = "is missing" if got is _MISSING else f"is {_short(got)}"
        return BayesDissectError(f"{self.where(i, path)} {what}; expected {expected}")

    def hint(self, parent: str, canonical: str) -> str:
        """For a missing field: the keys of the same struct that are not read."""
        unread = self.unread.get(parent)
        if not unread:
            return ""
        inv = f", or \"{INVERTED_PREFIX}name\" for a key holding the inverted rating" \
            if canonical in RATING_KEYS else ""
        return (f" (not read here: {_names(unread[:5])}; name the right one with a field "
                f"map, e.g. {{\"{canonical}\": \"{_closest(canonical, unread)}\"}}{inv})")

    def column(self, canonical: str, expected: str) -> list[Any]:
        """Top-level field of every row; raises if absent from any row."""
        name = self.name(canonical)
        out = []
        for i, row in enumerate(self.rows):
            if not isinstance(row, Mapping):
                raise self.fail(i, "<row>", "a JSON object / struct per row", row)
            v = row.get(name, _MISSING)
            if v is _MISSING:
                hint = self.hint("<row>", canonical)
                if not any(isinstance(r, Mapping) and name in r for r in self.rows):
                    raise BayesDissectError(
                        f"{self.source}: field {name!r} is absent from every row; it feeds "
                        f"{_feeds(canonical)}; expected {expected}{hint}")
                raise self.fail(i, name, expected + hint)
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
                raise self.fail(i, f"{parent}.{name}", expected + self.hint(parent, canonical))
            out.append(v)
        return out

    def unknown_keys(self, structs: Sequence[Any], parent: str, known: Sequence[str],
                     read: Sequence[str] | None = None) -> None:
        """Note the keys of ``structs`` that are not read (one line for the struct), and
        which of the keys it ``read``s are absent from every one of them."""
        names = {self.name(k) for k in known}
        seen: dict[str, int] = {}
        for s in structs:
            if isinstance(s, Mapping):
                for k in s:
                    if k not in names:
                        seen[str(k)] = seen.get(str(k), 0) + 1
        if not seen:
            return
        self.unread[parent] = list(seen)
        top = parent == "<row>"
        listed = ", ".join(f"{k!r} ({n} rows)" for k, n in list(seen.items())[:8])
        if len(seen) > 8:
            listed += f" and {len(seen) - 8} more"
        what = "top-level field" if top else f"{parent}: key"
        plural = "s" if len(seen) > 1 else ""
        read = known if read is None else read
        expected = "the fields of dataset.md §2.2b" if top or len(read) > 5 else _names(
            self.name(k) for k in read)
        msg = f"{what}{plural} {listed} not read (expected {expected})"
        absent = [k for k in read if not any(isinstance(s, Mapping) and self.name(k) in s
                                             for s in structs)]
        if absent:
            first = _closest(absent[0], list(seen))
            msg += (f"; {_names(self.name(k) for k in absent)} "
                    f"{'is' if len(absent) == 1 else 'are'} absent: if {first!r} holds "
                    f"{self.name(absent[0])!r}, map it with a field map "
                    f"{{\"{absent[0]}\": \"{first}\"}}")
        self.notes.append(msg)

    def ratings(self, values: Sequence[Any], canonical: str) -> _Ratings:
        """Parse one key's ratings (§5.2); an inverted key (field map '-name') gives 3 - r."""
        return _parse_ratings(values, canonical in self.inverted)

    def rating_notes(self, prop: str, fields: Sequence[str], parsed: Sequence[_Ratings],
                     among: np.ndarray, among_text: str) -> None:
        """Notes for one property's ratings on the pairs ``among``: how many could not be
        parsed (§5.2: they count as 0), and a side that is null on every one of them;
        other nulls are counted."""
        bad = [int(p.bad[among].sum()) for p in parsed]
        if sum(bad):
            side = next(k for k, b in enumerate(bad) if b)
            i = int(np.flatnonzero(among & (parsed[side].bad > 0))[0])
            detail = ", ".join(f"{f} {b}" for f, b in zip(fields, bad, strict=True) if b)
            self.notes.append(
                f"property {prop!r}: {sum(bad)} rating{'s' if sum(bad) > 1 else ''} could "
                "not be parsed on kept pairs "
                f"({detail}; e.g. {_short(parsed[side].example[i])}); they count as 0, as "
                "in the paper (dataset.md §5.2)")
        n_among = int(among.sum())
        for f, p in zip(fields, parsed, strict=True):
            nulls = int((p.null[among] > 0).sum())
            if n_among and nulls == n_among:
                self.notes.append(f"property {prop!r}: {f} is null on all {n_among} "
                                  f"{among_text}; read as 0 there (dataset.md §5.2)")
            else:
                self.count("null ratings on kept pairs, counted as 0 (dataset.md §5.2)",
                           p.null[among].sum())


@dataclass
class _Ratings:
    """Parsed ratings of one key (or one list per row): values, and per row the number of
    values that could not be parsed, the number of nulls, and the first bad value."""

    value: np.ndarray     # (n,) int8 (single ratings) or float64 (item means)
    bad: np.ndarray       # (n,) int64
    null: np.ndarray      # (n,) int64
    example: list[Any]    # (n,) first unparseable value of the row, else None


def _parse_ratings(values: Sequence[Any], inverted: bool) -> _Ratings:
    n = len(values)
    out = _Ratings(np.zeros(n, dtype=np.int8), np.zeros(n, dtype=np.int64),
                   np.zeros(n, dtype=np.int64), [None] * n)
    for i, v in enumerate(values):
        r = rating_or_none(v)
        if r is not None:
            out.value[i] = 3 - r if inverted else r
        elif is_null(v):
            out.null[i] = 1
        else:
            out.bad[i], out.example[i] = 1, v
    return out


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _word_counts(r: _Rows, side: int) -> np.ndarray:
    parent = r.name(f"response_{side}")
    structs = r.structs(f"response_{side}", "a struct {content, model, num_words}")
    r.unknown_keys(structs, parent, RESPONSE_KEYS, read=("num_words",))
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


@dataclass
class _ErrorSide:
    applicable: np.ndarray   # (n,) bool
    counts: np.ndarray       # (n, 3) errors per severity
    absent: np.ndarray       # (n,) bool: the error list is absent or null
    no_severity: np.ndarray  # (n,) items without a severity (or not a struct)
    other: np.ndarray        # (n,) items with a severity other than the three


def _error_info(r: _Rows, side: int) -> _ErrorSide:
    """Accuracy flags, severity counts and what could not be read, for one response side."""
    parent = r.name(f"errors_response_{side}")
    structs = r.structs(f"errors_response_{side}",
                        "a struct {'accuracy check', errors: list of {severity, ...}}")
    r.unknown_keys(structs, parent, ERROR_KEYS)
    checks = r.keys(structs, parent, "accuracy check", "'applicable' or 'not applicable'")
    n = len(structs)
    out = _ErrorSide(np.fromiter((c == "applicable" for c in checks), dtype=bool, count=n),
                     np.zeros((n, 3), dtype=np.int64), np.zeros(n, dtype=bool),
                     np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
    err_name, sev_name = r.name("errors"), r.name("severity")
    index = {s: k for k, s in enumerate(SEVERITIES)}
    items: list[Any] = []
    for i, s in enumerate(structs):
        errs = s.get(err_name)
        if errs is None:
            out.absent[i] = True
            continue
        if not isinstance(errs, (list, tuple, np.ndarray)):
            raise r.fail(i, f"{parent}.{err_name}", "a list of error structs", errs)
        for e in errs:
            sev = e.get(sev_name) if isinstance(e, Mapping) else None
            if isinstance(e, Mapping):
                items.append(e)
            if sev is None:
                out.no_severity[i] += 1
                continue
            k = index.get(sev.strip().lower()) if isinstance(sev, str) else None
            if k is None:
                out.other[i] += 1
            else:
                out.counts[i, k] += 1
    r.unknown_keys(items, f"{parent}.{err_name}[]", ERROR_ITEM_KEYS, read=("severity",))
    return out


def _error_notes(r: _Rows, sides: Sequence[_ErrorSide], keep: np.ndarray) -> None:
    n_keep = int(keep.sum())
    props = f"properties {_names(_ERROR_NAMES)}"
    for side, e in enumerate(sides, start=1):
        path = f"{r.name(f'errors_response_{side}')}.{r.name('errors')}"
        absent = int(e.absent[keep].sum())
        if absent:
            r.notes.append(f"{props}: {path} is absent or null on {absent} of {n_keep} kept "
                           "pairs; their errors read as none there")
        no_sev = e.no_severity[keep]
        if no_sev.sum():
            r.notes.append(f"{props}: {int(no_sev.sum())} error items in {path} on "
                           f"{int((no_sev > 0).sum())} kept pairs have no "
                           f"{r.name('severity')!r}; they are not counted")
        r.count("error items on kept pairs with another severity, ignored (dataset.md §5.6)",
                e.other[keep].sum())


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


def _basic(r: _Rows, x: np.ndarray, keep: np.ndarray, sources: dict[str, str]) -> None:
    """Slots 0-19 from the two ``basic_response_*`` structs (§5.3-§5.5)."""
    parents, parsed = [], []
    for side in (1, 2):
        parent = r.name(f"basic_response_{side}")
        structs = r.structs(f"basic_response_{side}", "a struct of 20 ratings 0-3")
        r.unknown_keys(structs, parent, BASIC_KEYS)
        parents.append(parent)
        parsed.append({k: r.ratings(r.keys(structs, parent, k, "a rating 0-3"), k)
                       for k in BASIC_KEYS})
    for key in BASIC_KEYS:
        a, b = parsed[0][key].value, parsed[1][key].value
        if key == "repetitive":
            x[:, _IDX[key]] = non_repetitive_feature(a, b)
        elif key == "relevance without considering inaccuracy":
            x[:, _IDX[key]] = relevance_feature(a, b)
        else:
            x[:, _IDX[key]] = compare(a, b)
        name = r.name(key)
        sources[_NAME[key]] = _both(parents[0], parents[1], name)
        r.rating_notes(_NAME[key], [f"{p}.{name}" for p in parents],
                       [parsed[0][key], parsed[1][key]], keep, "kept pairs")


def _qs_value(case: str, v: Any, inverted: bool) -> tuple[float, int, int, Any, int]:
    """One response's query-specific annotation -> (value or NaN when missing, values
    that could not be parsed, nulls, first bad value, unknown labels)."""
    if v is _MISSING:
        return math.nan, 0, 0, None, 0
    if case in ("intent_unclear", "express_feeling"):
        p = _parse_ratings([v], inverted)
        return float(p.value[0]), int(p.bad[0]), int(p.null[0]), p.example[0], 0
    if not isinstance(v, (list, tuple, np.ndarray)) or len(v) == 0:
        return math.nan, 0, 0, None, 0
    if case == "w_constraints":
        p = _parse_ratings(list(v), inverted)
        bad = np.flatnonzero(p.bad)
        return (float(p.value.mean()), int(p.bad.sum()), int(p.null.sum()),
                p.example[int(bad[0])] if len(bad) else None, 0)
    table = STANCE_MAP if case == "w_stances" else MISTAKE_MAP
    unknown = sum(1 for t in v if not (isinstance(t, str) and t.strip().lower() in table))
    return float(np.mean([item_value(case, t) for t in v])), 0, 0, None, unknown


def _query_specific(r: _Rows, cases: dict[str, np.ndarray], keep: np.ndarray,
                    sources: dict[str, str]) -> np.ndarray:
    """(n, 5) features for slots 23-27; 0 outside the case or when the annotation is
    missing (§5.7), each such gap inside a case noted with its count."""
    n = len(r.rows)
    sides, names, gone = [], [], []
    for side in (1, 2):
        canonical = f"query-specific_response_{side}"
        name = r.name(canonical)
        vals = []
        for i, row in enumerate(r.rows):
            v = r.decode(i, name, row.get(name), "a struct of query-specific ratings")
            if v is not None and not isinstance(v, Mapping):
                raise r.fail(i, name, "a struct of query-specific ratings, or null", v)
            vals.append(v)
        sides.append(vals)
        names.append(name)
        gone.append(not any(name in row for row in r.rows))
        if gone[-1]:
            r.notes.append(f"field {name!r} is absent from every row: {_feeds(canonical)} "
                           "read as 0 on every pair (dataset.md §5.7)"
                           + r.hint("<row>", canonical))
        else:
            r.unknown_keys([v for v in vals if v is not None], name, QS_KEYS)
    out = np.zeros((n, 5), dtype=np.float64)
    for k, case in enumerate(CASES):
        canonical = _QS_KEYS[case]
        key, prop, inv = r.name(canonical), _NAME[canonical], canonical in r.inverted
        sources[prop] = _both(names[0], names[1], key)
        missing = [np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)]
        parsed = [_Ratings(np.zeros(n), np.zeros(n, dtype=np.int64),
                           np.zeros(n, dtype=np.int64), [None] * n) for _ in range(2)]
        unknown = 0
        for i in np.flatnonzero(cases[case]):
            m = []
            for sd in (0, 1):
                s = sides[sd][i]
                v = s.get(key, _MISSING) if s is not None else _MISSING
                value, bad, null, example, unk = _qs_value(case, v, inv)
                missing[sd][i] = math.isnan(value)
                p = parsed[sd]
                p.bad[i], p.null[i], p.example[i] = bad, null, example
                unknown += unk if keep[i] else 0
                m.append(value)
            if not (math.isnan(m[0]) or math.isnan(m[1])):
                out[i, k] = float(np.sign(m[0] - m[1]))
        among = cases[case] & keep
        n_among = int(among.sum())
        gaps = [(f"{names[sd]}.{key}", int(missing[sd][among].sum())) for sd in (0, 1)
                if not gone[sd]]
        total = sum(g for _, g in gaps)
        if total:
            detail = ", ".join(f"{f} {g}" for f, g in gaps if g)
            r.notes.append(f"property {prop!r}: the annotation is missing, null or empty on "
                           f"{total} of the {n_among} kept {case} pairs ({detail}); read as 0 "
                           "there (dataset.md §5.7)")
        if case in ("intent_unclear", "express_feeling", "w_constraints"):
            r.rating_notes(prop, [f"{nm}.{key}" for nm in names], parsed, among,
                           f"kept {case} pairs")
        r.count("unknown stance / mistake labels on kept pairs, counted as 0 "
                "(dataset.md §5.7)", unknown)
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


_READ_TOP = tuple(f for f in TOP_FIELDS
                  if f not in ("query", "scenario_auto-j", "gpt-4-turbo_reference"))


def gair_table(rows: Sequence[Mapping[str, Any]], *, source: str = "<rows>",
               field_map: Mapping[str, str] | None = None,
               row_ids: Sequence[int] | None = None) -> GairTable:
    """Compute features, drop mask, labels, group and case flags for GAIR rows.

    ``field_map`` maps canonical names (top-level fields or keys inside the structs, as in
    dataset.md §2.2b) to the names used in ``rows``; a value ``"-name"`` says that key
    holds the inverted 0-3 rating (3 - r). ``row_ids`` name rows in messages. What could
    not be seen is in ``notes`` (one line each) and ``counts``; nothing here warns.
    """
    if len(rows) == 0:
        raise BayesDissectError(f"{source}: no rows; expected at least one pair")
    r = _Rows(rows, source, field_map, row_ids)
    n = len(rows)
    x = np.zeros((n, N_PROPERTIES), dtype=np.float64)
    sources: dict[str, str] = {}
    r.unknown_keys(rows, "<row>", TOP_FIELDS, read=_READ_TOP)

    groups = r.column("scenario_group", "a scenario group name (string)")
    for i, g in enumerate(groups):
        if not isinstance(g, str) or not g.strip():
            raise r.fail(i, r.name("scenario_group"), "a non-empty scenario group name", g)
    group = np.asarray(groups, dtype=object)

    cases = _case_flags(r)

    err = [_error_info(r, 1), _error_info(r, 2)]
    keep = err[0].applicable & err[1].applicable
    _error_notes(r, err, keep)
    x[:, 20:23] = error_features(err[0].counts, err[1].counts)
    for name in _ERROR_NAMES:
        sources[name] = _both(r.name("errors_response_1"), r.name("errors_response_2"),
                              f"{r.name('errors')}[].{r.name('severity')}")

    _basic(r, x, keep, sources)
    x[:, 23:28] = _query_specific(r, cases, keep, sources)
    x[:, 28] = length_feature(_word_counts(r, 1), _word_counts(r, 2))
    sources["lengthy"] = _both(r.name("response_1"), r.name("response_2"), r.name("num_words"))
    x[~keep] = 0.0

    y, judges = _labels(r)
    return GairTable(x=x, keep=keep, y=y, judges=judges, group=group, cases=cases,
                     notes=r.notes, counts=r.counts, sources=sources)
