"""Figures: each returns a Figure built from plain tables, saves as PNG without a display,
and draws what the table says (panels, order, omissions), or fails with one clear line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

from bayesdissect.data.catalogue import PROPERTY_NAMES
from bayesdissect.errors import BayesDissectError
from bayesdissect.queries.effects import EFFECT_COLUMNS
from bayesdissect.queries.similarity import SIMILARITY_COLUMNS
from bayesdissect.report import figures as plots

JUDGES = ["yi-6b", "llama-2-70b-chat", "gpt-4-1106-preview", "human", "my-judge"]
GROUPS = ["Advice", "Code", "Others"]


def _effects(seed: int = 0) -> pd.DataFrame:
    """An effects table in the contract's columns: judge and cell levels, 29 properties."""
    rng = np.random.default_rng(seed)
    rows = []
    for j in JUDGES:
        base = rng.normal(0, 0.5, len(PROPERTY_NAMES))
        for level, group, sd in [("judge", "", 0.1)] + [("cell", g, 0.2) for g in GROUPS]:
            w = base + (rng.normal(0, 0.2, base.size) if group else 0)
            for p, m in zip(PROPERTY_NAMES, w, strict=True):
                rows.append({"level": level, "judge": j, "group": group, "property": p,
                             "mean": m, "sd": sd, "lower": m - 1.645 * sd,
                             "upper": m + 1.645 * sd, "prob_positive": 0.5})
    df = pd.DataFrame(rows)
    for a in ("mean", "lower", "upper"):
        df[f"pref_{a}"] = 100 / (1 + np.exp(-df[a]))
    return df[EFFECT_COLUMNS]


def _similarity(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ia, ib = np.triu_indices(len(JUDGES), 1)
    mean = rng.uniform(0.2, 0.9, ia.size)
    half = rng.uniform(0.02, 0.1, ia.size)
    return pd.DataFrame({"judge_a": np.array(JUDGES)[ia], "judge_b": np.array(JUDGES)[ib],
                         "mean": mean, "lower": mean - half, "upper": mean + half,
                         "of_means": mean + 0.01})[SIMILARITY_COLUMNS]


def _saves(fig: Figure, tmp_path, name: str) -> None:
    assert isinstance(fig, Figure)
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=40)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_preferences_panels_and_dots(tmp_path):
    eff = _effects()
    fig = plots.plot_preferences(eff, groups="all", prob=0.9)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["Averaged over groups", *GROUPS]
    # default judges: one filled or open dot per property and judge in every panel
    avg = visible[0]
    n_points = sum(len(c.get_offsets()) for c in avg.collections
                   if hasattr(c, "get_offsets") and c.get_offsets().shape[1] == 2
                   and type(c).__name__ == "PathCollection")
    assert n_points == 2 * len(PROPERTY_NAMES)
    assert [t.get_text() for t in avg.get_yticklabels()][0] == PROPERTY_NAMES[0]
    assert any(line.get_xdata()[0] == 50 for line in avg.get_lines())
    _saves(fig, tmp_path, "pref")


def test_preferences_counts_credible_intervals():
    eff = _effects()
    rows = eff[(eff.level == "judge") & (eff.judge == "human")]
    fig = plots.plot_preferences(eff, judges=["human"])
    ax = fig.axes[0]
    filled, hollow = [c for c in ax.collections if type(c).__name__ == "PathCollection"]
    n_cred = int(((rows.pref_lower > 50) | (rows.pref_upper < 50)).sum())
    assert len(filled.get_offsets()) == n_cred
    assert len(hollow.get_offsets()) == len(rows) - n_cred


def test_preferences_bad_input():
    eff = _effects()
    with pytest.raises(BayesDissectError, match="not-a-judge"):
        plots.plot_preferences(eff, judges=["human", "not-a-judge"])
    with pytest.raises(BayesDissectError, match="Narnia"):
        plots.plot_preferences(eff, groups=["Narnia"])
    with pytest.raises(BayesDissectError, match="pref_mean"):
        plots.plot_preferences(eff.drop(columns="pref_mean"))


def test_forest_judge_and_property(tmp_path):
    eff = _effects()
    fig = plots.plot_forest(eff, judge="human")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    rows = eff[(eff.level == "judge") & (eff.judge == "human")]
    # sorted by effect: the bottom label is the smallest pref_mean
    assert labels[0] == rows.loc[rows.pref_mean.idxmin(), "property"]
    assert sorted(labels) == sorted(PROPERTY_NAMES)
    _saves(fig, tmp_path, "forest_judge")
    fig = plots.plot_forest(eff, property="clear", scale="weight")
    assert len(fig.axes[0].get_yticklabels()) == len(JUDGES)
    assert "Human" in [t.get_text() for t in fig.axes[0].get_yticklabels()]
    _saves(fig, tmp_path, "forest_property")
    with pytest.raises(BayesDissectError, match="exactly one"):
        plots.plot_forest(eff)
    with pytest.raises(BayesDissectError, match="no judge-level rows"):
        plots.plot_forest(eff, judge="nobody")


