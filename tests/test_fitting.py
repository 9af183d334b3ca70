"""Fitting: recovery of known truth with calibrated intervals, the paper spec against an
independent single-cell fit, levels switched off / shrunk, save/load, seeds, subsets.

Small data and short chains; nutpie's JAX back end (fast to compile for small models).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from conftest import make_dataset

import bayesdissect as bd
from bayesdissect.errors import BayesDissectError
from bayesdissect.specs import load_spec

FAST = {"chains": 2, "backend": "jax", "progressbar": False, "warn": False}


def _cell_w(post: xr.Dataset) -> xr.DataArray:
    """w[chain, draw, judge, group, property] = sum of the terms present."""
    terms = [post[t] for t in ("mu", "judge_offset", "group_offset", "cell_offset", "w_cell")
             if t in post]
    total = sum(terms)
    return total.transpose("chain", "draw", "judge", "group", "property")


@pytest.fixture(scope="module")
def recovery():
    """The default spec on data drawn from the model: 4 judges x 3 groups x 3 properties,
    600 pairs, so each (judge, group) cell has ~200 labels."""
    data, truth = make_dataset(4, 3, 600, 3, seed=21, sigma_judge=0.5, sigma_group=0.3,
                               sigma_cell=0.2, bias_scale=0.3)
    fit = bd.fit(data, "hierarchical", draws=250, tune=250, seed=7, **FAST)
    return data, truth, fit


def test_posterior_recovers_truth_and_90_intervals_cover(recovery) -> None:
    data, truth, fit = recovery
    w = _cell_w(fit.draws)
    mean = w.mean(("chain", "draw")).values
    sd = w.std(("chain", "draw")).values
    lo = w.quantile(0.05, ("chain", "draw")).values
    hi = w.quantile(0.95, ("chain", "draw")).values
    t = truth["w"]
    # 36 cell weights; calibrated 90% intervals cover ~32.4 of them. Binomial(36, 0.9) has
    # sd 1.8, so 3 sd below is 27 (75%); cells share parameters (not independent): 0.72.
    coverage = float(((lo <= t) & (t <= hi)).mean())
    assert coverage >= 0.72, coverage
    z = (mean - t) / sd
    assert np.mean(np.abs(z)) < 1.2  # E|z| = 0.80 for a calibrated posterior
    assert np.corrcoef(mean.ravel(), t.ravel())[0, 1] > 0.9
    b = fit.draws["bias"]
    zb = (b.mean(("chain", "draw")).values - truth["bias"]) / b.std(("chain", "draw")).values
    assert np.all(np.abs(zb) < 3.5)
    d = fit.diagnostics
    assert d["max_rhat"] < 1.05 and d["divergences"] <= 5, d["warnings"]
    assert {"max_rhat", "min_ess_bulk", "min_ess_tail", "divergences", "sampling_seconds",
            "total_seconds", "worst_rhat", "max_treedepth_hits", "step_size"} <= set(d)


def test_save_load_round_trip_is_exact(recovery, tmp_path) -> None:
    _, _, fit = recovery
    path = fit.save(tmp_path / "fit.nc")
    back = bd.load_fit(path)
    xr.testing.assert_identical(back.draws, fit.draws)
    xr.testing.assert_identical(back.sample_stats, fit.sample_stats)
    xr.testing.assert_identical(back.data, fit.data)
    assert back.spec == fit.spec and back.diagnostics == fit.diagnostics
    assert back.settings == fit.settings
    assert "z_judge" not in back.draws and "w_free" not in back.draws
    with pytest.raises(BayesDissectError, match="not found"):
        bd.load_fit(tmp_path / "missing.nc")
    (tmp_path / "junk.nc").write_text("not a fit")
    with pytest.raises(BayesDissectError, match="junk.nc"):
        bd.load_fit(tmp_path / "junk.nc")


def test_levels_off_and_shrunk_priors_change_estimates_as_the_math_says(recovery) -> None:
    data, truth, full = recovery
    spec = load_spec("hierarchical")
    # Without the judge level, judge differences must be carried by the cell level, so its
    # scale grows from ~sigma_cell (0.2) towards sqrt(0.2^2 + 0.5^2) = 0.54.
    no_judge = bd.fit(data, spec.replace_level("judge"), draws=150, tune=250, seed=8, **FAST)
    assert "judge_offset" not in no_judge.draws
    s_full = float(full.draws["sigma_cell"].mean())
    s_nojudge = float(no_judge.draws["sigma_cell"].mean())
    assert s_nojudge > s_full + 0.15, (s_full, s_nojudge)
    # A tiny sigma_cell prior scale forces the cell offsets to ~0 (hyper-prior connected):
    # then a judge's weights are the same in every group up to the group offset.
    tight = bd.fit(data, spec.replace_level("cell", sigma_scale=1e-3), draws=150, tune=250,
                   seed=9, **FAST)
    assert float(np.abs(tight.draws["cell_offset"]).max()) < 0.02
    assert float(np.abs(full.draws["cell_offset"]).mean()) > 0.05
    # and the judge offsets still recover the truth's judge differences
    j_mean = tight.draws["judge_offset"].mean(("chain", "draw")).values
    j_true = truth["judge_offset"] - truth["judge_offset"].mean(0)
    assert np.corrcoef((j_mean - j_mean.mean(0)).ravel(), j_true.ravel())[0, 1] > 0.8


def test_paper_spec_matches_an_independent_single_cell_fit() -> None:
    """The joint paper fit factorises over cells: one cell's marginal must equal a separate
    regression on that cell's pairs. Means agree within 4 Monte Carlo standard errors."""
    import arviz_stats
    import nutpie
    import pymc as pm

    data, _ = make_dataset(2, 2, 240, 3, seed=31)
    fit = bd.fit(data, "paper", draws=500, tune=300, seed=3, **FAST)
    judge, group = str(data.judge.values[1]), str(np.unique(data.group.values)[0])
    cell = data.isel(pair=np.asarray(data.group.values == group))
    x = cell.x.values
    y = cell.y.sel(judge=judge).values.astype(int)
    with pm.Model() as single:  # the paper's one regression, written out by hand
        w = pm.Laplace("w", mu=0.0, b=0.1, shape=x.shape[1])
        pm.Bernoulli("y", logit_p=pm.math.dot(x, w), observed=y)
    ref = nutpie.sample(nutpie.compile_pymc_model(single, backend="jax",
                                                  gradient_backend="jax"),
                        draws=1000, tune=300, chains=2, seed=5, progress_bar=False)
    ref_w = ref["posterior"]["w"]
    ours = fit.draws["w_cell"].sel(judge=judge, group=group)
    ess_a = arviz_stats.ess(ours.to_dataset(name="w"))["w"].values
    ess_b = arviz_stats.ess(ref_w.to_dataset(name="w"))["w"].values
    m_a = ours.mean(("chain", "draw")).values
    m_b = ref_w.mean(("chain", "draw")).values
    se = np.sqrt(ours.var(("chain", "draw")).values / ess_a
                 + ref_w.var(("chain", "draw")).values / ess_b)
    assert np.all(np.abs(m_a - m_b) < 4 * se), (m_a, m_b, se)
    s_a, s_b = ours.std(("chain", "draw")).values, ref_w.std(("chain", "draw")).values
    assert np.allclose(s_a, s_b, rtol=0.2)


