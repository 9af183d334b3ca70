"""Simulation regimes with known truth (issue 14): prior vs sparse weights, pair effects,
true similarities written beside the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bayesdissect import load
from bayesdissect.data.simulate import (
    DEMO_SCALES,
    DEMO_SEED,
    DEMO_TITLE,
    PAPER_WEIGHT_SHAPE,
    SparseShape,
    load_truth,
    simulate,
    size_clusters,
    true_similarity,
    truth_path_for,
    weight_shape,
)
from bayesdissect.errors import BayesDissectError

# Acceptance bands around PAPER_WEIGHT_SHAPE for one draw of the paper-sized weight array
# (33 judges x 11 groups x 29 properties). Each band contains the 5-95% range of the sparse
# regime's defaults over 40 seeds (shares 0.22-0.27 / 0.44-0.48, sd across judges
# 0.064-0.100, across groups 0.082-0.125, max |w| 1.1-3.4, mean |w| 0.12-0.18) and excludes
# the prior regime (shares below 0.05 under 0.12 at both the model's and the demo's scales).
BANDS = {"share_below_0.02": (0.18, 0.30), "share_below_0.05": (0.38, 0.54),
         "sd_across_judges": (0.055, 0.11), "sd_across_groups": (0.07, 0.14),
         "max_abs": (0.8, 4.0), "mean_abs": (0.09, 0.22)}
# One judge from each size cluster of the catalogue, two from the small and large ones.
MIXED = ["yi-6b", "llama-2-7b", "qwen-14b", "llama-2-13b", "yi-34b", "qwen-72b",
         "gpt-4-1106-preview", "human"]


def _misses(w: xr.DataArray) -> list[str]:
    shape = weight_shape(w)
    return [k for k, (lo, hi) in BANDS.items() if not lo <= shape[k] <= hi]


def test_bands_bracket_the_paper_figures() -> None:
    for key, (lo, hi) in BANDS.items():
        assert lo < PAPER_WEIGHT_SHAPE[key] < hi, key


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_weights_have_the_papers_shape(seed: int) -> None:
    truth = simulate(n_pairs=60, seed=seed, regime="sparse").truth
    assert truth.sizes["judge"] == 33 and truth.sizes["group"] == 11
    assert _misses(truth["w"]) == []


def test_prior_regime_fails_the_shape() -> None:
    default = simulate(n_pairs=60, seed=0).truth["w"]
    demo_scaled = simulate(n_pairs=60, seed=0, **DEMO_SCALES).truth["w"]
    for w in (default, demo_scaled):
        missed = _misses(w)
        assert {"share_below_0.02", "share_below_0.05"} <= set(missed), missed


def test_default_call_still_makes_the_bundled_demo() -> None:
    sim = simulate(seed=DEMO_SEED, title=DEMO_TITLE, **DEMO_SCALES)
    data, truth = load("demo"), load_truth("demo")
    np.testing.assert_array_equal(sim.data["x"].values, data["x"].values)
    np.testing.assert_array_equal(sim.data["y"].values, data["y"].values)
    for name in truth.data_vars:   # every variable, the similarities computed on load too
        xr.testing.assert_equal(sim.truth[name], truth[name])
    assert "pair_effect" not in sim.truth and sim.truth.attrs["regime"] == "prior"
    assert sim.truth.attrs["pair_sd"] == 0.0


def test_size_clusters() -> None:
    assert size_clusters(["yi-6b", "qwen-14b", "qwen-72b", "gpt-3.5-turbo-1106", "human",
                          "my-judge"]) == ["open <10B", "open 10-30B", "open >=30B",
                                           "proprietary", "human", "my-judge (size unknown)"]


def test_sparse_truth_levels_add_up_and_clusters_share_a_component() -> None:
    t = simulate(n_pairs=60, judges=MIXED, groups=3, seed=4, regime="sparse").truth
    w = t["mu"] + t["judge_offset"] + t["group_offset"] + t["cell_offset"]
    np.testing.assert_allclose(w.transpose(*t["w"].dims).values, t["w"].values, atol=1e-12)
    assert t["judge_cluster"].values.tolist() == size_clusters(MIXED)
    own = t["judge_offset"] - t["cluster_offset"].sel(cluster=t["judge_cluster"])
    assert own.dims == ("judge", "property") and float(np.abs(own).max()) > 0
    slab = t["slab"].values.astype(bool)
    assert slab.sum() == round(0.6 * 29)
    assert np.abs(t["mu"].values[~slab]).max() < np.abs(t["mu"].values[slab]).max()
    assert t.attrs["regime"] == "sparse" and t.attrs["sparse_df"] == SparseShape().df
    assert "s_judge" not in t.attrs     # the prior regime's scales played no part
    off = simulate(n_pairs=60, judges=MIXED, groups=3, seed=4, regime="sparse",
                   levels=("group",)).truth
    for name in ("judge_offset", "cluster_offset", "cell_offset", "bias"):
        assert not off[name].any(), name
    assert off["group_offset"].any()


def test_judges_of_a_size_resemble_each_other() -> None:
    t = simulate(n_pairs=60, seed=0, regime="sparse").truth
    c = t["judge_cluster"].values
    iu = np.triu_indices(len(c), 1)
    same = (c[:, None] == c[None, :])[iu]
    for name, margin in (("similarity", 0.05), ("similarity_deviation", 0.2)):
        s = t[name].values[iu]
        assert s[same].mean() - s[~same].mean() > margin, name


def _pearson_by_group(w: np.ndarray) -> np.ndarray:
    """Reference: per-group Pearson correlation (np.corrcoef), averaged over groups."""
    return np.mean([np.corrcoef(w[:, g, :]) for g in range(w.shape[1])], axis=0)


@pytest.mark.parametrize("regime", ["prior", "sparse"])
def test_true_similarities_are_the_papers_definition(regime: str) -> None:
    t = simulate(n_pairs=60, judges=5, groups=3, seed=5, regime=regime).truth
    assert t["similarity"].dims == ("judge", "judge2")
    np.testing.assert_allclose(t["similarity"].values, _pearson_by_group(t["w"].values),
                               atol=1e-5)
    dev = (t["judge_offset"] + t["cell_offset"]).transpose("judge", "group", "property")
    np.testing.assert_allclose(t["similarity_deviation"].values,
                               _pearson_by_group(dev.values), atol=1e-5)


def test_given_weights_get_similarities_too() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2, 29))
    t = simulate(n_pairs=40, judges=3, groups=2, seed=0, weights=w).truth
    np.testing.assert_allclose(t["similarity"].values, _pearson_by_group(w), atol=1e-5)
    assert t.attrs["regime"] == "given"


def test_pair_effects_shared_by_all_judges() -> None:
    kw = {"n_pairs": 400, "judges": 6, "groups": 2, "seed": 3, "drop_rate": 0.0,
          "regime": "sparse"}
    a, b = simulate(pair_sd=1.0, **kw), simulate(**kw)
    assert "pair_effect" not in b.truth and b.truth.attrs["pair_sd"] == 0.0
    u = a.truth["pair_effect"]
    assert u.dims == ("pair",) and a.truth.attrs["pair_sd"] == 1.0
    np.testing.assert_array_equal(u["pair"].values, a.data["pair"].values)
    # its own stream: features and weights are those of the same seed without it
    np.testing.assert_array_equal(a.data["x"].values, b.data["x"].values)
    xr.testing.assert_equal(a.truth["w"], b.truth["w"])
    assert abs(float(u.std()) - 1.0) < 4 / np.sqrt(2 * 400)   # sd of a sample sd
    # shared by every judge: the share of judges choosing response 1 follows u[i]
    share_a = a.data["y"].values.mean(1)
    share_b = b.data["y"].values.mean(1)
    assert np.corrcoef(u.values, share_a)[0, 1] > 0.4
    assert abs(np.corrcoef(u.values, share_b)[0, 1]) < 4 / np.sqrt(400)


def test_labels_follow_weights_and_pair_effects() -> None:
    sim = simulate(n_pairs=3000, judges=3, groups=2, seed=12, regime="sparse", pair_sd=1.0)
    d, t = sim.data, sim.truth
    g = np.searchsorted(t["group"].values, d["group"].values)
    u = t["pair_effect"].sel(pair=d["pair"]).values
    logits = t["bias"].values[None, :] + u[:, None] + np.einsum(
        "ik,jik->ij", d["x"].values, t["w"].values[:, g, :])
    p = 1 / (1 + np.exp(-logits))
    y = d["y"].values
    for lo, hi in ((0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 1.0)):
        m = (p >= lo) & (p < hi)
        assert m.sum() > 200, (lo, hi)
        se = np.sqrt((p[m] * (1 - p[m])).sum()) / m.sum()
        assert abs(y[m].mean() - p[m].mean()) < 4 * se, (lo, hi)


def test_truth_file_round_trip(tmp_path: Path) -> None:
    sim = simulate(tmp_path / "s.parquet", n_pairs=80, judges=4, groups=2, seed=6,
                   regime="sparse", pair_sd=0.5)
    truth = load_truth(sim.path)
    assert truth.identical(sim.truth)
    for name in ("mu", "judge_offset", "group_offset", "cell_offset", "cluster_offset",
                 "w", "bias", "pair_effect", "similarity", "similarity_deviation"):
        assert name in truth, name
    assert truth.attrs["regime"] == "sparse" and truth.attrs["pair_sd"] == 0.5
    assert set(load(sim.path)["pair"].values) <= set(truth["pair"].values)


def test_load_truth_adds_similarities_to_older_files(tmp_path: Path) -> None:
    sim = simulate(tmp_path / "old.parquet", n_pairs=40, judges=3, groups=2, seed=1)
    assert sim.truth_path is not None
    old = sim.truth.drop_vars(["similarity", "similarity_deviation", "judge2"])
    old.to_netcdf(sim.truth_path)
    again = load_truth(sim.path)
    xr.testing.assert_allclose(again["similarity"], true_similarity(old)["similarity"])
    xr.testing.assert_allclose(again["similarity"], sim.truth["similarity"])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"regime": "dense"}, "regime='dense': unknown; expected one of prior, sparse"),
    ({"regime": "sparse", "weights": np.zeros(29)}, "pass weights only with the prior"),
    ({"pair_sd": -1.0}, "pair_sd=-1.0: expected a finite sd >= 0"),
    ({"pair_sd": float("nan")}, "pair_sd=nan"),
    ({"pair_sd": "big"}, "pair_sd=nan"),
    ({"regime": "sparse", "sparse": SparseShape(df=2.0)}, "sparse.df=2.0"),
    ({"regime": "sparse", "sparse": SparseShape(slab_share=1.5)}, "sparse.slab_share=1.5"),
    ({"regime": "sparse", "sparse": SparseShape(cell=-0.1)}, "sparse.cell=-0.1"),
    ({"seed": -1}, "seed=-1: expected a whole number >= 0"),
])
def test_bad_regime_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(BayesDissectError, match=match.replace("(", r"\(").replace(")", r"\)")):
        simulate(n_pairs=10, judges=2, groups=1, **kwargs)


def test_weight_shape_needs_judges_and_groups() -> None:
    with pytest.raises(BayesDissectError, match="at least 2 judges and 2 groups"):
        weight_shape(np.zeros((1, 3, 29)))


def test_cli_regime_and_pair_sd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bayesdissect.cli.main import main

    out = tmp_path / "r.jsonl"
    rc = main(["simulate", "--out", str(out), "--regime", "sparse", "--pair-sd", "1.0",
               "--judges", "4", "--pairs", "60", "--groups", "2", "--seed", "3"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "sparse regime, pair effects sd 1" in printed
    truth = load_truth(out)
    assert truth.attrs["regime"] == "sparse" and truth.attrs["pair_sd"] == 1.0
    api = simulate(n_pairs=60, judges=4, groups=2, seed=3, regime="sparse", pair_sd=1.0)
    xr.testing.assert_equal(truth["w"], api.truth["w"])
    xr.testing.assert_equal(truth["pair_effect"], api.truth["pair_effect"])
    np.testing.assert_array_equal(load(out)["y"].values, api.data["y"].values)


@pytest.mark.parametrize(("args", "needle"), [
    (["--regime", "dense"], "regime='dense'"),
    (["--pair-sd", "-1"], "pair_sd=-1.0"),
    (["--pair-sd", "abc"], "--pair-sd abc"),
    (["--pair-sd", "inf"], "pair_sd=inf"),
    (["--seed", "-2"], "seed=-2"),
])
def test_cli_bad_values_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        args: list[str], needle: str) -> None:
    from bayesdissect.cli.main import main

    out = tmp_path / "bad.parquet"
    assert main(["simulate", "--out", str(out), "--pairs", "20", "--judges", "2", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not out.exists() and not truth_path_for(out).exists()
