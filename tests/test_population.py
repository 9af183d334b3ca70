"""``population=True``: the predictive weights of a new judge (issue 10, item 4).

Synthetic posteriors with zero-sum offsets (no sampling) whose predictive is known in
closed form: mu + d with d ~ Normal(0, sigma_judge^2 (1 + 1/J)) under a zero-sum judge
level, Normal(0, sigma_judge^2) under iid offsets. Draws are independent, so the sample
variance of S predictive draws has relative sd sqrt(2 / (S - 1)) (Normal draws).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _query_posteriors import make_posterior

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.specs import Level, ModelSpec
from bayesdissect.queries.effects import effects
from bayesdissect.queries.weights import level_weights

NEW = "new judge"
CHAINS, DRAWS = 2, 2000
S = CHAINS * DRAWS
#: 4 sd of a sample variance of S independent Normal draws, relative to the variance
VAR_TOL = 4 * np.sqrt(2 / (S - 1))


def _zs(x: np.ndarray, axis: int) -> np.ndarray:
    return x - x.mean(axis, keepdims=True)


def zero_sum_posterior(n_judges: int = 3, n_groups: int = 4, n_props: int = 6,
                       zero_sum: bool = True, seed: int = 0) -> xr.Dataset:
    """Posterior draws shaped like a zero-sum hierarchical fit's: truth + small noise for
    mu and the offsets (offsets re-centred over their zero-sum axes each draw), sigma_judge
    and sigma_cell near known values. ``zero_sum=False``: iid offsets (no centring)."""
    rng = np.random.default_rng(seed)
    j, g, k = n_judges, n_groups, n_props
    shape = (CHAINS, DRAWS)
    sig_j = np.linspace(0.3, 0.8, k)
    sig_c = np.linspace(0.1, 0.3, k)
    zs = _zs if zero_sum else (lambda x, axis: x)

    def noisy(val: np.ndarray, sd: float = 0.05) -> np.ndarray:
        return val + sd * rng.normal(size=shape + val.shape)

    mu = noisy(rng.normal(0, 1, k))
    judge = zs(noisy(rng.normal(0, 1, (j, k)) * sig_j), 2)
    group = _zs(noisy(rng.normal(0, 0.5, (g, k))), 2)
    cell = noisy(rng.normal(0, 1, (j, g, k)) * sig_c)
    cell = zs(zs(cell, 2), 3)
    sigma_j = sig_j * np.exp(0.05 * rng.normal(size=shape + (k,)))
    sigma_c = sig_c * np.exp(0.05 * rng.normal(size=shape + (k,)))
    cd, pd_ = ("chain", "draw"), ("property",)
    return xr.Dataset(
        {"mu": (cd + pd_, mu), "judge_offset": (cd + ("judge",) + pd_, judge),
         "group_offset": (cd + ("group",) + pd_, group),
         "cell_offset": (cd + ("judge", "group") + pd_, cell),
         "sigma_judge": (cd + pd_, sigma_j), "sigma_cell": (cd + pd_, sigma_c),
         "bias": (cd + ("judge",), 0.1 * rng.normal(size=shape + (j,)))},
        coords={"chain": np.arange(CHAINS), "draw": np.arange(DRAWS),
                "judge": [f"judge{i}" for i in range(j)],
                "group": [f"group{i}" for i in range(g)],
                "property": [f"p{i}" for i in range(k)]})


def _flat(da: xr.DataArray) -> np.ndarray:
    return da.values.reshape((-1,) + da.shape[2:])


@pytest.mark.parametrize("zero_sum", [True, False])
def test_new_judge_is_mu_plus_an_offset_from_the_fitted_scale(zero_sum: bool) -> None:
    post = zero_sum_posterior(zero_sum=zero_sum)
    n_j = post.sizes["judge"]
    new = effects(post, "judge", population=True, seed=1)
    # one new judge, not the fitted ones
    assert list(new.judge.unique()) == [NEW] and len(new) == post.sizes["property"]
    fitted = effects(post, "judge")
    width_new = (new.upper - new.lower).to_numpy()
    widths = (fitted.upper - fitted.lower).to_numpy().reshape(n_j, -1)
    assert (width_new > widths.max(0)).all()
    # the predictive's mean is mu (+ the groups' mean offset, 0 here): 4 MC sd
    w = _flat(level_weights(post, "judge", population=True, seed=1))[:, 0, :]
    centre = _flat(post.mu).mean(0) + _flat(post.group_offset).mean((0, 1))
    sd = w.std(0, ddof=1)
    np.testing.assert_array_less(np.abs(new["mean"].to_numpy() - centre), 4 * sd / np.sqrt(S))
    # its spread: var(mu) + E[sigma_judge^2] x (1 + 1/J) under zero-sum offsets (mu is the
    # fitted judges' average), x 1 under iid offsets; the cells average to 0 over groups
    factor = 1 + 1 / n_j if zero_sum else 1.0
    mu_plus = _flat(post.mu) + _flat(post.group_offset).mean(1)
    if not zero_sum:  # iid cells: their group mean adds sigma_cell^2 / G
        cell_var = (_flat(post.sigma_cell) ** 2).mean(0) / post.sizes["group"]
    else:
        cell_var = 0.0
    expected = mu_plus.var(0, ddof=1) + factor * (_flat(post.sigma_judge) ** 2).mean(0) + cell_var
    np.testing.assert_allclose(w.var(0, ddof=1) / expected, 1.0, atol=VAR_TOL)


def test_cells_of_the_new_judge_and_their_group_average() -> None:
    post = zero_sum_posterior()
    n_j, n_g = post.sizes["judge"], post.sizes["group"]
    cell = level_weights(post, "cell", population=True, seed=3)
    assert cell.dims == ("chain", "draw", "judge", "group", "property")
    assert list(cell.judge.values) == [NEW]
    judge = level_weights(post, "judge", population=True, seed=3)
    # the judge level is the new judge's cells averaged over the fitted groups, draw by draw
    np.testing.assert_allclose(cell.mean("group").values, judge.values, atol=1e-12)
    # the group level is the same new judge in each fitted group
    group = level_weights(post, "group", population=True, seed=3)
    np.testing.assert_allclose(group.values, cell.isel(judge=0).values, atol=1e-12)
    # in group g: mu + group_offset[g] + d + c[g]; c zero-sum over groups with
    # variance sigma_cell^2 (1 + 1/J)(1 - 1/G) per element
    w = _flat(cell)[:, 0]  # (S, G, K)
    base = _flat(post.mu)[:, None, :] + _flat(post.group_offset)
    dev = w - base
    c = dev - dev.mean(1, keepdims=True)
    expected_c = (1 + 1 / n_j) * (1 - 1 / n_g) * (_flat(post.sigma_cell) ** 2).mean(0)
    np.testing.assert_allclose(c.var(0, ddof=1) / expected_c, 1.0, atol=VAR_TOL)


def test_draws_are_reproducible_by_seed() -> None:
    post = zero_sum_posterior()
    a = effects(post, "cell", population=True, seed=7)
    b = effects(post, "cell", population=True, seed=7)
    c = effects(post, "cell", population=True, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["mean"], c["mean"])
    assert (a.judge == NEW).all() and set(a.group) == set(post.group.values)


def test_fixed_prior_judge_level_uses_the_specs_prior() -> None:
    post = zero_sum_posterior(zero_sum=False).drop_vars(["sigma_judge", "cell_offset",
                                                         "sigma_cell"])
    spec = ModelSpec(name="fixed", levels={"mu": Level("mu", prior="normal", scale=1.0),
                                           "judge": Level("judge", prior="normal", scale=0.3),
                                           "group": Level("group", prior="normal",
                                                          scale=0.5)})
    w = _flat(level_weights(post, "judge", population=True, spec=spec, seed=2))[:, 0]
    mu_plus = _flat(post.mu) + _flat(post.group_offset).mean(1)
    expected = mu_plus.var(0, ddof=1) + 0.3**2
    np.testing.assert_allclose(w.var(0, ddof=1) / expected, 1.0, atol=VAR_TOL)
    with pytest.raises(BayesDissectError, match="sigma_judge"):
        level_weights(post, "judge", population=True)


def test_specs_without_a_population_of_judges() -> None:
    paper, _ = make_posterior(spec="paper")
    with pytest.raises(BayesDissectError, match="paper"):
        effects(paper, "judge", population=True)
    pooled, _ = make_posterior(spec="pooled")
    # no judge terms: a new judge's weights are mu, exactly the default global level
    pd.testing.assert_frame_equal(effects(pooled, "global", population=True),
                                  effects(pooled, "global"))
    with pytest.raises(BayesDissectError, match="no 'judge' level"):
        effects(pooled, "judge", population=True)
    post = zero_sum_posterior()
    with pytest.raises(BayesDissectError, match="--judge does not apply with --population"):
        effects(post, "judge", judges=["judge0"], population=True)


def test_cli_population_on_a_saved_fit(capsys: pytest.CaptureFixture,
                                       query_fits: dict) -> None:
    from bayesdissect.cli.main import main

    fits = query_fits
    outs = []
    for _ in range(2):
        code = main(["effects", fits["hier_path"], "--population", "--seed", "4",
                     "--format", "csv"])
        outs.append(capsys.readouterr().out)
        assert code == 0
    assert outs[0] == outs[1]
    new = pd.read_csv(io.StringIO(outs[0]), keep_default_na=False)
    assert (new.judge == NEW).all() and len(new) == fits["data"].sizes["property"]
    fitted = effects(fits["hier"], "judge")
    widths = (fitted.upper - fitted.lower).to_numpy().reshape(fits["data"].sizes["judge"], -1)
    assert ((new.upper - new.lower).to_numpy() > widths.max(0)).all()
