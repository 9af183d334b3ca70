"""Posterior predictive checks, PSIS-LOO and model comparison on contract datasets with
posteriors built from the known truth (a well-specified one and a pooled, misspecified one)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from arviz_stats.base import array_stats
from conftest import make_dataset

from bayesdissect.errors import BayesDissectError
from bayesdissect.queries.predictive import compare_models, loo, ppc, psis_loo_rows

DIMS = {"mu": ("property",), "judge_offset": ("judge", "property"),
        "group_offset": ("group", "property"), "cell_offset": ("judge", "group", "property"),
        "bias": ("judge",)}


def _posterior(data: xr.Dataset, truth: dict, terms: list[str], noise: float = 0.03,
               draws: int = 100, seed: int = 0, scale: float = 1.0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    dv = {}
    for t in terms:
        v = scale * truth[t]
        dv[t] = (("chain", "draw") + DIMS[t], v[None, None] + noise * rng.normal(
            size=(2, draws) + v.shape))
    return xr.Dataset(dv, coords={"judge": data.judge.values, "property": data.property.values,
                                  "group": sorted(set(data.group.values.tolist()))})


@pytest.fixture(scope="module")
def setup() -> tuple[xr.Dataset, dict]:
    return make_dataset(n_judges=6, n_groups=3, n_pairs=600, seed=2, sigma_judge=1.0,
                        missing=0.1)


ALL = ["mu", "judge_offset", "group_offset", "cell_offset", "bias"]


def test_psis_matches_arviz_stats() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0.5, rng.uniform(0.1, 3, size=(200, 1, 1)), size=(200, 2, 400))
    ll = -np.logaddexp(0, -z)
    e, k, p = array_stats.loo(ll, chain_axis=-2, draw_axis=-1)
    e2, p2, k2 = psis_loo_rows(ll.reshape(200, -1), chunk=64)
    np.testing.assert_allclose(e2, e, atol=1e-4)
    np.testing.assert_allclose(k2, k, atol=1e-4)
    np.testing.assert_allclose(p2, p, atol=1e-4)


def test_well_specified_passes_checks(setup) -> None:
    data, truth = setup
    res = ppc(_posterior(data, truth, ALL), data=data, seed=1)
    assert res.n_draws == 200
    n_lab = int(data.y.notnull().sum())
    assert res.by_judge["n"].sum() == n_lab and res.by_group["n"].sum() == n_lab
    assert res.by_judge.flag.sum() <= 1 and res.by_group.flag.sum() <= 1
    assert res.agreement.flag.sum() <= 2  # 15 pairs at 5% two-sided
    assert res.calibration.attrs["ece"] < 0.05
    # accuracy of the posterior predictive ~ accuracy of the true probabilities
    p, y = truth["p"], data.y.values
    m = ~np.isnan(y)
    true_acc = ((p[m] > 0.5) == (y[m] > 0.5)).mean()
    assert abs(res.scores.set_index("judge").loc["all", "accuracy"] - true_acc) < 0.02
    assert set(res.summary().check) == {"share_1", "agreement"}


def test_agreement_matches_brute_force_when_deterministic(setup) -> None:
    data, truth = setup
    # huge weights: P is 0 or 1 except at logit 0, so replicated labels are fixed
    post = _posterior(data, truth, ["mu", "judge_offset"], noise=0.0, draws=3, scale=200.0)
    res = ppc(post, data=data, chunk=2)
    gi = np.searchsorted(sorted(set(data.group.values.tolist())), data.group.values)
    w = 200 * (truth["mu"] + truth["judge_offset"])  # (J, K)
    logit = data.x.values @ w.T
    yrep = (logit > 0).astype(float)
    y = data.y.values
    m = ~np.isnan(y)
    a, b = 0, 3
    both = m[:, a] & m[:, b] & (logit[:, a] != 0) & (logit[:, b] != 0)
    tied = (m[:, a] & m[:, b]).sum() - both.sum()
    row = res.agreement.query("judge_a == @data.judge.values[0] and "
                              "judge_b == @data.judge.values[3]").iloc[0]
    expect = (yrep[both, a] == yrep[both, b]).sum()
    assert row["n"] == (m[:, a] & m[:, b]).sum()
    assert abs(row.rep_mean * row["n"] - expect) <= tied  # ties replicate at random
    obs = (y[m[:, a] & m[:, b], a] == y[m[:, a] & m[:, b], b]).mean()
    assert row.observed == pytest.approx(obs)
    assert gi.shape[0] == data.sizes["pair"]


def test_misspecified_pooled_is_flagged_and_loses(setup) -> None:
    data, truth = setup
    good = _posterior(data, truth, ALL)
    bad = _posterior(data, truth, ["mu", "bias"])
    rg, rb = ppc(good, data=data), ppc(bad, data=data)
    assert rb.agreement.flag.sum() >= rg.agreement.flag.sum() + 5
    sg = rg.scores.set_index("judge").loc["all"]
    sb = rb.scores.set_index("judge").loc["all"]
    assert sb.log_score < sg.log_score - 0.05
    table = compare_models([loo(good, data=data, name="hier"),
                            loo(bad, data=data, name="pooled")])
    assert list(table.model) == ["hier", "pooled"]
    assert table.elpd_diff.iloc[0] == 0 and table.se_diff.iloc[0] == 0
    assert -table.elpd_diff.iloc[1] > 4 * table.se_diff.iloc[1]


def test_compare_models_matches_entries_by_judge_name_not_position(setup) -> None:
    """The same posterior and data with the judges (and pairs) in another order is the same
    model: elpd_diff and se_diff ~0 (matching by position gave a large se_diff)."""
    data, truth = setup
    post = _posterior(data, truth, ALL, noise=0.1)
    perm = [3, 0, 5, 1, 4, 2]
    pairs = np.random.default_rng(1).permutation(data.sizes["pair"])
    a = loo(post, data=data, name="a")
    b = loo(post.isel(judge=perm), data=data.isel(judge=perm, pair=pairs), name="b")
    table = compare_models([a, b])
    assert table.elpd_diff.abs().max() < 1e-6 * abs(a.elpd_loo)
    assert table.se_diff.max() < 1e-6 * a.se
    # ArviZ's sign convention: elpd_diff = this model's elpd minus the best one's (<= 0)
    bad = loo(_posterior(data, truth, ["mu", "bias"]), data=data, name="pooled")
    t2 = compare_models([bad, a])
    assert list(t2.model) == ["a", "pooled"] and t2.elpd_diff.iloc[1] < 0
    assert t2.elpd_diff.iloc[1] == pytest.approx(bad.elpd_loo - a.elpd_loo)


def test_loo_is_arviz_elpd_data(setup) -> None:
    """bd.loo returns arviz_stats' ELPD object: its compare and plot_khat take it, and its
    pointwise values sit on the observation dim with pair and judge coordinates."""
    import arviz_stats

    data, truth = setup
    res = loo(_posterior(data, truth, ALL), data=data, name="hier")
    assert isinstance(res, arviz_stats.ELPDDataLOO) and res.kind == "loo"
    assert res.elpd_i.dims == ("obs",) and {"pair", "judge"} <= set(res.elpd_i.coords)
    assert res.pareto_k.sizes["obs"] == res.n_obs == int(data.y.notnull().sum())
    assert res.elpd == res.elpd_loo and res.p == res.p_loo and res.good_k == res.k_threshold
    table = arviz_stats.compare({"a": res, "b": res})
    assert float(table.loc["b", "elpd_diff"]) == 0.0
    assert "elpd_loo" in str(res)


def test_loo_chunking_is_invariant_and_per_judge_sums(setup) -> None:
    data, truth = setup
    post = _posterior(data, truth, ALL, noise=0.1)
    full = loo(post, data=data)
    tiny = loo(post, data=data, chunk_bytes=8 * 200 * 37)  # 37 entries per chunk
    np.testing.assert_allclose(tiny.pointwise, full.pointwise, rtol=1e-6)
    assert full.n_obs == int(data.y.notnull().sum())
    assert full.by_judge.elpd_loo.sum() == pytest.approx(full.elpd_loo)
    # elpd_loo <= lpd: p_loo positive, and elpd near the truth's log score
    assert full.p_loo > 0
    p, y = truth["p"], data.y.values
    m = ~np.isnan(y)
    true_lp = np.where(y[m] > 0.5, np.log(p[m]), np.log(1 - p[m])).sum()
    assert abs(full.elpd_loo - true_lp) < 3 * full.se


def test_compare_models_rejects_different_data(setup) -> None:
    data, truth = setup
    other = data.isel(pair=slice(0, 300))
    a = loo(_posterior(data, truth, ALL), data=data, name="a")
    b = loo(_posterior(other, truth, ALL), data=other, name="b")
    with pytest.raises(BayesDissectError, match="different data") as err:
        compare_models([a, b])
    assert "\n" not in str(err.value)
    # the same (pair, judge) entries with other labels are other data, too
    flipped = data.assign(y=1.0 - data.y)
    c = loo(_posterior(data, truth, ALL), data=flipped, name="c")
    with pytest.raises(BayesDissectError, match=r"disagree on \d+ of"):
        compare_models([a, c])
    # other judges
    d = loo(_posterior(data, truth, ALL), data=data.isel(judge=[0, 1, 2]), name="d")
    with pytest.raises(BayesDissectError, match="different data"):
        compare_models([a, d])
    with pytest.raises(BayesDissectError, match="at least two"):
        compare_models([a])
    with pytest.raises(BayesDissectError, match="need the fitted data"):
        ppc(_posterior(data, truth, ALL))


# ------------------------------------------------------------------ real small fits
def test_real_fits_pooled_is_flagged_and_loses(query_fits: dict) -> None:
    f = query_fits
    good, bad = ppc(f["hier"]), ppc(f["pooled"])
    assert good.agreement.flag.sum() <= 2
    assert bad.agreement.flag.sum() >= good.agreement.flag.sum() + 3
    assert (bad.scores.set_index("judge").loc["all", "log_score"]
            < good.scores.set_index("judge").loc["all", "log_score"] - 0.03)
    table = compare_models([f["hier"], f["pooled"]])
    assert list(table.model) == ["hierarchical", "pooled"]
    assert -table.elpd_diff.iloc[1] > 3 * table.se_diff.iloc[1]


def test_real_fit_loo_matches_arviz_on_brute_force_loglik(query_fits: dict) -> None:
    f = query_fits
    post = f["hier"].posterior
    data = f["data"]
    groups = sorted(set(data.group.values.tolist()))
    gi = np.searchsorted(groups, data.group.values)
    w = (post.mu + post.judge_offset + post.group_offset + post.cell_offset).transpose(
        "chain", "draw", "judge", "group", "property").values  # (C, D, J, G, K)
    logit = np.einsum("ik,cdjik->cdij", data.x.values, w[:, :, :, gi, :])
    logit += post.bias.values[:, :, None, :]
    y = data.y.values
    ll = np.where(y[None, None] > 0.5, -np.logaddexp(0, -logit), -np.logaddexp(0, logit))
    j = 2
    ll_j = np.moveaxis(ll[:, :, ~np.isnan(y[:, j]), j], -1, 0)  # (n, C, D)
    e_ref, _, _ = array_stats.loo(ll_j, chain_axis=-2, draw_axis=-1)
    res = loo(f["hier"])
    mine = res.elpd_i.judge.values == data.judge.values[j]
    got = dict(zip(res.elpd_i.pair.values[mine].tolist(), res.pointwise[mine], strict=True))
    pairs = data.pair.values[~np.isnan(y[:, j])]
    np.testing.assert_allclose([got[p] for p in pairs], e_ref, atol=2e-4)
