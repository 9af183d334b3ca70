"""Predicted agreement and kappa (issue 14): the kernels against plain loops, their ranges,
twins, the truth that ``simulate`` writes, errors, and the coverage of their 90% intervals
on one small real fit of simulated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import make_dataset
from scipy.stats import binom

import bayesdissect as bd
from bayesdissect.errors import BayesDissectError
from bayesdissect.queries.similarity import (
    PREDICTIVE_KINDS,
    agreement_draws,
    similarity,
    similarity_matrix,
    true_agreement,
)


def _loop_reference(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """agreement and kappa (J, J) of one draw's logits (J, N) by the definitions."""
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    j = p.shape[0]
    agr, kap = np.zeros((j, j)), np.zeros((j, j))
    for a in range(j):
        for b in range(j):
            agr[a, b] = np.mean(p[a] * p[b] + (1 - p[a]) * (1 - p[b]))
            qa, qb = p[a].mean(), p[b].mean()
            chance = qa * qb + (1 - qa) * (1 - qb)
            kap[a, b] = (agr[a, b] - chance) / (1 - chance)
    return agr, kap


def test_kernel_matches_the_definitions() -> None:
    logits = np.random.default_rng(0).normal(0.3, 1.5, size=(4, 6, 500))
    agr, kap = agreement_draws(logits, "agreement"), agreement_draws(logits, "kappa")
    for s in range(4):
        ref_a, ref_k = _loop_reference(logits[s])
        np.testing.assert_allclose(agr[s], ref_a, atol=2e-6)
        np.testing.assert_allclose(kap[s], ref_k, atol=2e-5)


def test_values_stay_in_range_at_the_extremes() -> None:
    rng = np.random.default_rng(1)
    base = np.sign(rng.normal(size=(1, 1, 400))) * 8.0
    # identical deterministic judges, their mirror image, a coin, a judge always saying 1
    logits = np.concatenate([base * 5, base * 5, -base * 5, np.zeros_like(base),
                             np.full_like(base, 40.0), rng.normal(0, 3, (1, 1, 400))], axis=1)
    agr, kap = agreement_draws(logits, "agreement")[0], agreement_draws(logits, "kappa")[0]
    assert np.all((agr >= 0) & (agr <= 1))
    ok = np.isfinite(kap)
    assert np.all((kap[ok] >= -1) & (kap[ok] <= 1))
    assert agr[0, 1] == pytest.approx(1.0, abs=1e-4) and kap[0, 1] == pytest.approx(1.0, abs=1e-3)
    # mirror images never agree; their kappa is -2q(1-q) / (q^2 + (1-q)^2), -1 at q = 1/2
    q = float((base > 0).mean())
    assert agr[0, 2] == pytest.approx(0.0, abs=1e-4)
    assert kap[0, 2] == pytest.approx(-2 * q * (1 - q) / (q * q + (1 - q) ** 2), abs=1e-4)
    assert agr[0, 3] == pytest.approx(0.5, abs=1e-6) and kap[0, 3] == pytest.approx(0.0, abs=1e-6)


def _posterior(data: xr.Dataset, truth: dict, noise: float, twin: tuple[int, int] | None,
               seed: int = 0, draws: int = 100) -> xr.Dataset:
    """Draws = truth + noise * N(0, 1) per term, coordinates of ``data``; ``twin`` = (copy,
    source): the copy's terms equal the source's, draw by draw."""
    rng = np.random.default_rng(seed)
    coords = {"judge": data["judge"].values, "property": data["property"].values,
              "group": sorted(set(data["group"].values.astype(str).tolist()))}
    dims = {"mu": ("property",), "judge_offset": ("judge", "property"),
            "group_offset": ("group", "property"),
            "cell_offset": ("judge", "group", "property"), "bias": ("judge",)}
    out = {}
    for name, d in dims.items():
        val = truth[name][None, None] + noise * rng.standard_normal((2, draws, *truth[name].shape))
        if twin is not None and "judge" in d:
            val[:, :, twin[0]] = val[:, :, twin[1]]
        out[name] = (("chain", "draw", *d), val)
    return xr.Dataset(out, coords=coords)


def test_twins_reach_the_most_agreement_and_a_bare_posterior_needs_data() -> None:
    data, truth = make_dataset(n_judges=5, n_groups=3, n_pairs=400, n_properties=5, seed=3,
                               sigma_judge=1.0)
    post = _posterior(data, truth, 0.05, twin=(4, 1))
    judges = [str(j) for j in data.judge.values]
    for kind in PREDICTIVE_KINDS:
        mat = similarity_matrix(post, kind, data=data)
        m = mat.values
        # a twin agrees with its source exactly as the source agrees with a rerun of itself
        assert m[1, 4] == pytest.approx(m[1, 1], abs=1e-6) and m[1, 4] == pytest.approx(m[4, 4])
        assert m[1, 4] > np.delete(m[1], [1, 4]).max()
        df = similarity(post, kind=kind, data=data)
        assert len(df) == 10 and ((df.lower <= df["mean"]) & (df["mean"] <= df.upper)).all()
        lo, hi = (0.0, 1.0) if kind == "agreement" else (-1.0, 1.0)
        assert df[["mean", "lower", "upper", "of_means"]].stack().between(lo, hi).all()
        row = df[(df.judge_a == judges[1]) & (df.judge_b == judges[4])].iloc[0]
        assert row["mean"] == pytest.approx(m[1, 1], abs=1e-6)
    with pytest.raises(BayesDissectError, match="pass the Fit"):
        similarity(post, kind="agreement")
    # the default kind is agreement: a bare posterior without data is told what to pass
    with pytest.raises(BayesDissectError, match=r"agreement \(the default\).*kind='paper'"):
        similarity(post)
    with pytest.raises(BayesDissectError, match="unknown group"):
        similarity(post, kind="kappa", group="Mars", data=data)


