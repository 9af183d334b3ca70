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
from bayesdissect.model.specs import load_spec

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
    w = _cell_w(fit.posterior)
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
    b = fit.posterior["bias"]
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
    xr.testing.assert_identical(back.posterior, fit.posterior)
    xr.testing.assert_identical(back.sample_stats, fit.sample_stats)
    xr.testing.assert_identical(back.data, fit.data)
    assert back.spec == fit.spec and back.diagnostics == fit.diagnostics
    assert back.settings == fit.settings
    assert "z_judge" not in back.posterior and "w_free" not in back.posterior
    # warm-up is dropped by default (fit(keep_warmup=True) keeps it: test_arviz_standard)
    assert not {"warmup_posterior", "warmup_sample_stats"} & set(back.idata.children)
    assert not fit.settings["keep_warmup"]
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
    assert "judge_offset" not in no_judge.posterior
    s_full = float(full.posterior["sigma_cell"].mean())
    s_nojudge = float(no_judge.posterior["sigma_cell"].mean())
    assert s_nojudge > s_full + 0.15, (s_full, s_nojudge)
    # A tiny sigma_cell prior scale forces the cell offsets to ~0 (hyper-prior connected):
    # then a judge's weights are the same in every group up to the group offset.
    tight = bd.fit(data, spec.replace_level("cell", sigma_scale=1e-3), draws=150, tune=250,
                   seed=9, **FAST)
    assert float(np.abs(tight.posterior["cell_offset"]).max()) < 0.02
    assert float(np.abs(full.posterior["cell_offset"]).mean()) > 0.05
    # and the judge offsets still recover the truth's judge differences
    j_mean = tight.posterior["judge_offset"].mean(("chain", "draw")).values
    j_true = truth["judge_offset"] - truth["judge_offset"].mean(0)
    assert np.corrcoef((j_mean - j_mean.mean(0)).ravel(), j_true.ravel())[0, 1] > 0.8


