"""``bayesdissect check`` acts on the predictive checks' flags (issue 14, item 4): each
flag in words before anything else (text) or under ``warnings`` (JSON); nothing without
a flag; PSIS-LOO computed once."""

from __future__ import annotations

import json

from test_check_flags import WARNING, _run, fit_files  # noqa: F401 (the fixture)

import bayesdissect.queries.predictive as predictive


def test_check_prints_the_flags_first(fit_files, capsys) -> None:  # noqa: F811
    code, out, err = _run(capsys, "check", fit_files[False])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(WARNING) and "`hierarchical-pair`" in lines[0]
    assert lines.index(next(ln for ln in lines if ln.startswith("model:"))) > 0
    code, out, _ = _run(capsys, "check", fit_files[False], "--format", "json")
    got = json.loads(out)
    assert got["warnings"][0].startswith(WARNING) and got["predictive"]["dependence_p"] < 0.005


def test_check_without_flag_and_loo_once(fit_files, capsys, monkeypatch) -> None:  # noqa: F811
    calls = []
    real = predictive.loo
    monkeypatch.setattr(predictive, "loo", lambda *a, **k: calls.append(1) or real(*a, **k))
    code, out, _ = _run(capsys, "check", fit_files[True])
    assert code == 0 and out.startswith("model:") and "Warning" not in out
    assert len(calls) == 1
