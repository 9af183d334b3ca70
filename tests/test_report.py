"""The HTML report: complete (every image and table it links exists), computed findings
(a planted effect is named), honest about simulated data, atomic, and its CLI errors are
one line. A posterior is built directly from known truth (no sampling) to keep this fast."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from conftest import make_dataset

from bayesdissect.cli.main import main
from bayesdissect.errors import BayesDissectError
from bayesdissect.queries.effects import EFFECT_COLUMNS
from bayesdissect.queries.similarity import SIMILARITY_COLUMNS
from bayesdissect.report import figures as plots
from bayesdissect.report.html import write_report
from bayesdissect.report.sentences import diagnostics_sentences

JUDGES = ["human", "gpt-4-1106-preview", "gpt-3.5-turbo-1106", "llama-2-70b-chat", "yi-6b"]
DIAG = {"max_rhat": 1.004, "min_ess_bulk": 812.0, "min_ess_tail": 640.0, "divergences": 0,
        "sampling_seconds": 12.3, "total_seconds": 20.1}


def fake_fit(simulated: int = 1, seed: int = 0, draws: int = 60, noise: float = 0.08):
    """A Fit-like object: contract data and a posterior = truth + noise. Human's weight on
    the third property is planted far above every other weight."""
    data, truth = make_dataset(n_judges=len(JUDGES), n_groups=3, n_pairs=300, n_properties=6,
                               seed=seed)
    data = data.assign_coords(judge=JUDGES,
                              judge_size=("judge", [np.nan, 2000, 500, 70, 6]),
                              judge_type=("judge", ["human", "proprietary", "proprietary",
                                                    "aligned", "base"]))
    data.attrs["simulated"] = simulated
    truth["judge_offset"][0, 2] = 4.0 - truth["mu"][2]
    rng = np.random.default_rng(seed + 1)
    dims = {"mu": ("property",), "judge_offset": ("judge", "property"),
            "group_offset": ("group", "property"),
            "cell_offset": ("judge", "group", "property"), "bias": ("judge",)}
    post = xr.Dataset(
        {n: (("chain", "draw") + d,
             truth[n][None, None] + noise * rng.normal(size=(2, draws) + truth[n].shape))
         for n, d in dims.items()},
        coords={"chain": [0, 1], "draw": np.arange(draws), "judge": JUDGES,
                "group": sorted(set(map(str, data.group.values))),
                "property": data.property.values})
    spec = SimpleNamespace(name="hierarchical", levels={"mu": 1, "judge": 1, "group": 1,
                                                        "cell": 1, "bias": 1})
    return SimpleNamespace(data=data, spec=spec, diagnostics=dict(DIAG),
                           posterior=xr.DataTree.from_dict({"posterior": post}))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    fit = fake_fit()
    out = tmp_path_factory.mktemp("rep") / "report"
    path = write_report(fit, out, dpi=40)
    return fit, out, path, path.read_text()


def test_report_is_complete(report):
    fit, out, path, text = report
    assert path == out / "report.html"
    images = re.findall(r'<img src="([^"]+)"', text)
    assert {"preferences.png", "similarity.png", "clusters.png", "calibration.png",
            "agreement.png", "size_similarity.png"} <= set(images)
    for name in images + re.findall(r'<a href="([^"]+)"', text):
        assert (out / name).is_file(), name
        assert "/" not in name  # self-contained: everything beside the report
    import pandas as pd
    assert list(pd.read_csv(out / "effects.csv").columns) == EFFECT_COLUMNS
    sim = pd.read_csv(out / "similarity.csv")
    assert list(sim.columns) == SIMILARITY_COLUMNS and len(sim) == 10
    # the report's similarity is the default kind (agreement: a probability), and the
    # paper's correlation is written beside it with its of_means, the paper's number
    assert sim[["mean", "lower", "upper", "of_means"]].stack().between(0, 1).all()
    paper = pd.read_csv(out / "similarity_paper.csv")
    assert list(paper.columns) == SIMILARITY_COLUMNS and len(paper) == 10
    assert not np.allclose(paper["mean"], sim["mean"])
    assert "Similarity here is predicted agreement" in text
    assert "reported in similarity_paper.csv" in text
    clusters = pd.read_csv(out / "clusters.csv")
    assert sorted(clusters.judge) == sorted(JUDGES)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".report")]


def test_findings_are_computed(report):
    fit, out, path, text = report
    planted = str(fit.data.property.values[2])
    sentence = re.search(r"<b>Human</b> rewards most: <i>([^<]+)</i> \(([\d.]+)%", text)
    assert sentence and sentence.group(1) == planted
    # 100*sigmoid(4) = 98.2%, recovered within the noise
    assert float(sentence.group(2)) == pytest.approx(98.2, abs=0.5)
    assert "<b>GPT-4-Turbo</b> differs credibly from <b>Human</b>" in text
    assert "The judges fall into" in text and "posterior draws" in text
    assert "The chains agree: the largest R-hat is 1.004" in text
    assert "These data are SIMULATED" in text
    assert "hf:GAIR/preference-dissection" in text


def test_model_formula_has_the_pair_term_when_the_spec_does(report):
    """The report states the fitted model: u[i] in the logit only where the pair level is
    on (the default spec), not for the hierarchical spec of the fixture."""
    from bayesdissect.report.html import _data_section

    fit, _, _, text = report
    assert "bias[j] + &Sigma;" in text and "u[i]" not in text
    levels = {**fit.spec.levels, "pair": 1}
    with_pair = SimpleNamespace(**{**vars(fit), "spec": SimpleNamespace(
        name="hierarchical-pair", levels=levels)})
    section = _data_section(with_pair, SimpleNamespace(prob=0.9))
    assert "bias[j] + u[i] + &Sigma;" in section and "sigma_pair" in section


def test_real_data_has_no_banner(tmp_path):
    path = write_report(fake_fit(simulated=0, draws=20), tmp_path / "r", checks=False, dpi=40)
    text = path.read_text()
    assert "SIMULATED" not in text and "calibration.png" not in text
    assert "<b>Human</b> rewards most" in text


def test_failed_report_keeps_the_earlier_one(tmp_path, monkeypatch):
    fit = fake_fit(draws=20)
    out = tmp_path / "r"
    write_report(fit, out, checks=False, dpi=40)
    before = (out / "report.html").read_text()

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "plot_similarity", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(fit, out, judges=["yi-6b"], checks=False, dpi=40)
    assert (out / "report.html").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temp folder left


def test_refuses_foreign_folder_and_unknown_judge(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BayesDissectError, match="not an earlier report folder"):
        write_report(fake_fit(draws=10), tmp_path, checks=False, dpi=40)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(BayesDissectError, match="unknown judge 'nobody'"):
        write_report(fake_fit(draws=10), tmp_path / "r", judges=["human", "nobody"])


def test_diagnostics_in_words():
    ok, text = diagnostics_sentences(DIAG)
    assert ok and any("no divergent" in s for s in text)
    ok, text = diagnostics_sentences({**DIAG, "max_rhat": 1.07, "divergences": 3,
                                      "worst_rhat": [["mu[clear]", 1.07]]})
    joined = " ".join(text)
    assert not ok and "1.070" in joined and "3 divergent" in joined and "mu[clear]" in joined


def test_cli_report_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code = main(["report", str(tmp_path / "missing.nc"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "not an earlier report folder" in err


def test_paper_and_pooled_specs(tmp_path):
    """The paper spec (w_cell only) gets the full report; a pooled fit (mu only) says it
    has no judge differences instead of drawing empty figures."""
    fit = fake_fit(draws=20)
    post = fit.posterior["posterior"].to_dataset()
    w = (post.mu + post.judge_offset + post.group_offset + post.cell_offset)
    fit.posterior = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {"w_cell": w.transpose("chain", "draw", "judge", "group", "property")})})
    text = write_report(fit, tmp_path / "paper", checks=False, dpi=40).read_text()
    assert 'src="similarity.png"' in text and "<b>Human</b> rewards most" in text
    fit.posterior = xr.DataTree.from_dict({"posterior": post[["mu"]]})
    fit.spec.name = "pooled"
    text = write_report(fit, tmp_path / "pooled", checks=False, dpi=40).read_text()
    assert "The pooled model has no judge-level terms" in text
    assert "<img" not in text and 'href="effects.csv"' in text


def test_cli_demo_bad_judge_is_one_line(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "d"), "--judges", "human,nobody", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "nobody" in err and not (tmp_path / "d").exists()
