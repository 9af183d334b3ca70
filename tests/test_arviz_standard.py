"""A saved fit is a standard ArviZ 1.x DataTree (issue 11): its groups and dims, the data
rebuilt exactly from observed_data / constant_data, arviz_stats and arviz_plots run on a
freshly saved-and-loaded fit, format-1 files still load, and the sampler notes (tree depth,
E-BFMI) warn without failing the fit.

One small fit with missing labels (3 judges, 150 pairs, 2 chains x 150 draws).
"""

from __future__ import annotations

import json
import warnings

import matplotlib
import numpy as np
import pytest
import xarray as xr
from conftest import make_dataset

import bayesdissect as bd
from bayesdissect.errors import BayesDissectError
from bayesdissect.model.diagnostics import (
    ConvergenceWarning,
    SamplerWarning,
    compute_diagnostics,
    warn_if_unconverged,
)
from bayesdissect.model.fitted import FORMAT, FORMAT_1, Fit, as_posterior, load_fit

matplotlib.use("Agg")

SETTINGS = {"chains": 2, "draws": 150, "tune": 150, "seed": 4, "backend": "jax",
            "progressbar": False, "warn": False}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(the fit, the path it was saved to, the fit loaded back from there)."""
    data, _ = make_dataset(3, 2, 150, 3, seed=12, missing=0.15)
    fit = bd.fit(data, "hierarchical", log_likelihood=True, keep_warmup=True, **SETTINGS)
    bd.add_posterior_predictive(fit, seed=1)
    path = fit.save(tmp_path_factory.mktemp("arviz") / "fit.nc")
    return fit, path, load_fit(path)


def test_saved_fit_has_the_standard_groups_and_one_observation_dim(saved) -> None:
    fit, path, _ = saved
    with xr.open_datatree(path) as tree:
        tree = tree.load()
    assert set(tree.children) == {"posterior", "sample_stats", "warmup_posterior",
                                  "warmup_sample_stats", "observed_data", "constant_data",
                                  "log_likelihood", "posterior_predictive"}
    assert tree.attrs["format"] == FORMAT
    assert json.loads(tree.attrs["diagnostics"])["chains"] == 2
    n_obs = int(fit.data.y.notnull().sum())
    obs = tree["observed_data"].to_dataset()
    assert obs["y"].dims == ("obs",) and obs.sizes["obs"] == n_obs < fit.data.y.size
    assert set(np.unique(obs["y"].values)) <= {0, 1}
    assert {"pair", "judge"} <= set(obs["y"].coords)
    for group, dtype in (("log_likelihood", np.float32), ("posterior_predictive", np.int8)):
        y = tree[group]["y"]
        assert y.dims == ("chain", "draw", "obs") and y.dtype == dtype
        assert not y.isnull().any()
        np.testing.assert_array_equal(y["pair"].values, obs["pair"].values)
        np.testing.assert_array_equal(y["judge"].values, obs["judge"].values)
    const = tree["constant_data"].to_dataset()
    assert {"x", "group", "case_w_stances"} <= set(const.data_vars) and "y" not in const
    assert const.attrs["source"] == fit.data.attrs["source"]
    assert tree["posterior"].attrs["sample_dims"] == ["chain", "draw"]
    stats = tree["sample_stats"]
    assert {"diverging", "energy", "tree_depth", "reached_max_treedepth", "lp"} <= set(
        stats.data_vars)
    assert tree["warmup_posterior"].sizes["draw"] == SETTINGS["tune"]
    assert "z_judge" not in tree["warmup_posterior"]


def test_load_rebuilds_the_data_and_the_tree_exactly(saved) -> None:
    fit, _, back = saved
    xr.testing.assert_identical(back.data, fit.data)
    for group in fit.idata.children:
        xr.testing.assert_identical(back.idata[group].to_dataset(),
                                    fit.idata[group].to_dataset())
    assert back.spec == fit.spec and back.settings == fit.settings
    assert back.diagnostics == fit.diagnostics


def test_python_object_follows_arviz_habits(saved) -> None:
    fit, _, back = saved
    assert isinstance(back.idata, xr.DataTree) and isinstance(back.posterior, xr.Dataset)
    xr.testing.assert_identical(back.posterior, back.idata["posterior"].to_dataset())
    xr.testing.assert_identical(as_posterior(back), back.posterior)  # weights' accessor
    with pytest.warns(DeprecationWarning, match="Fit.posterior"):
        xr.testing.assert_identical(back.draws, back.posterior)
    # a Fit from a posterior Dataset; the data groups follow the data
    small = Fit(fit.data.isel(judge=[0, 1]), fit.spec,
                posterior=fit.posterior.isel(judge=[0, 1]))
    assert small.idata["observed_data"].sizes["obs"] == int(
        fit.data.y.isel(judge=[0, 1]).notnull().sum())
    assert bd.add_log_likelihood(small) is small
    xr.testing.assert_allclose(  # the same entries' values as the full fit's
        small.idata["log_likelihood"]["y"],
        fit.idata["log_likelihood"]["y"].where(
            fit.idata["log_likelihood"]["judge"].isin(small.data.judge.values), drop=True
        ).assign_coords(obs=np.arange(small.idata["observed_data"].sizes["obs"])))
    with pytest.raises(BayesDissectError, match="no posterior"):
        Fit(fit.data, fit.spec)


def test_arviz_stats_run_on_the_loaded_fit(saved) -> None:
    import arviz_stats as azs

    _, _, fit = saved
    table = azs.summary(fit.posterior)
    assert "mu[harmless]" in table.index and np.isfinite(table["r_hat"].astype(float)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz warns about high k on a short fit
        ref = azs.loo(fit.idata, pointwise=True, reff=1.0)  # our kernel's r_eff
    ours = bd.loo(fit)
    assert np.isfinite(ref.elpd)  # missing labels are not NaN-padded entries
    assert abs(ref.elpd - ours.elpd) < 1e-3 and abs(ref.p - ours.p) < 1e-3
    np.testing.assert_allclose(ours.elpd_i.values, ref.elpd_i.values, atol=1e-4)
    table = azs.compare({"arviz": ref, "bd.loo": ours}, round_to="none")
    assert set(table.index) == {"arviz", "bd.loo"}
    assert abs(float(table["elpd_diff"].min())) < 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(azs.compare({"a": fit.idata, "b": fit.idata})) == 2  # the tree itself
    # the README's promise: arviz_stats.loo on bd.add_log_likelihood(fit).idata
    plain = Fit(fit.data, fit.spec, posterior=fit.posterior)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = azs.loo(bd.add_log_likelihood(plain).idata, reff=1.0)
    assert again.elpd == pytest.approx(ref.elpd, abs=1e-6)


def test_arviz_plots_run_on_the_loaded_fit(saved) -> None:
    import arviz_plots as azp
    import matplotlib.pyplot as plt

    _, _, fit = saved
    try:
        azp.plot_forest(fit.idata, var_names=["mu", "sigma_judge"], backend="matplotlib")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "y looks binary": a fair note, not an error
            azp.plot_ppc_dist(fit.idata, backend="matplotlib")
            azp.plot_loo_pit(fit.idata, backend="matplotlib")
        azp.plot_khat(bd.loo(fit), backend="matplotlib")
        assert plt.get_fignums()
    finally:
        plt.close("all")


def _format_1_file(fit: Fit, path) -> None:  # noqa: ANN001
    """What the previous Fit.save wrote: a custom ``data`` group, nutpie's stat names,
    sample_dims as JSON text, a (pair, judge) NaN-padded log likelihood."""
    post = fit.posterior.copy()
    post.attrs = {"sample_dims": '["chain", "draw"]'}
    stats = fit.sample_stats.rename({"tree_depth": "depth",
                                     "reached_max_treedepth": "maxdepth_reached"})
    ll = fit.idata["log_likelihood"]["y"]
    obs = fit.idata["observed_data"]
    padded = xr.full_like(fit.data.y, np.nan).expand_dims(
        chain=post.chain, draw=post.draw).copy()
    pi = fit.data.get_index("pair").get_indexer(obs["pair"].values)
    ji = fit.data.get_index("judge").get_indexer(obs["judge"].values)
    padded.values[:, :, pi, ji] = ll.values
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats,
                                  "data": fit.data, "log_likelihood": xr.Dataset(
                                      {"y": padded.astype(np.float64)})})
    tree.attrs = {"format": FORMAT_1, "spec": fit.spec.to_json(),
                  "diagnostics": json.dumps(fit.diagnostics), "settings": "{}"}
    tree.to_netcdf(path)


def test_format_1_files_still_load(saved, tmp_path) -> None:
    fit, _, _ = saved
    _format_1_file(fit, tmp_path / "old.nc")
    old = load_fit(tmp_path / "old.nc")
    xr.testing.assert_identical(old.data, fit.data)
    xr.testing.assert_equal(old.posterior, fit.posterior)
    assert old.idata["posterior"].attrs["sample_dims"] == ["chain", "draw"]
    assert "reached_max_treedepth" in old.sample_stats
    xr.testing.assert_allclose(old.idata["log_likelihood"]["y"],
                               fit.idata["log_likelihood"]["y"])
    old.save(tmp_path / "new.nc")  # and it saves in today's format
    assert load_fit(tmp_path / "new.nc").idata["observed_data"].sizes["obs"] == int(
        fit.data.y.notnull().sum())


def test_other_files_fail_with_one_line(saved, tmp_path) -> None:
    fit, _, _ = saved
    xr.DataTree.from_dict({"posterior": fit.posterior}).to_netcdf(tmp_path / "plain.nc")
    with pytest.raises(BayesDissectError, match="not a bayesdissect fit") as err:
        load_fit(tmp_path / "plain.nc")
    assert "\n" not in str(err.value)
    broken = xr.DataTree.from_dict({"posterior": fit.posterior, "data": xr.Dataset()})
    broken.attrs = {"format": FORMAT_1, "spec": fit.spec.to_json(), "diagnostics": "{}"}
    broken.to_netcdf(tmp_path / "broken.nc")
    with pytest.raises(BayesDissectError, match="not a bayesdissect fit"):
        load_fit(tmp_path / "broken.nc")


def _stats(chains: int, draws: int, *, hits: int, sticky_energy: bool) -> xr.Dataset:
    rng = np.random.default_rng(0)
    if sticky_energy:  # a random walk: energy changes little between draws, E-BFMI ~ 0
        energy = np.cumsum(rng.normal(size=(chains, draws)), axis=1) * 5
    else:
        energy = rng.normal(size=(chains, draws))
    hit = np.zeros((chains, draws), bool)
    hit[0, :hits] = True
    return xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool)),
                       "energy": (("chain", "draw"), energy),
                       "maxdepth_reached": (("chain", "draw"), hit),  # nutpie's name
                       "depth": (("chain", "draw"), np.full((chains, draws), 10))})


def test_tree_depth_and_low_bfmi_warn_without_failing() -> None:
    rng = np.random.default_rng(1)
    post = xr.Dataset({"mu": (("chain", "draw", "property"), rng.normal(size=(4, 500, 2)))})
    good = compute_diagnostics(post, _stats(4, 500, hits=0, sticky_energy=False))
    assert good["sampler_warnings"] == [] and good["min_bfmi"] > 0.8
    assert good["max_treedepth_hits"] == 0 and len(good["bfmi"]) == 4
    bad = compute_diagnostics(post, _stats(4, 500, hits=7, sticky_energy=True))
    assert bad["max_treedepth_hits"] == 7 and bad["min_bfmi"] < 0.3
    assert bad["warnings"] == good["warnings"] == []  # notes, not convergence failures
    notes = bad["sampler_warnings"]
    assert len(notes) == 2 and "7 of 2000 draws" in notes[0] and "E-BFMI" in notes[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_unconverged(bad)
    assert [w.category for w in caught] == [SamplerWarning, SamplerWarning]
    assert not any(issubclass(w.category, ConvergenceWarning) for w in caught)
