"""The query commands end to end on saved fits: exact columns, formats, --out, errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bayesdissect.cli.main import main
from bayesdissect.queries.effects import EFFECT_COLUMNS
from bayesdissect.queries.similarity import SIMILARITY_COLUMNS


@pytest.fixture(scope="module")
def fits(query_fits: dict) -> dict:
    return query_fits


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_effects_csv_columns_and_filters(fits, capsys) -> None:
    judge = str(fits["data"].judge.values[0])
    group = str(fits["data"].group.values[0])
    code, out, _ = run(capsys, "effects", fits["hier_path"], "--level", "cell", "--judge",
                       judge, "--group", group, "--prob", "0.8", "--format", "csv")
    assert code == 0
    df = pd.read_csv(io.StringIO(out), keep_default_na=False)
    assert list(df.columns) == EFFECT_COLUMNS
    assert len(df) == 5 and set(df.judge) == {judge} and set(df.group) == {group}
    code, out, _ = run(capsys, "effects", fits["hier_path"], "--level", "global",
                       "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 5 and rows[0]["judge"] == "" and rows[0]["group"] == ""


def test_compare_similarity_clusters_tables(fits, capsys, tmp_path) -> None:
    j = [str(v) for v in fits["data"].judge.values]
    code, out, _ = run(capsys, "compare", fits["hier_path"], j[0], j[2], "--format", "csv")
    df = pd.read_csv(io.StringIO(out), keep_default_na=False)
    assert code == 0 and len(df) == 5 and "prob_a_greater" in df.columns
    target = tmp_path / "sim.csv"
    code, out, err = run(capsys, "similarity", fits["hier_path"], "--kind", "deviation",
                         "--format", "csv", "--out", str(target))
    assert code == 0 and out == "" and "wrote" in err
    sim = pd.read_csv(target)
    assert list(sim.columns) == SIMILARITY_COLUMNS and len(sim) == 10
    # without --kind: agreement, as bd.similarity's default (the same numbers)
    from bayesdissect.model.fitted import load_fit
    from bayesdissect.queries.similarity import similarity

    code, out, _ = run(capsys, "similarity", fits["hier_path"], "--format", "csv")
    got = pd.read_csv(io.StringIO(out))
    want = similarity(load_fit(fits["hier_path"]), kind="agreement")
    assert code == 0
    np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-6)
    code, out, err = run(capsys, "clusters", fits["hier_path"], "--k", "2")
    assert code == 0 and "stability" in out and "K = 2" in err
    code, out, _ = run(capsys, "clusters", fits["hier_path"], "--table", "pairs",
                       "--format", "json")
    assert code == 0 and len(json.loads(out)) == 10


def test_ppc_and_compare_models(fits, capsys) -> None:
    code, out, err = run(capsys, "ppc", fits["hier_path"], "--table", "judges",
                         "--format", "csv")
    df = pd.read_csv(io.StringIO(out))
    assert code == 0 and len(df) == 5 and {"observed", "rep_mean", "ppp"} <= set(df.columns)
    code, out, err = run(capsys, "ppc", fits["hier_path"])
    assert code == 0 and "accuracy" in err and "agreement" in out
    code, out, _ = run(capsys, "compare-models", fits["pooled_path"], fits["hier_path"],
                       "--format", "csv")
    df = pd.read_csv(io.StringIO(out))
    assert code == 0 and list(df.model) == ["hierarchical", "pooled"]
    assert list(df["rank"]) == [1, 2]


@pytest.mark.parametrize("argv, needle", [
    (["effects", "{hier}", "--judge", "nobody"], "unknown judge 'nobody'"),
    (["effects", "{pooled}", "--level", "cell"], "no 'cell' level"),
    (["compare", "{hier}", "{j0}", "ghost"], "unknown judge 'ghost'"),
    (["similarity", "{hier}", "--group", "Mars"], "unknown group 'Mars'"),
    (["similarity", "{pooled}"], "no judge-level terms"),
    (["clusters", "{hier}", "--k", "99"], "--k must be between 1"),
    (["effects", "{hier}", "--prob", "1.2"], "between 0 and 1"),
    (["compare-models", "{hier}"], "at least two fits"),
    (["effects", "/nonexistent/fit.nc"], "fit.nc"),
    (["effects", "{hier}", "--level", "planet"], "unknown level 'planet'"),
    (["similarity", "{hier}", "--kind", "cosine"], "unknown similarity kind"),
])
def test_errors_one_line_exit_2(fits, capsys, argv, needle) -> None:
    subs = {"hier": fits["hier_path"], "pooled": fits["pooled_path"],
            "j0": str(fits["data"].judge.values[0])}
    code, out, err = run(capsys, *[a.format(**subs) for a in argv])
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_subprocess_error_has_no_traceback(fits) -> None:
    proc = subprocess.run([sys.executable, "-m", "bayesdissect", "effects", fits["hier_path"],
                           "--judge", "nobody"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
