"""The report and ``ppc`` act on the predictive checks' flags (issue 14, item 4): a flag
is said in words at the top (what it weakens, the spec that addresses it), the findings it
weakens are marked, nothing is said without a flag; ``ppc --table`` prints the new tables;
the report computes PSIS-LOO once and hands it to ``ppc``.

Fits here are built from the simulated truth (no sampling): data with a latent quality
per pair (sd 1.5) and a posterior scattered tightly around the true weights, with the true
pair effects (the model that generated the data: not flagged) or without them (what a fit
without a pair term sees: flagged for dependence, remedy ``hierarchical-pair``)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesdissect.queries.predictive as predictive
from bayesdissect.cli.main import main
from bayesdissect.data.simulate import simulate
from bayesdissect.errors import BayesDissectError
from bayesdissect.model.fitted import Fit
from bayesdissect.model.specs import load_spec
from bayesdissect.report.findings import WEAKENS, compute_findings
from bayesdissect.report.html import render_html
from bayesdissect.report.sentences import fill_sentences

TERMS = ("mu", "judge_offset", "group_offset", "cell_offset", "bias")
WARNING = "Warning: the judges' labels agree more often than the model replicates"


@functools.lru_cache(maxsize=2)
def truth_fit(with_pair: bool) -> Fit:
    """A Fit of 6 judges x 250 pairs with pair effects (sd 1.5): 2 x 40 draws of the truth
    plus noise of sd 0.02, with the true pair effects when ``with_pair``."""
    sim = simulate(n_pairs=250, judges=6, groups=2, seed=4, pair_sd=1.5)
    rng = np.random.default_rng(0)
    names = TERMS + (("pair_effect",) if with_pair else ())
    post = {}
    for n in names:
        da = sim.truth[n].expand_dims(chain=2, draw=40).copy()
        da.values = da.values + 0.02 * rng.normal(size=da.shape)
        post[n] = da
    post = xr.Dataset(post).assign_coords(chain=[0, 1], draw=np.arange(40))
    if with_pair:
        post = post.sel(pair=sim.data["pair"].values)  # the kept pairs only
    spec = load_spec("hierarchical-pair" if with_pair else "hierarchical")
    diag = {"max_rhat": 1.004, "min_ess_bulk": 812.0, "min_ess_tail": 640.0, "divergences": 0}
    return Fit(data=sim.data, spec=spec, posterior=post, diagnostics=diag, settings={})


@functools.lru_cache(maxsize=2)
def findings(with_pair: bool):  # noqa: ANN201
    f = compute_findings(truth_fit(with_pair), prob=0.9, counterfactuals=False)
    fill_sentences(truth_fit(with_pair), f)
    return f


def _page(with_pair: bool) -> str:
    return render_html(truth_fit(with_pair), findings(with_pair), [], {}, True, ["ok"])


def test_dependence_is_said_at_the_top_with_its_spec() -> None:
    text = _page(with_pair=False)
    dep = findings(False).ppc.flags.set_index("check").loc["dependence"]
    assert dep.flagged and dep.remedy == "hierarchical-pair"
    box = text.index('id="check-flags"')
    assert box < text.index("<h2>Data and model</h2>") < text.index("Headline findings")
    top = text[box:text.index("</div>", box)]
    assert WARNING in top.replace("&#x27;", "'")
    assert "the 29 properties miss" in top and "attenuated towards 0" in top
    assert "Refit with the spec <code>hierarchical-pair</code>" in top
    # the findings it weakens are marked, after the box, each section it weakens
    marks = text.count('class="weakened"')
    shown = [k for k in WEAKENS["dependence"] if findings(False).sentences.get(k)]
    assert "effects" in shown and marks >= len(shown) + 1  # + the summary table
    assert text.index('class="weakened"') > box


def test_no_flag_no_box() -> None:
    f = findings(with_pair=True)
    assert not f.ppc.flags.flagged.any() and f.warnings() == []
    text = _page(with_pair=True)
    assert 'id="check-flags"' not in text and 'class="weakened"' not in text
    assert "Warning:" not in text
    # the checks' outcome is still said, in the checks section
    assert "reproduced by the model (dependence p = 0." in text


def test_report_computes_loo_once(monkeypatch) -> None:
    calls = []
    real = predictive.loo

    def counted(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(predictive, "loo", counted)
    f = compute_findings(truth_fit(False), prob=0.9, counterfactuals=False)
    assert len(calls) == 1
    # the one LOO feeds both the calibration of the checks and the report's LOO sentence
    p_own = np.exp(f.loo.elpd_i.values)
    assert f.ppc.calibration["n"].sum() == p_own.size
    fill_sentences(truth_fit(False), f)
    assert any(f"elpd_loo {f.loo.elpd_loo:.1f}" in s for s in f.sentences["checks"])


def test_loo_result_of_other_labels_is_refused() -> None:
    """Same entries, one label flipped: the sizes agree, the labels do not."""
    fit = truth_fit(False)
    other = fit.data.copy(deep=True)
    y = other["y"].values
    i, j = np.argwhere(np.isfinite(y))[0]
    y[i, j] = 1.0 - y[i, j]
    lr = predictive.loo(fit.posterior, data=other)
    with pytest.raises(BayesDissectError, match="loo_result is of other data"):
        predictive.ppc(fit, loo_result=lr, n_resamples=5)


@pytest.fixture(scope="module")
def fit_files(tmp_path_factory) -> dict[bool, str]:
    folder = tmp_path_factory.mktemp("fits")
    out = {}
    for with_pair in (False, True):
        path = folder / f"pair{int(with_pair)}.nc"
        truth_fit(with_pair).save(path)
        out[with_pair] = str(path)
    return out


def _run(capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_ppc_tables(fit_files, capsys) -> None:
    path = fit_files[False]
    code, out, err = _run(capsys, "ppc", path, "--table", "flags", "--format", "csv")
    assert code == 0
    flags = pd.read_csv(pd.io.common.StringIO(out))
    assert list(flags.check) == ["dependence", "miscalibration"]
    assert bool(flags.set_index("check").loc["dependence", "flagged"])
    assert err.startswith(WARNING) and "Refit with the spec `hierarchical-pair`" in err
    code, out, err = _run(capsys, "ppc", path, "--table", "counts", "--format", "csv")
    counts = pd.read_csv(pd.io.common.StringIO(out))
    assert code == 0 and list(counts.n_chose_1) == list(range(7))
    assert {"observed", "rep_mean", "ppp"} <= set(counts.columns)
    assert counts.observed.sum() == truth_fit(False).data.sizes["pair"]
    code, out, err = _run(capsys, "ppc", path, "--table", "dispersion")
    assert code == 0 and "count_excess_variance" in out and "count_chi2" in out
    assert "excess variance" in err
    code, out, err = _run(capsys, "ppc", path, "--table", "reliability", "--format", "json")
    rel = pd.read_json(pd.io.common.StringIO(out))
    assert code == 0 and {"p_lower", "p_upper", "n", "predicted", "calibrated"} <= set(
        rel.columns)
    code, out, err = _run(capsys, "ppc", path, "--table", "counts")
    assert "excess variance (dependence) p = 0.000" in err
    # the first line of stderr is the warning: the flags come first
    assert err.splitlines()[0].startswith(WARNING)


def test_ppc_without_flag_says_nothing(fit_files, capsys) -> None:
    code, out, err = _run(capsys, "ppc", fit_files[True], "--table", "flags")
    assert code == 0 and "Warning" not in err and "dependence" in out


def test_cli_report_prints_the_warning_first(capsys) -> None:
    """The end of ``bayesdissect report``: the warnings before the summary table."""
    from types import SimpleNamespace

    from bayesdissect.cli.report import _finish

    _finish(SimpleNamespace(quiet=False), "r/report.html", findings(False), 1.0)
    out = capsys.readouterr().out
    assert out.startswith(WARNING) and out.index(WARNING) < out.index("Summary")
    _finish(SimpleNamespace(quiet=False), "r/report.html", findings(True), 1.0)
    assert "Warning" not in capsys.readouterr().out
