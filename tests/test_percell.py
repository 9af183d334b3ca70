"""Cell-wise fits (issue 12): shapes, exact posterior means, folds, bad arguments.

The exact answer: with 2 properties a cell's posterior is a 2-d density, integrated here on
a fine grid; the sampler's posterior means must match within 4 Monte Carlo standard errors
(posterior sd / sqrt(bulk ESS)).
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from conftest import make_dataset  # noqa: E402

from bayesdissect.errors import BayesDissectError  # noqa: E402
from bayesdissect.model.percell import (  # noqa: E402
    adaptation_schedule,
    cell_design,
    fit_per_cell,
    fold_keep,
)

CHAINS, DRAWS, TUNE = 4, 400, 200


@pytest.fixture(scope="module")
def data() -> xr.Dataset:
    """2 judges x 2 scenarios (~100 pairs each) + the 5 cases, 2 properties, no bias."""
    d, _ = make_dataset(n_judges=2, n_groups=2, n_pairs=200, n_properties=2, seed=3,
                        mu_scale=0.5, bias_scale=0.0)
    return d


@pytest.fixture(scope="module")
def fit(data: xr.Dataset):  # noqa: ANN201
    return fit_per_cell(data, "paper", chains=CHAINS, draws=DRAWS, tune=TUNE, seed=1)


def grid_posterior(x: np.ndarray, sign: np.ndarray, logprior) -> tuple[np.ndarray, ...]:  # noqa: ANN001
    """Exact posterior mean and sd of a 2-weight logistic regression (labels given as signs
    +-1) on a grid of step 0.01 over [-2, 2]^2 (posterior sds here are >= 0.05)."""
    g = np.linspace(-2.0, 2.0, 401)
    w1, w2 = np.meshgrid(g, g, indexing="ij")
    lp = logprior(w1) + logprior(w2)
    for xi, si in zip(x, sign, strict=True):
        lp = lp - np.logaddexp(0.0, -si * (xi[0] * w1 + xi[1] * w2))
    p = np.exp(lp - lp.max())
    p /= p.sum()
    m = np.array([(p * w1).sum(), (p * w2).sum()])
    sd = np.sqrt(np.array([(p * w1 ** 2).sum(), (p * w2 ** 2).sum()]) - m ** 2)
    return m, sd


def laplace_01(w: np.ndarray) -> np.ndarray:
    return -np.abs(w) / 0.1


def check_exact(fit, data: xr.Dataset, groups: list[str], fold: int | None = None,  # noqa: ANN001
                folds: int = 1) -> None:
    post = fit.posterior["w_cell"]
    if fold is not None:
        post = post.isel(chain=np.flatnonzero(post["fold"].values == fold))
    cs = fit.idata["cell_stats"].to_dataset()
    ess = cs["ess_bulk"] if fold is None else cs["ess_bulk"].sel(fold=fold)
    design = cell_design(data, groups)
    for gi, g in enumerate(groups):
        for j, judge in enumerate(design.judges):
            lab = np.flatnonzero(design.sign[gi][:, j] != 0)
            if fold is not None:
                lab = lab[fold_keep(lab.size, folds)[fold]]
            exact, sd = grid_posterior(design.x[gi][lab], design.sign[gi][lab, j], laplace_01)
            got = post.sel(judge=judge, group=g).mean(("chain", "draw")).values
            tol = 4.0 * sd / np.sqrt(ess.sel(judge=judge, group=g).values)
            assert np.all(np.abs(got - exact) < tol), (judge, g, got, exact, tol)


def test_shapes_and_contents(fit, data: xr.Dataset) -> None:
    from bayesdissect.model.fitted import Fit

    assert isinstance(fit, Fit)
    groups = sorted(set(data["group"].values.astype(str))) + [
        "intent_unclear", "express_feeling", "w_constraints", "w_stances", "w_mistakes"]
    w = fit.posterior["w_cell"]
    assert w.dims == ("chain", "draw", "judge", "group", "property")
    assert w.shape == (CHAINS, DRAWS, 2, len(groups), 2)
    assert w.dtype == np.float32
    assert list(w["group"].values) == groups
    assert np.isfinite(w.values).all()
    ss = fit.sample_stats
    assert ss["diverging"].dims == ("chain", "draw", "judge", "group")
    assert ss["n_steps"].min() >= 1
    cs = fit.idata["cell_stats"].to_dataset()
    assert cs["rhat"].dims == ("judge", "group", "property")
    # cell means from every draw equal the draws' means (no thinning here)
    np.testing.assert_allclose(cs["w_mean"].values, w.mean(("chain", "draw")).values,
                               rtol=1e-4, atol=1e-6)
    # labelled pairs per cell: the scenario's pairs, or the case's
    n = cs["n_pairs"]
    for g in groups:
        keep = (data["group"].values == g) if g in data["group"].values else \
            data[f"case_{g}"].values.astype(bool)
        assert int(n.sel(judge=str(data.judge.values[0]), group=g)) == int(keep.sum())
    d = fit.diagnostics
    assert d["max_rhat"] < 1.02 and d["min_ess_bulk"] > 300 and d["divergences"] == 0
    assert d["n_cells"] == 2 * len(groups) and d["n_parameters"] == 2 * len(groups) * 2
    assert d["worst_rhat"][0][0].startswith("w_cell[")
    assert fit.settings["method"] == "per_cell"


def test_cell_means_match_exact_posterior(fit, data: xr.Dataset) -> None:
    check_exact(fit, data, [str(g) for g in fit.posterior["group"].values[:2]])


def test_direct_parameterization_matches_exact(data: xr.Dataset) -> None:
    f = fit_per_cell(data, "paper", chains=CHAINS, draws=DRAWS, tune=TUNE, seed=2,
                     groups="scenarios", parameterization="direct")
    check_exact(f, data, [str(g) for g in f.posterior["group"].values])


def test_folds_match_the_exact_posterior_of_each_fold(data: xr.Dataset) -> None:
    f = fit_per_cell(data, "paper", chains=CHAINS, draws=DRAWS, tune=TUNE, seed=3,
                     groups="scenarios", folds=3, thin=2)
    w = f.posterior["w_cell"]
    assert w.sizes["chain"] == 3 * CHAINS and w.sizes["draw"] == DRAWS // 2
    assert list(w["fold"].values) == [0] * CHAINS + [1] * CHAINS + [2] * CHAINS
    cs = f.idata["cell_stats"].to_dataset()
    assert cs["w_fold_mean"].dims == ("fold", "judge", "group", "property")
    np.testing.assert_allclose(cs["w_mean"].values, cs["w_fold_mean"].mean("fold").values,
                               rtol=1e-5)
    n_all = cell_design(data, "scenarios").n_pairs  # (J, G)
    np.testing.assert_array_equal(cs["n_pairs"].sel(fold=0).values, n_all - n_all // 3)
    for fold in range(3):
        check_exact(f, data, [str(g) for g in w["group"].values], fold=fold, folds=3)


def test_fold_keep_is_the_paper_scheme() -> None:
    n, k = 103, 10
    np.random.seed(0)
    idx = np.arange(n)
    np.random.shuffle(idx)
    keep = fold_keep(n, k)
    for i in range(k):
        start, size = int(i / k * n), int(n / k)
        expect = np.ones(n, dtype=bool)
        expect[idx[start:start + size]] = False
        np.testing.assert_array_equal(keep[i], expect)
    assert keep.sum(1).tolist() == [n - n // k] * k


def test_adaptation_schedule_matches_blackjax() -> None:
    import warnings

    from blackjax.adaptation.window_adaptation import build_schedule

    for tune in (500, 150, 60, 19, 0):
        slow, end = adaptation_schedule(tune)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = np.asarray(build_schedule(tune)).reshape(-1, 2) if tune else np.zeros((0, 2))
        np.testing.assert_array_equal(slow, ref[:, 0] == 1)
        np.testing.assert_array_equal(end, ref[:, 1] == 1)


def test_fit_saves_loads_and_answers_queries(fit, tmp_path) -> None:  # noqa: ANN001
    import bayesdissect as bd
    from bayesdissect.model.fitted import load_fit

    back = load_fit(fit.save(tmp_path / "cells.nc"))
    np.testing.assert_array_equal(back.posterior["w_cell"].values,
                                  fit.posterior["w_cell"].values)
    assert "cell_stats" in back.idata.children
    eff = bd.effects(back, level="cell")
    assert set(eff["group"]) == {str(g) for g in fit.posterior["group"].values}


@pytest.mark.parametrize("kwargs, match", [
    ({"spec": "hierarchical"}, "does not factorise"),
    ({"chains": 0}, "chains must be >= 1"),
    ({"draws": 10, "thin": 11}, "thin must be in 1..10"),
    ({"tune": -1}, "tune must be >= 0"),
    ({"folds": 500}, "needs at least 500 labelled pairs"),
    ({"groups": ["Nowhere"]}, "unknown group 'Nowhere'"),
    ({"groups": "everything"}, "unknown group 'everything'"),
    ({"parameterization": "radial"}, "parameterization must be one of"),
    ({"target_accept": 1.5}, "target_accept must be a number in"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"judges": ["nobody"]}, "unknown judge"),
])
def test_bad_arguments_raise_one_line(data: xr.Dataset, kwargs: dict, match: str) -> None:
    with pytest.raises(BayesDissectError, match=match) as err:
        fit_per_cell(data, **{"draws": 10, "tune": 10, **kwargs})
    assert "\n" not in str(err.value)