def test_one_group_uses_that_groups_pairs_only() -> None:
    data, truth = make_dataset(n_judges=4, n_groups=3, n_pairs=300, n_properties=5, seed=5)
    post = _posterior(data, truth, 0.0, None, draws=2)
    g = str(data.group.values[0])
    sub = data.isel(pair=np.flatnonzero(data.group.values == g))
    one = similarity(post, kind="agreement", group=g, data=data)
    ref = similarity(post, kind="agreement", data=sub)
    np.testing.assert_allclose(one["mean"], ref["mean"], atol=1e-6)


@pytest.mark.parametrize("pair_sd", [0.0, 1.0])
def test_simulate_writes_the_true_agreement(pair_sd: float) -> None:
    sim = bd.simulate(n_pairs=300, judges=4, groups=2, seed=2, regime="sparse", pair_sd=pair_sd)
    t, data = sim.truth, sim.data
    assert {"similarity_agreement", "similarity_kappa"} <= set(t.data_vars)
    # by hand: logits of the data's (kept) pairs from the true w, bias and pair effects
    pairs = data["pair"].values
    gi = np.searchsorted(t["group"].values, data["group"].values.astype(str))
    x = data["x"].transpose("pair", "property").values
    w = t["w"].transpose("judge", "group", "property").values
    logits = t["bias"].values[:, None] + np.einsum("ik,jik->ji", x, w[:, gi, :])
    if pair_sd:
        logits = logits + t["pair_effect"].sel(pair=pairs).values[None, :]
    ref_a, ref_k = _loop_reference(logits)
    np.testing.assert_allclose(t["similarity_agreement"].values, ref_a, atol=1e-5)
    np.testing.assert_allclose(t["similarity_kappa"].values, ref_k, atol=1e-4)
    again = true_agreement(t, data)
    xr.testing.assert_allclose(again["similarity_kappa"], t["similarity_kappa"])


def test_bad_kind_is_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    data, truth = make_dataset(n_judges=3, n_groups=2, n_pairs=50, n_properties=3, seed=1)
    post = _posterior(data, truth, 0.1, None, draws=5)
    with pytest.raises(BayesDissectError, match="unknown similarity kind 'cosine'; expected one "
                       "of paper, deviation, agreement, kappa"):
        similarity(post, kind="cosine", data=data)
    from bayesdissect.cli.main import main

    assert main(["similarity", str(tmp_path / "none.nc"), "--kind", "cosine"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cosine" in err


# ------------------------------------------------------------------ one small real fit
def test_agreement_intervals_cover_the_truth_on_a_real_fit() -> None:
    """Prior-regime data (simulate's defaults: the model's own prior), 10 judges -> 45
    judge pairs, the demo spec. Tolerance: the 0.1% lower tail of Binomial(45, 0.9)
    (coverage >= 0.78); the pairs share judges, so they are not independent, which the
    margin absorbs at this seed."""
    sim = bd.simulate(n_pairs=1200, judges=10, groups=2, seed=5)
    fit = bd.fit(sim.data, "demo", sampler="numpyro", chains=2, draws=300, tune=300, seed=5,
                 progressbar=False, warn=False)
    n = 45
    floor = binom.ppf(0.001, n, 0.9) / n
    for kind in PREDICTIVE_KINDS:
        df = similarity(fit, kind=kind)
        mat = sim.truth[f"similarity_{kind}"]
        true = np.array([float(mat.sel(judge=a, judge2=b))
                         for a, b in zip(df.judge_a, df.judge_b, strict=True)])
        assert len(df) == n
        cover = float(((df.lower <= true) & (true <= df.upper)).mean())
        r = float(np.corrcoef(df["mean"], true)[0, 1])
        assert cover >= floor, (kind, cover, floor)
        # the means track the truth (r >= 0.95 is the benchmark-size target; at 1,200 pairs
        # the estimation noise is larger against a spread of 45 true values: r 0.87 here)
        assert r >= 0.8, (kind, r)
    # the default of similarity() and clusters() is agreement, the kind checked above
    default = similarity(fit)
    assert default.attrs["kind"] == "agreement"
    pd.testing.assert_frame_equal(default, similarity(fit, kind="agreement"))
    assert bd.clusters(fit).kind == "agreement"