def test_same_seed_same_draws_and_subsets(tmp_path) -> None:
    data, _ = make_dataset(4, 3, 200, 3, seed=41)
    kw = {"draws": 40, "tune": 60, **FAST}
    a = bd.fit(data, "pooled", seed=123, **kw)
    b = bd.fit(data, "pooled", seed=123, **kw)
    c = bd.fit(data, "pooled", seed=124, **kw)
    xr.testing.assert_equal(a.draws, b.draws)  # values and coords (attrs hold a timestamp)
    assert not np.array_equal(a.draws["mu"].values, c.draws["mu"].values)
    judges = [str(j) for j in data.judge.values[:2]]
    groups = sorted(set(data.group.values))[:2]
    s = bd.fit(data, "pooled", seed=1, judges=",".join(judges), groups=groups, **kw)
    assert list(s.data.judge.values) == judges
    assert set(s.data.group.values) == set(groups)
    assert list(s.draws.judge.values) == judges
    case = bd.fit(data, "pooled", seed=1, subset="w_stances", **kw)
    n_case = int(data["case_w_stances"].sum())
    assert case.data.sizes["pair"] == n_case and set(case.data.group.values) == {"w_stances"}
    assert case.settings["subset"] == "w_stances"


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"judges": ["nobody"]}, "unknown judge"),
    ({"groups": "Nowhere"}, "unknown group"),
    ({"subset": "no_case"}, "unknown case"),
    ({"sampler": "emcee"}, "unknown sampler"),
    ({"sampler": "blackjax"}, "blackjax"),
    ({"model": "nosuch"}, "unknown model"),
    ({"chains": 0}, "chains"),
    ({"target_accept": 1.5}, "target-accept"),
])
def test_bad_fit_arguments_raise_one_line(kwargs: dict, needle: str) -> None:
    data, _ = make_dataset(2, 2, 30, 2, seed=1)
    if kwargs.get("sampler") == "blackjax":
        import importlib.util
        if importlib.util.find_spec("blackjax") is not None:
            pytest.skip("blackjax is installed here")
    with warnings.catch_warnings(), pytest.raises(BayesDissectError, match=needle) as err:
        bd.fit(data, **{"model": "pooled", **kwargs})
    assert "\n" not in str(err.value)


def test_jax_sampler_after_x64_was_switched_on() -> None:
    """A numpyro fit in a process where an earlier nutpie-JAX fit turned on JAX x64 (as
    happens in one Python session) must not die on mixed float32/float64 NUTS state."""
    import jax

    data, _ = make_dataset(2, 2, 60, 2, seed=5)
    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        f = bd.fit(data, "pooled", sampler="numpyro", chains=1, draws=20, tune=20, seed=1,
                   progressbar=False, warn=False, float32=True)
    finally:
        jax.config.update("jax_enable_x64", before)
    assert f.settings["float32"] is False
    assert np.isfinite(f.posterior["posterior"]["mu"].values).all()
