"""The loader is loud about what it cannot see (issue 10, item 3).

Each variant is a small GAIR-schema file written here from clean simulated rows, then
mutated: a property 0 on every kept pair, a field that feeds properties but is absent, an
unknown key beside a missing one (``inaccuracies`` for ``errors``), ratings that do not
parse, and a key holding the inverted property (``non-repetitive``). Each gives one
``DataWarning`` line naming the property, the field and the count (or, for a required
field, one error line), on ``load``, ``fit`` and ``info``; the bundled demo stays silent.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bayesdissect import load
from bayesdissect.cli.main import main
from bayesdissect.data.catalogue import CASE_SIZES, PAPER_ROWS, PROPERTY_NAMES, SCENARIO_SIZES
from bayesdissect.data.features import gair_table
from bayesdissect.data.loaders import first_load_checks, load_detailed
from bayesdissect.data.simulate import simulate
from bayesdissect.errors import BayesDissectError, DataWarning

DEAD = "carries no information"


@pytest.fixture(scope="module")
def clean_rows() -> list[dict[str, Any]]:
    """240 clean (non-messy) simulated rows on which every property varies."""
    return simulate(n_pairs=240, judges=3, groups=3, seed=7, messy=False).rows


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def loud(fn: Callable[[], Any]) -> tuple[Any, list[str]]:
    """Run ``fn``; return its result and the messages of the DataWarnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    msgs = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    for m in msgs:
        assert "\n" not in m
    return result, msgs


