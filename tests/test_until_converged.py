"""Sampling until converged (``fit``'s ``min_draws``): the run stops at the first check
that meets the convergence bar, keeps the draws every chain has, and never draws more than
``draws``; with ``min_draws`` off, or when no check passes, it draws exactly ``draws``.

Small data (4 judges x 200 pairs, the light spec: 1 + 4 + 4 parameters and a scale), 2 or 4
chains, nutpie JAX.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import light_spec, make_dataset

import bayesdissect as bd
from bayesdissect.errors import BayesDissectError
from bayesdissect.model.diagnostics import ESS_MIN, RHAT_MAX
from bayesdissect.model.specs import parse_spec

KW = {"backend": "jax", "progressbar": False, "warn": False, "tune": 200, "seed": 5}


@pytest.fixture(scope="module")
def data():
    return make_dataset(4, 2, 200, 1, seed=3)[0]


def test_stops_at_the_first_check_that_meets_the_bar(data) -> None:
    # 4 chains of a well-conditioned posterior: ESS >= 400 is met within a few hundred
    # draws, far below the cap of 5,000
    f = bd.fit(data, parse_spec(light_spec()), chains=4, draws=5000, min_draws=100, **KW)
    d = f.diagnostics
    n = f.idata["posterior"].sizes["draw"]
    assert 100 <= n < 1000
    assert d["draws"] == n and f.idata["sample_stats"].sizes["draw"] == n
    assert d["max_rhat"] <= RHAT_MAX and min(d["min_ess_bulk"], d["min_ess_tail"]) >= ESS_MIN
    # every kept draw is a real draw of every chain (no NaN padding of a chain behind)
    for da in f.idata["posterior"].data_vars.values():
        assert np.isfinite(da.values).all()
    assert f.settings["min_draws"] == 100 and f.settings["draws"] == 5000
    # the checks fall at fixed draw counts (100, then x1.25, rounded up): the run keeps
    # exactly the draws of the check that passed, so the same seed stops at the same point
    points = [100]
    while points[-1] < n:
        points.append(int(np.ceil(1.25 * points[-1])))
    assert n in points
    again = bd.fit(data, parse_spec(light_spec()), chains=4, draws=5000, min_draws=100, **KW)
    assert again.idata["posterior"].sizes["draw"] == n
    np.testing.assert_array_equal(again.idata["posterior"]["mu"].values,
                                  f.idata["posterior"]["mu"].values)


def test_without_a_passing_check_it_draws_exactly_draws(data) -> None:
    # 2 chains x 150 draws: 300 draws in all cannot give tail ESS >= 400 on every
    # parameter, so no check passes and the run ends at its cap
    f = bd.fit(data, parse_spec(light_spec()), chains=2, draws=150, min_draws=50, **KW)
    assert f.idata["posterior"].sizes["draw"] == 150
    assert f.settings["min_draws"] == 50


def test_min_draws_off_draws_exactly_draws(data) -> None:
    f = bd.fit(data, parse_spec(light_spec()), chains=2, draws=120, min_draws=0, **KW)
    assert f.idata["posterior"].sizes["draw"] == 120 and f.settings["min_draws"] is None


def test_spec_min_draws_is_read_and_checked() -> None:
    spec = {**light_spec(), "sampler": {"min_draws": 700}}
    assert parse_spec(spec).sampler.min_draws == 700
    assert bd.load_spec("hierarchical-pair").sampler.min_draws is not None
    with pytest.raises(BayesDissectError, match="sampler.min_draws: expected an integer >= 0"):
        parse_spec({**light_spec(), "sampler": {"min_draws": "many"}})


def test_checks_read_the_datatree_draws_from_the_raw_trace() -> None:
    """A check reads nutpie's raw arrow trace (only the checked variables and draws): the
    same draws, in the same (chain, draw, flattened dims) layout, as nutpie's DataTree of
    the same run (scalar, vector and matrix variables, a deterministic); fewer draws than
    asked for gives None."""
    import time

    import nutpie
    import pymc as pm

    from bayesdissect.model.diagnostics import chain_draw_arrays
    from bayesdissect.model.sample import _arrow_draws, _common_draws

    with pm.Model(coords={"a": range(3), "b": range(2)}) as model:
        x = pm.Normal("x", 0.0, 1.0, dims=("a", "b"))
        pm.Normal("s", 0.0, 1.0)
        pm.Deterministic("row", x.sum(axis=1), dims="a")
    compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")
    run = nutpie.sample(compiled, draws=50, tune=30, chains=2, seed=1, blocking=False,
                        progress_bar=False, save_warmup=True)
    for _ in range(600):
        try:
            if run.is_finished:
                break
        except TimeoutError:  # still running
            pass
        time.sleep(0.1)
    keep = ["x", "s", "row"]
    raw = _arrow_draws(*run._sampler.inspect().get_arrow_trace(), keep, 40)
    post = _common_draws(run.inspect(), upto=40)["posterior"].to_dataset()
    want = chain_draw_arrays(post[keep])
    assert set(raw) == set(keep)
    for name in keep:
        np.testing.assert_array_equal(raw[name], want[name].reshape(2, 40, -1))
    assert _arrow_draws(*run._sampler.inspect().get_arrow_trace(), keep, 51) is None