@pytest.mark.parametrize("sampler", ["percell", "nutpie"])
def test_paper_spec_matches_an_independent_single_cell_fit(sampler: str) -> None:
    """The paper fit factorises over cells: one cell's marginal, from the cell-wise loop (the
    spec's default) or one joint nutpie run, must equal a separate regression on that cell's
    pairs. Means agree within 4 Monte Carlo standard errors."""
    import arviz_stats
    import nutpie
    import pymc as pm

    data, _ = make_dataset(2, 2, 240, 3, seed=31)
    fit = bd.fit(data, "paper", sampler=sampler, draws=500, tune=300, seed=3, **FAST)
    assert fit.settings["sampler"] == sampler
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
    ours = fit.posterior["w_cell"].sel(judge=judge, group=group)
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
    xr.testing.assert_equal(a.posterior, b.posterior)  # values and coords (attrs hold a timestamp)
    assert not np.array_equal(a.posterior["mu"].values, c.posterior["mu"].values)
    judges = [str(j) for j in data.judge.values[:2]]
    groups = sorted(set(data.group.values))[:2]
    s = bd.fit(data, "pooled", seed=1, judges=",".join(judges), groups=groups, **kw)
    assert list(s.data.judge.values) == judges
    assert set(s.data.group.values) == set(groups)
    assert list(s.posterior.judge.values) == judges
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
    ({"min_draws": -1}, "min-draws"),
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
    happens in one Python process) must not die on mixed float32/float64 NUTS state."""
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
    assert np.isfinite(f.posterior["mu"].values).all()


@pytest.mark.parametrize("param", ["radial", "signed_radial", "noncentered"])
def test_parameterizations_leave_the_prior_exact(param: str) -> None:
    """With every feature 0 the labels say nothing about the weights, so the posterior of
    sigma_* and the offsets is the prior: sigma ~ HalfNormal(s) (mean s * sqrt(2 / pi)) and
    ZeroSumNormal(sigma) offsets (E[offset^2] = s^2 * prod(1 - 1 / n_axis)). A wrong
    Jacobian in a parameterization (e.g. radial's size/direction split, or the signed
    size's reflected density) moves these.
    10 judges x 4 groups: judge (dim 9) and cell (27) levels are radial, the group level
    (dim 3 < RADIAL_MIN_DIM) falls back to non-centered. target_accept is high because a
    prior-only posterior is this test's subject, not the sampler's speed."""
    import arviz_stats as azs

    data, _ = make_dataset(10, 4, 200, 2, seed=5, x_values=(0.0,), x_probs=(1.0,))
    spec = load_spec("hierarchical")
    for lv in ("judge", "group", "cell"):
        spec = spec.replace_level(lv, parameterization=param)
    fit = bd.fit(data, spec, chains=4, draws=500, tune=300, seed=11, backend="jax",
                 target_accept=0.9, progressbar=False, warn=False)
    assert fit.diagnostics["divergences"] == 0
    post = fit.posterior
    shrink = {"judge": 1 - 1 / 10, "group": 1 - 1 / 4, "cell": (1 - 1 / 10) * (1 - 1 / 4)}
    for lv, factor in shrink.items():
        s = spec.levels[lv].sigma_scale
        off = post[f"{lv}_offset"]
        sq = (off**2).mean([d for d in off.dims if d not in ("chain", "draw", "property")])
        for name, q, expected in ((f"sigma_{lv}", post[f"sigma_{lv}"], s * np.sqrt(2 / np.pi)),
                                  (f"{lv}_offset^2", sq, s**2 * factor)):
            ess = azs.ess(q.to_dataset(name="q"), method="mean")["q"].values
            se = q.std(("chain", "draw")).values / np.sqrt(ess)
            z = (q.mean(("chain", "draw")).values - expected) / se
            assert np.all(np.abs(z) < 4.5), (param, name, z)


# ----------------------------------------------------------------------------- warm start

@pytest.fixture(scope="module")
def warm_source():
    """A small default-spec fit on 3 of 4 judges (the 4th is 'new' to it)."""
    data, _ = make_dataset(4, 2, 120, 2, seed=3)
    fit = bd.fit(data.isel(judge=[0, 1, 2]), "hierarchical", draws=40, tune=60, seed=1,
                 **FAST)
    return data, fit


def _values_at(model, point: dict) -> dict[str, np.ndarray]:
    """Every named variable of ``model`` at ``point`` through PyMC's own transforms (so a
    z that is not zero-sum, or a wrong value, shows up in the deterministics)."""
    from pymc.initial_point import make_initial_point_fn

    ip = make_initial_point_fn(model=model, overrides=point, jitter_rvs=set())(0)
    names = [v.name for v in model.free_RVs + model.deterministics]
    outs = model.replace_rvs_by_values(model.free_RVs + model.deterministics)
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore",
                          point_fn=False, mode="FAST_COMPILE")
    return dict(zip(names, fn(*[ip[v.name] for v in model.value_vars]), strict=True))


@pytest.mark.parametrize(("parameterization", "zero_sum"), [
    (None, True), ("centered", True), ("auto", True), ("centered", False), ("radial", True),
    ("radial", False), ("signed_radial", True)])
def test_initial_point_from_reproduces_posterior_means(warm_source, parameterization,
                                                       zero_sum: bool, monkeypatch) -> None:
    """Mapped onto a model on reordered judges plus a new one, the start's contract
    variables equal FIT's posterior means by label (new judge: offsets and bias 0), for the
    non-centred, centred, partially centred and radial (size x direction) levels alike, and
    without zero-sum constraints (there a centred offset = z - loc: an affine map)."""
    from bayesdissect.model.build import build_model
    from bayesdissect.model.warmstart import initial_point_from

    data, fit = warm_source
    # radial levels on these small dims too (the map does not depend on the size)
    monkeypatch.setattr("bayesdissect.model.build.RADIAL_MIN_DIM", 1)
    spec = load_spec("hierarchical")
    for level in ("judge", "group", "cell"):
        spec = spec.replace_level(level, parameterization=parameterization or "noncentered",
                                  zero_sum=zero_sum)
    new = str(data.judge.values[3])
    order = [new, *[str(j) for j in fit.data.judge.values[::-1]]]  # new first, reversed
    model = build_model(spec, data.sel(judge=order), likelihood="potential")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every free variable must be set from FIT
        point = initial_point_from(model, fit)
    got = _values_at(model, point)
    means = fit.posterior.mean(("chain", "draw"))
    for name in means.data_vars:
        dims = means[name].dims
        expect = means[name].reindex({d: list(model.coords[d]) for d in dims})
        expect = expect.fillna(0.0).values
        assert np.allclose(got[name], expect, rtol=0, atol=1e-6), name
    for name in ("judge_offset", "cell_offset", "bias"):
        new_rows = means[name].reindex(judge=[new]).isnull().all()
        assert bool(new_rows) and np.allclose(got[name][0], 0.0, rtol=0, atol=1e-6), name
    # the helper values follow the parameterization (hand-derived for the pure cases)
    z = point["z_judge"].T if zero_sum else point["z_judge"]  # ZeroSumNormal: property first
    offset = got["judge_offset"]  # (judge, property)
    if parameterization == "centered":  # z is the judge's weight mu + offset, or the offset
        assert np.allclose(z, offset + (0.0 if zero_sum else got["mu"]))
    elif parameterization is None:  # non-centred: z = offset / sigma
        assert np.allclose(z, offset / got["sigma_judge"])
    elif parameterization in ("radial", "signed_radial"):  # the offset's direction at
        # radius sqrt(n), property first with or without zero-sum
        y = point["z_judge"]
        n = y.shape[1] - 1 if zero_sum else y.shape[1]
        assert np.allclose(np.sqrt((y**2).sum(1)), np.sqrt(n))
        assert np.allclose(y.T / np.sqrt(n), offset / np.sqrt((offset**2).sum(0)), atol=1e-6)


def test_warm_started_fit_records_it(warm_source) -> None:
    data, fit = warm_source
    assert fit.settings["warm_start"] is False
    warm = bd.fit(data, "hierarchical", draws=20, tune=40, seed=2, initvals=fit, **FAST)
    assert warm.settings["warm_start"] is True
    assert list(warm.posterior.judge.values) == [str(j) for j in data.judge.values]
    assert np.isfinite(warm.posterior["cell_offset"].values).all()


@pytest.mark.parametrize(("values", "needle"), [
    ({"nope": np.zeros(2)}, "unknown variable.*'nope'"),
    ({"z_judge": np.zeros((2, 2))}, "unknown variable.*'z_judge'"),
    ({"mu": np.zeros(3)}, r"'mu' has shape \(3,\); expected \(2,\)"),
    ({"judge_offset": xr.DataArray(np.zeros(2), dims=["judge"])}, "'judge_offset' has dims"),
    ("no/such/fit.nc", "not found"),
])
def test_bad_initvals_raise_naming_the_problem(values, needle: str) -> None:
    data, _ = make_dataset(2, 2, 30, 2, seed=1)
    with pytest.raises(BayesDissectError, match=needle) as err:
        bd.fit(data, "hierarchical", draws=5, tune=5, seed=1, initvals=values, **FAST)
    assert "\n" not in str(err.value)


def test_cli_fit_init(warm_source, tmp_path, capsys) -> None:
    """``fit --init PREVIOUS_FIT`` warm-starts from a saved fit; a bad path is one line,
    exit 2, before the data are read, and writes nothing."""
    from bayesdissect import cli
    from bayesdissect.data.loaders import to_tidy

    data, fit = warm_source
    prev = fit.save(tmp_path / "prev.nc")
    table = tmp_path / "data.csv"
    to_tidy(data).to_csv(table, index=False)
    out = tmp_path / "warm.nc"
    rc = cli.main(["fit", str(table), "--out", str(out), "--chains", "2", "--draws", "20",
                   "--tune", "40", "--seed", "3", "--backend", "jax", "--init", str(prev),
                   "--model", "hierarchical", "--quiet"])  # the spec of the fit it starts from
    assert rc == 0 and bd.load_fit(out).settings["warm_start"] is True
    assert "--init" not in capsys.readouterr().err  # every label matched: no warning
    for bad in (tmp_path / "missing.nc", table):
        rc = cli.main(["fit", "no-such-data.csv", "--out", str(tmp_path / "x.nc"),
                       "--init", str(bad)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
        assert err.startswith("bayesdissect fit: error: --init: fit file"), err
        assert not (tmp_path / "x.nc").exists()