def errors_as_inaccuracies(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of ``rows`` whose error lists sit under ``inaccuracies`` instead of ``errors``
    (the key the paper's own annotation code uses)."""
    rows = copy.deepcopy(rows)
    for r in rows:
        for side in (1, 2):
            e = r[f"errors_response_{side}"]
            e["inaccuracies"] = e.pop("errors")
    return rows


def kept(rows: list[dict[str, Any]]) -> np.ndarray:
    return gair_table(rows).keep


@pytest.fixture(scope="module")
def baseline(clean_rows, tmp_path_factory: pytest.TempPathFactory):
    path = write(tmp_path_factory.mktemp("clean") / "clean.jsonl", clean_rows)
    data, msgs = loud(lambda: load(path))
    return data, msgs


def test_clean_rows_are_silent(baseline) -> None:
    data, msgs = baseline
    assert msgs == []
    assert (data["x"].values != 0).any(axis=0).all()  # every property varies: no false alarm


def test_bundled_demo_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    data, msgs = loud(lambda: load("demo"))
    assert msgs == [], msgs[:3]
    assert main(["info", "demo"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    out = captured.out
    for name in PROPERTY_NAMES:  # the non-zero share of every property
        assert f"  {name} " in out
    assert "<< 0 on every kept pair" not in out
    sizes = [ln for ln in out.splitlines()
             if ln.startswith(("  rows", "  group ", "  case ", "  paper judges", "  labels"))]
    assert len(sizes) == 1 + 11 + 5 + 2
    for line in sizes:  # the simulated demo has the paper's sizes
        assert "<< differs" not in line, line
    assert sizes[0].split() == ["rows", str(PAPER_ROWS), str(PAPER_ROWS)]


def test_property_zero_on_every_kept_pair(clean_rows, baseline, tmp_path: Path) -> None:
    rows = copy.deepcopy(clean_rows)
    for r in rows:
        r["basic_response_2"]["polite"] = r["basic_response_1"]["polite"]
    data, msgs = loud(lambda: load(write(tmp_path / "dead.jsonl", rows)))
    n = data.sizes["pair"]
    assert len(msgs) == 1
    assert "'polite'" in msgs[0] and "basic_response_1/2.polite" in msgs[0]
    assert f"0 on all {n} kept pairs" in msgs[0] and DEAD in msgs[0]
    # the rest is untouched
    other = [p for p in PROPERTY_NAMES if p != "polite"]
    assert np.array_equal(data["x"].sel(property=other).values,
                          baseline[0]["x"].sel(property=other).values)


def test_dead_column_in_a_tidy_table(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("label:human,clear,warm\nA,1,0\nB,-1,0\nA,0,0\n")
    _, msgs = loud(lambda: load(path))
    assert len(msgs) == 1 and "column 'warm'" in msgs[0] and "0 on all 3 kept pairs" in msgs[0]


def test_inaccuracies_beside_a_missing_errors_key(clean_rows, baseline, tmp_path: Path) -> None:
    rows = errors_as_inaccuracies(clean_rows)
    path = write(tmp_path / "inacc.jsonl", rows)
    data, msgs = loud(lambda: load(path))
    n, n_rows = data.sizes["pair"], len(rows)
    for side in (1, 2):  # the unknown key, naming the struct and suggesting the map
        hit = [m for m in msgs if m.split(": ", 1)[1].startswith(f"errors_response_{side}: ")]
        assert len(hit) == 1, msgs
        assert f"'inaccuracies' ({n_rows} rows) not read" in hit[0]
        assert "'errors' is absent" in hit[0] and '{"errors": "inaccuracies"}' in hit[0]
        # the absent key, naming the three properties and the count
        hit = [m for m in msgs if f"errors_response_{side}.errors is absent" in m]
        assert len(hit) == 1 and f"on {n} of {n} kept pairs" in hit[0]
        assert "'no minor errors', 'no moderate errors', 'no severe errors'" in hit[0]
    for p in ("no minor errors", "no moderate errors", "no severe errors"):
        assert sum(f"'{p}' (from" in m and DEAD in m for m in msgs) == 1
    fixed, msgs = loud(lambda: load(path, field_map={"errors": "inaccuracies"}))
    assert msgs == []
    assert np.array_equal(fixed["x"].values, baseline[0]["x"].values)


def test_error_items_without_a_severity(clean_rows, tmp_path: Path) -> None:
    rows = copy.deepcopy(clean_rows)
    n_items = 0
    keep = kept(rows)
    for i, r in enumerate(rows):
        for e in r["errors_response_1"]["errors"]:
            e["level"] = e.pop("severity")
            n_items += int(keep[i])
    assert n_items > 0
    _, msgs = loud(lambda: load(write(tmp_path / "sev.jsonl", rows)))
    assert any("errors_response_1.errors[]: key 'level'" in m and "'severity' is absent" in m
               for m in msgs), msgs
    assert any(f"{n_items} error items in errors_response_1.errors" in m
               and "no 'severity'" in m for m in msgs), msgs


def test_absent_required_field_is_one_error_line(clean_rows, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # a field the accuracy drop rule needs cannot be guessed: an error, louder than a warning
    rows = copy.deepcopy(clean_rows)
    for r in rows:
        r["inaccuracies_response_1"] = r.pop("errors_response_1")
    path = write(tmp_path / "noerr.jsonl", rows)
    with pytest.raises(BayesDissectError) as info:
        load(path)
    msg = str(info.value)
    assert "'errors_response_1' is absent from every row" in msg
    assert "'no minor errors', 'no moderate errors', 'no severe errors'" in msg
    assert "accuracy drop rule" in msg and '"errors_response_1": "inaccuracies_response_1"' in msg
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "errors_response_1" in err[0]
    data, _ = loud(lambda: load(path, field_map={"errors_response_1": "inaccuracies_response_1"}))
    assert data.sizes["pair"] == int(kept(clean_rows).sum())


def test_query_specific_columns_under_other_names(clean_rows, baseline, tmp_path: Path) -> None:
    rows = copy.deepcopy(clean_rows)
    for r in rows:
        for side in (1, 2):
            r[f"query_specific_{side}"] = r.pop(f"query-specific_response_{side}")
    path = write(tmp_path / "qs.jsonl", rows)
    data, msgs = loud(lambda: load(path))
    qs = ("clarify intent", "show empathetic", "satisfy constraints", "support stances",
          "correct mistakes")
    assert not data["x"].sel(property=list(qs)).values.any()
    for side in (1, 2):
        hit = [m for m in msgs if f"field 'query-specific_response_{side}' is absent" in m]
        assert len(hit) == 1, msgs
        assert all(f"'{p}'" in hit[0] for p in qs)
        assert f'{{"query-specific_response_{side}": "query_specific_{side}"}}' in hit[0]
    assert any("top-level fields 'query_specific_1'" in m for m in msgs)
    assert sum(DEAD in m for m in msgs) == 5
    fmap = {f"query-specific_response_{s}": f"query_specific_{s}" for s in (1, 2)}
    fixed, msgs = loud(lambda: load(path, field_map=fmap))
    assert msgs == [] and np.array_equal(fixed["x"].values, baseline[0]["x"].values)


def test_query_specific_key_missing_in_some_case_pairs(clean_rows, tmp_path: Path) -> None:
    rows = copy.deepcopy(clean_rows)
    t = gair_table(rows)
    rows_in = np.flatnonzero(t.cases["w_constraints"] & t.keep)
    n_case = len(rows_in)
    for i in rows_in[:4]:
        del rows[i]["query-specific_response_2"]["satisfying explicit constraints"]
    _, msgs = loud(lambda: load(write(tmp_path / "qk.jsonl", rows)))
    assert len(msgs) == 1
    assert "'satisfy constraints'" in msgs[0] and f"on 4 of the {n_case} kept w_constraints" \
        in msgs[0] and "query-specific_response_2.satisfying explicit constraints 4" in msgs[0]


def test_ratings_that_do_not_parse_are_counted(clean_rows, baseline, tmp_path: Path) -> None:
    rows = copy.deepcopy(clean_rows)
    keep = np.flatnonzero(kept(rows))
    for i in keep[:5]:
        rows[i]["basic_response_1"]["well formatted"] = "three"
    for i in keep[5:8]:
        rows[i]["basic_response_2"]["well formatted"] = 2.5
    rows[int(np.flatnonzero(~kept(rows))[0])]["basic_response_1"]["well formatted"] = "x"
    data, msgs = loud(lambda: load(write(tmp_path / "bad.jsonl", rows)))
    assert len(msgs) == 1, msgs
    assert "'well formatted'" in msgs[0] and "8 ratings could not be parsed" in msgs[0]
    assert "basic_response_1.well formatted 5" in msgs[0]
    assert "basic_response_2.well formatted 3" in msgs[0] and "'three'" in msgs[0]
    assert "count as 0" in msgs[0]
    # counted as 0, as the paper did (dataset.md §5.2)
    slot = PROPERTY_NAMES.index("well formatted")
    r2 = np.array([rows[i]["basic_response_2"]["well formatted"] for i in keep[:5]],
                  dtype=float)
    r2 = np.nan_to_num(r2)
    assert np.array_equal(data["x"].values[:5, slot], np.sign(0 - r2))


def test_rating_null_on_every_kept_pair_of_one_side(clean_rows, tmp_path: Path) -> None:
    rows = copy.deepcopy(clean_rows)
    for r in rows:
        r["basic_response_2"]["friendly"] = None
    data, msgs = loud(lambda: load(write(tmp_path / "null.jsonl", rows)))
    n = data.sizes["pair"]
    assert len(msgs) == 1
    assert f"basic_response_2.friendly is null on all {n} kept pairs" in msgs[0]
    assert "'friendly'" in msgs[0]


def test_unknown_key_in_a_basic_struct(clean_rows, tmp_path: Path) -> None:
    rows = copy.deepcopy(clean_rows)
    for r in rows[:10]:
        r["basic_response_1"]["concise"] = 2
    _, msgs = loud(lambda: load(write(tmp_path / "extra.jsonl", rows)))
    assert len(msgs) == 1 and "basic_response_1: key 'concise' (10 rows) not read" in msgs[0]


def test_inverted_key_in_the_field_map(clean_rows, baseline, tmp_path: Path) -> None:
    rows = copy.deepcopy(clean_rows)
    for r in rows:
        for side in (1, 2):
            b = r[f"basic_response_{side}"]
            b["non-repetitive"] = 3 - (b.pop("repetitive") or 0)  # a null rating is 0
    path = write(tmp_path / "nonrep.jsonl", rows)
    with pytest.raises(BayesDissectError) as info:
        load(path)
    assert "repetitive" in str(info.value) and "'non-repetitive'" in str(info.value)
    assert '"-name"' in str(info.value)
    slot = PROPERTY_NAMES.index("non-repetitive")
    want = baseline[0]["x"].values
    data, msgs = loud(lambda: load(path, field_map={"repetitive": "-non-repetitive"}))
    assert msgs == [] and np.array_equal(data["x"].values, want)
    assert np.abs(want[:, slot]).sum() > 20  # not vacuous
    # read without the '-', the property's sign comes out wrong
    wrong, _ = loud(lambda: load(path, field_map={"repetitive": "non-repetitive"}))
    assert np.array_equal(wrong["x"].values[:, slot], -want[:, slot])


def test_inverted_query_specific_rating(clean_rows, baseline, tmp_path: Path) -> None:
    rows = copy.deepcopy(clean_rows)
    for r in rows:
        for side in (1, 2):
            s = r[f"query-specific_response_{side}"]
            if s is not None and s.get("clarify user intent") is not None:
                s["clarify user intent"] = 3 - s["clarify user intent"]
    path = write(tmp_path / "inv_qs.jsonl", rows)
    data, msgs = loud(lambda: load(path, field_map={"clarify user intent":
                                                    "-clarify user intent"}))
    assert msgs == [] and np.array_equal(data["x"].values, baseline[0]["x"].values)


def test_bad_field_maps(clean_rows, tmp_path: Path) -> None:
    path = write(tmp_path / "c.jsonl", clean_rows[:20])
    with pytest.raises(BayesDissectError, match="'error' is not a field or key"):
        load(path, field_map={"error": "inaccuracies"})
    with pytest.raises(BayesDissectError, match="only for 0-3 rating keys"):
        load(path, field_map={"num_words": "-words"})
    with pytest.raises(BayesDissectError, match="non-empty"):
        load(path, field_map={"repetitive": "-"})
    (tmp_path / "t.csv").write_text("label:human,clear\nA,1\nB,-1\n")
    with pytest.raises(BayesDissectError, match="tidy table"):
        load(tmp_path / "t.csv", field_map={"scenario_group": "g"})


def test_fit_surfaces_the_load_warnings(clean_rows, tmp_path: Path) -> None:
    from bayesdissect.model.sample import fit

    rows = copy.deepcopy(clean_rows)
    for r in rows:
        r["basic_response_2"]["polite"] = r["basic_response_1"]["polite"]
    path = write(tmp_path / "dead.jsonl", rows)
    with pytest.warns(DataWarning, match="'polite'"), pytest.raises(BayesDissectError):
        fit(str(path), chains=0)  # fails after loading, before any sampling


def test_cli_info_prints_each_warning_on_one_line(clean_rows, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rows = errors_as_inaccuracies(clean_rows)
    path = write(tmp_path / "inacc.jsonl", rows)
    _, msgs = loud(lambda: load(path))
    assert main(["info", str(path)]) == 0
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err == [f"warning: {m}" for m in msgs]
    assert "<< 0 on every kept pair" in captured.out  # and in the share table
    # a real process: no Python source-line echo, no 'DataWarning:' prefix
    proc = subprocess.run([sys.executable, "-m", "bayesdissect", "info", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"warning: {m}" for m in msgs]
    assert "DataWarning" not in proc.stderr and "warnings.warn" not in proc.stderr


def test_cli_info_field_map_with_inverted_key(clean_rows, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rows = copy.deepcopy(clean_rows)
    for r in rows:
        for side in (1, 2):
            b = r[f"basic_response_{side}"]
            rep = b.pop("repetitive")
            b["non-repetitive"] = None if rep is None else 3 - rep
    path = write(tmp_path / "nonrep.jsonl", rows)
    assert main(["info", str(path), "--field-map", '{"repetitive": "-non-repetitive"}']) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "non-repetitive" in captured.out
    with pytest.raises(SystemExit):
        main(["info", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert '"-non-repetitive"' in text and "inverted" in text


def test_first_load_checks_flag_what_differs(clean_rows) -> None:
    t = gair_table(clean_rows)
    checks = {c.what: c for c in first_load_checks(t)}
    assert checks["rows"].here == str(len(clean_rows)) and checks["rows"].differs
    assert checks["paper judges present"].here == "3" and checks["paper judges present"].differs
    assert checks["labels missing"].here == "0" and not checks["labels missing"].differs
    for g, size in SCENARIO_SIZES.items():
        assert checks[f"group {g}"].paper == str(size)
    for c, size in CASE_SIZES.items():
        assert checks[f"case {c}"].here == str(int(t.cases[c].sum()))
        assert checks[f"case {c}"].paper == str(size) and checks[f"case {c}"].differs
    n_drop = int((~t.keep).sum())
    assert checks["dropped by the accuracy rule"].here == str(n_drop) and n_drop > 0
    group = np.asarray(t.group, dtype=str)
    drops = sum(int(checks[f"group {g}"].note.split()[0]) for g in set(group))
    assert drops == n_drop
    # label balance: the human's share of "response 1", against the paper's 49.79%
    assert "human" not in t.judges and checks["human labels"].differs
    rows = copy.deepcopy(clean_rows)
    for i, r in enumerate(rows):
        r["preference_labels"]["human"] = "response_1" if i % 4 == 0 else "response_2"
    checks = {c.what: c for c in first_load_checks(gair_table(rows))}
    assert checks["human share of A, all rows"].here == "25.00%"
    assert checks["human share of A, all rows"].paper == "49.79%"
    assert checks["human share of A, all rows"].differs


def test_load_detailed_returns_the_row_table(clean_rows, tmp_path: Path) -> None:
    path = write(tmp_path / "c.jsonl", clean_rows)
    (data, table), msgs = loud(lambda: load_detailed(path))
    assert msgs == [] and table is not None and len(table.keep) == len(clean_rows)
    assert data.sizes["pair"] == int(table.keep.sum())
    df = pd.DataFrame({"label:human": ["A", "B"], "clear": [1.0, -1.0]})
    (_, none), _ = loud(lambda: load_detailed(df))
    assert none is None


def test_cli_fit_prints_the_load_warnings_before_sampling(
        clean_rows, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`bayesdissect fit` says what the loader could not see, one line each, before it
    samples (here an unknown judge then fails the fit: the warnings came first), and a
    failed fit writes nothing."""
    rows = errors_as_inaccuracies(clean_rows)
    path = write(tmp_path / "inacc.jsonl", rows)
    _, msgs = loud(lambda: load(path))
    out = tmp_path / "f.nc"
    assert main(["fit", str(path), "--out", str(out), "--judges", "nobody"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[:-1] == [f"warning: {m}" for m in msgs] and len(msgs) > 0
    assert "nobody" in err[-1]
    assert not out.exists()


def test_cli_fit_field_map_silences_what_it_maps(
        clean_rows, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = errors_as_inaccuracies(clean_rows)
    path = write(tmp_path / "inacc.jsonl", rows)
    code = main(["fit", str(path), "--out", str(tmp_path / "f.nc"), "--judges", "nobody",
                 "--field-map", '{"errors": "inaccuracies"}'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not [ln for ln in err if ln.startswith("warning:")]
    assert "nobody" in err[-1]
