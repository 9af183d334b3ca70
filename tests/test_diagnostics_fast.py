"""The vectorised R-hat and ESS of every fit (issue 12) against arviz_stats' own.

``diagnostics.convergence_arrays`` must give arviz_stats' ``rhat`` (method "rank") and
``ess`` ("bulk", "tail" at its default probability) within 1e-3 relative on R-hat and 1% on
ESS (measured: ~3e-7), NaN where arviz_stats gives NaN, on AR(1) chains (low ESS), chains
with different means (high R-hat), tied draws, a constant parameter (ArviZ: R-hat NaN, ESS =
chains x draws), odd draw counts, one chain, float32 and float64 draws.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from bayesdissect.model.diagnostics import (
    compute_diagnostics,
    convergence_arrays,
    convergence_datasets,
)

RHAT_RTOL, ESS_RTOL = 1e-3, 1e-2


def _draws(chains: int, draws: int, seed: int = 0) -> np.ndarray:
    """(chains, draws, 9): AR(1) at several phi, one chain shifted, ties, a constant, a NaN."""
    rng = np.random.default_rng(seed)
    phi = np.array([0.0, 0.5, 0.9, 0.97, -0.4, 0.3, 0.0, 0.0, 0.2])
    x = np.zeros((chains, draws, phi.size))
    x[:, 0] = rng.normal(size=(chains, phi.size))
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + rng.normal(size=(chains, phi.size))
    if chains > 1:
        x[1, :, 1] += 1.5  # one chain off: R-hat well above 1
        x[-1, :, 5] *= 3.0  # one chain wider: the folded (tail) R-hat is the larger
    x[:, :, 6] = np.round(x[:, :, 6])  # heavy ties
    x[:, :, 7] = 2.5  # a constant parameter
    x[0, min(3, draws - 1), 8] = np.nan
    return x


def _reference(x: np.ndarray) -> dict[str, np.ndarray]:
    from arviz_stats.base import array_stats
    from arviz_stats.validate import validate_ci_prob

    a = np.moveaxis(x, 2, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"rhat": np.asarray(array_stats.rhat(a), float),
                "ess_bulk": np.asarray(array_stats.ess(a, method="bulk"), float),
                "ess_tail": np.asarray(array_stats.ess(a, method="tail",
                                                       prob=validate_ci_prob(None)), float)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("chains", "draws"), [(4, 600), (3, 401), (1, 300), (2, 4), (4, 5)])
def test_matches_arviz_stats(dtype, chains: int, draws: int) -> None:  # noqa: ANN001
    x = _draws(chains, draws).astype(dtype)
    before = x.copy()
    ours = convergence_arrays(x)
    np.testing.assert_array_equal(x, before)  # the caller's draws are not touched
    ref = _reference(x)
    for key, tol in (("rhat", RHAT_RTOL), ("ess_bulk", ESS_RTOL), ("ess_tail", ESS_RTOL)):
        np.testing.assert_array_equal(np.isnan(ours[key]), np.isnan(ref[key]), err_msg=key)
        np.testing.assert_allclose(ours[key], ref[key], rtol=tol, err_msg=key)
    # the cases this checks are really there
    assert np.isnan(ours["rhat"][7]) and np.isnan(ours["ess_bulk"][8])  # constant; a NaN
    # ArviZ's ESS of a constant: the split chains' size (odd draws lose each middle draw)
    assert ours["ess_bulk"][7] == ours["ess_tail"][7] == 2 * chains * (draws // 2)
    if chains == 4 and draws == 600:
        assert ours["rhat"][1] > 1.05 and ours["rhat"][5] > 1.05
        assert ours["ess_bulk"][3] < 0.05 * chains * draws  # phi 0.97: low ESS


def test_chunks_and_threads_do_not_change_the_answer() -> None:
    x = _draws(4, 500, seed=3).astype(np.float32)
    x = np.concatenate([x] * 5, axis=2).reshape(4, 500, 5, 9)  # a 2-d trailing shape
    one = convergence_arrays(x, chunk=2, threads=1)
    many = convergence_arrays(x, chunk=7, threads=2)
    default = convergence_arrays(x)
    for key in one:
        assert one[key].shape == (5, 9)
        np.testing.assert_array_equal(one[key], many[key])
        np.testing.assert_array_equal(one[key], default[key])


def test_fewer_than_four_draws_give_nan() -> None:
    out = convergence_arrays(np.ones((2, 3, 4), np.float32))
    assert all(np.isnan(v).all() and v.shape == (4,) for v in out.values())


def _posterior(seed: int = 1) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    c, d = 4, 300
    ar = np.zeros((c, d, 3, 2), np.float32)
    for t in range(1, d):
        ar[:, t] = 0.8 * ar[:, t - 1] + rng.normal(size=(c, 3, 2))
    return xr.Dataset(
        {"mu": (("chain", "draw"), rng.normal(size=(c, d)).astype(np.float32)),
         "cell": (("chain", "draw", "judge", "property"), ar),
         # a variable stored draw-first: the dims are found by name
         "bias": (("draw", "judge", "chain"),
                  rng.normal(size=(d, 3, c)).astype(np.float32) + np.arange(c))},
        coords={"chain": np.arange(c), "draw": np.arange(d), "judge": ["a", "b", "c"],
                "property": ["p", "q"]})


def test_datasets_match_arviz_stats_datasets() -> None:
    import arviz_stats

    post = _posterior()
    rhat, bulk, tail = convergence_datasets(post)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = (arviz_stats.rhat(post), arviz_stats.ess(post, method="bulk"),
               arviz_stats.ess(post, method="tail"))
    for ours, theirs, tol in zip((rhat, bulk, tail), ref, (RHAT_RTOL, ESS_RTOL, ESS_RTOL),
                                 strict=True):
        assert set(ours.data_vars) == set(theirs.data_vars)
        for v in ours.data_vars:
            assert ours[v].dims == theirs[v].dims, v
            np.testing.assert_allclose(ours[v].values, theirs[v].values, rtol=tol, err_msg=v)
        assert list(ours["cell"].judge.values) == ["a", "b", "c"]


def test_compute_diagnostics_names_the_worst_parameters() -> None:
    post = _posterior()
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 300), bool))},
                       coords={"chain": np.arange(4), "draw": np.arange(300)})
    d = compute_diagnostics(post, stats)
    assert d["n_parameters"] == 1 + 6 + 3 and d["chains"] == 4 and d["draws"] == 300
    assert d["max_rhat"] > 1.5 and d["worst_rhat"][0][0].startswith("bias[")
    assert any("R-hat" in w for w in d["warnings"])