def test_pair_matrix_and_heatmap(tmp_path):
    sim = _similarity()
    mat = plots.pair_matrix(sim)
    assert list(mat.index) == JUDGES
    assert np.allclose(mat.values, mat.values.T) and np.allclose(np.diag(mat.values), 1)
    row = sim.iloc[3]
    assert mat.loc[row.judge_b, row.judge_a] == pytest.approx(row["mean"])
    order = JUDGES[::-1]
    fig = plots.plot_similarity(sim, order=order, prob=0.9)
    heat, width = [ax for ax in fig.axes if ax.images]
    assert [t.get_text() for t in heat.get_yticklabels()] == [plots.display_name(j)
                                                             for j in order]
    shown = width.images[0].get_array()
    i, j = order.index(row.judge_a), order.index(row.judge_b)
    assert shown[i, j] == pytest.approx(row.upper - row.lower)
    _saves(fig, tmp_path, "similarity")
    # default order: clustering puts the most similar pair next to each other
    best = sim.loc[sim["mean"].idxmax()]
    fig = plots.plot_similarity(sim)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    pos = sorted(labels.index(plots.display_name(j)) for j in (best.judge_a, best.judge_b))
    assert pos[1] - pos[0] == 1
    # an agreement table: a blank diagonal (a judge's agreement with itself is not 1) and
    # colours spanning the band its values lie in, not 0.5-1
    agr = sim.assign(**{c: 0.56 + 0.1 * (sim[c] - sim[c].min()) / np.ptp(sim["mean"])
                        for c in ("mean", "lower", "upper")})
    agr.attrs["kind"] = "agreement"
    heat = [ax for ax in plots.plot_similarity(agr).axes if ax.images][0]
    lo, hi = heat.images[0].get_clim()
    assert 0.5 <= lo <= agr["lower"].min() and agr["upper"].max() <= hi <= 0.7
    assert np.isnan(np.diag(heat.images[0].get_array().filled(np.nan))).all()
    assert "agreement" in heat.get_title()


def test_dendrogram_with_coclustering(tmp_path):
    sim = _similarity()
    mat = plots.pair_matrix(sim)
    link = linkage(squareform(1 - mat.values, checks=False), "average")
    co = xr.DataArray(np.eye(len(JUDGES)) * 0.5 + 0.5, dims=("judge", "judge2"),
                      coords={"judge": JUDGES, "judge2": JUDGES})
    fig = plots.plot_dendrogram(link, JUDGES, co, k=2)
    assert len([ax for ax in fig.axes if ax.images]) == 1
    diag = fig.axes[1].images[0].get_array()
    assert np.allclose(np.diag(diag), 1.0) and np.allclose(diag.sum(), 0.5 * 25 + 0.5 * 5)
    _saves(fig, tmp_path, "dendrogram")
    long = sim.assign(prob=0.3)[["judge_a", "judge_b", "prob"]]
    fig = plots.plot_dendrogram(link, JUDGES, long)
    assert np.nanmax(fig.axes[1].images[0].get_array()[~np.eye(5, dtype=bool)]) == 0.3
    with pytest.raises(BayesDissectError, match="does not fit"):
        plots.plot_dendrogram(link[:-1], JUDGES)


def test_predictive_check_plots(tmp_path):
    p = np.linspace(0.05, 0.95, 10)
    cal = pd.DataFrame({"predicted": p, "observed": p + 0.01, "n": np.arange(10) + 5})
    _saves(plots.plot_calibration(cal), tmp_path, "calibration")
    sim = _similarity()
    agree = pd.DataFrame({"judge_a": sim.judge_a, "judge_b": sim.judge_b,
                          "observed": sim["mean"], "replicated": sim["mean"],
                          "rep_lower": sim["mean"] - 0.01, "rep_upper": sim["mean"] + 0.01})
    agree.loc[0, "observed"] = agree.loc[0, "rep_upper"] + 0.05  # one misfit pair
    fig = plots.plot_agreement(agree, n_labels=1)
    assert "1 of 10 pairs outside" in fig.axes[0].get_title()
    names = [t.get_text() for t in fig.axes[0].texts]
    a, b = agree.loc[0, ["judge_a", "judge_b"]]
    assert names == [f"{plots.display_name(a)} / {plots.display_name(b)}"]
    _saves(fig, tmp_path, "agreement")
    with pytest.raises(BayesDissectError, match="predicted"):
        plots.plot_calibration(pd.DataFrame({"x": [1]}))


def test_size_similarity(tmp_path):
    sim = _similarity()
    rows = plots.similarity_to(sim, "human")
    assert sorted(rows.judge) == sorted(j for j in JUDGES if j != "human")
    fig = plots.plot_size_similarity(sim)
    ax = fig.axes[0]
    assert "1 judge(s) of unknown size" in ax.get_title()  # my-judge has no size
    assert ax.get_xscale() == "log"
    n_points = sum(len(c.get_offsets()) for c in ax.collections
                   if type(c).__name__ == "PathCollection")
    assert n_points == 3
    _saves(fig, tmp_path, "size")
    fig = plots.plot_size_similarity(sim, sizes={"my-judge": 3.0})
    assert "unknown" not in fig.axes[0].get_title()
    with pytest.raises(BayesDissectError, match="nobody"):
        plots.plot_size_similarity(sim, reference="nobody")
