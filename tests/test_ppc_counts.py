"""Predictive checks that can fail (issue 14, item 4): the distribution over pairs of how
many judges chose response 1, calibration from leave-one-out probabilities, and the
dependence / miscalibration flags. Posteriors here are point masses at the simulated
truth (every draw the same), so the checks' null distributions are known exactly: with
theta fixed at the truth, observed and replicated labels are exchangeable and every
p-value is uniform."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayesdissect.data.simulate import simulate
from bayesdissect.errors import BayesDissectError
from bayesdissect.queries.predictive import (
    DEPENDENCE_P,
    MISCALIBRATION_P,
    REMEDY,
    loo,
    ppc,
)

DRAWS = 100  # per chain, 2 chains: p-values in steps of 1 / 200


def _truth_posterior(truth: xr.Dataset, *, with_pair: bool, scale: float = 1.0
                     ) -> xr.Dataset:
    """A 'posterior' whose every draw is the truth: w_cell = the true weights (times
    ``scale``), the true bias, and the true pair effects if ``with_pair``."""
    def rep(da: xr.DataArray) -> xr.DataArray:
        return da.expand_dims(chain=2, draw=DRAWS).copy()
    out = {"w_cell": rep(scale * truth["w"]), "bias": rep(scale * truth["bias"])}
    if with_pair:
        out["pair_effect"] = rep(truth["pair_effect"])
    return xr.Dataset(out)


def _sim(seed: int, pair_sd: float, n_pairs: int = 200, judges: int = 6):  # noqa: ANN202
    return simulate(n_pairs=n_pairs, judges=judges, groups=2, seed=seed, pair_sd=pair_sd)


def _dep(res) -> tuple[bool, float]:  # noqa: ANN001
    row = res.flags.set_index("check").loc["dependence"]
    return bool(row.flagged), float(row.p_value)


def test_dependence_p_is_uniform_without_pair_effects() -> None:
    """30 datasets without pair effects, checked at their truth: the dependence p-value
    is uniform, so its mean is 0.5 +- 3 sd (sd sqrt(1/12/30) = 0.053) and the number
    below 0.1 is Binomial(30, 0.1) (<= 9 with probability > 0.999)."""
    ps = []
    for seed in range(30):
        sim = _sim(seed, 0.0)
        res = ppc(_truth_posterior(sim.truth, with_pair=False), data=sim.data, seed=seed,
                  n_resamples=20)
        ps.append(_dep(res)[1])
    ps = np.array(ps)
    assert abs(ps.mean() - 0.5) < 3 * np.sqrt(1 / 12 / 30)
    assert (ps < 0.1).sum() <= 9
    assert (ps <= DEPENDENCE_P).sum() <= 2  # Binomial(30, 0.005): P(>= 3) < 0.001


def test_pair_effects_left_out_are_flagged_and_kept_are_not() -> None:
    """Data with pair effects (sd 1): the true weights without u are flagged for
    dependence every time (remedy: the hierarchical-pair spec), with u never."""
    for seed in range(5):
        sim = _sim(seed, 1.0)
        without = ppc(_truth_posterior(sim.truth, with_pair=False), data=sim.data,
                      seed=seed, n_resamples=20)
        flagged, p = _dep(without)
        assert flagged and p <= DEPENDENCE_P
        row = without.flags.set_index("check").loc["dependence"]
        assert row.remedy == REMEDY["dependence"] == "hierarchical-pair"
        assert "hierarchical-pair" in row.note
        exc = without.dispersion.set_index("statistic").loc["count_excess_variance"]
        assert exc.observed > 3 and abs(exc.rep_mean) < 0.5  # standardised: ~N(0, 1)
        with_u = ppc(_truth_posterior(sim.truth, with_pair=True), data=sim.data, seed=seed,
                     n_resamples=20)
        flagged, p = _dep(with_u)
        assert not flagged and with_u.flags.set_index("check").loc["dependence",
                                                                     "remedy"] == ""


def test_pair_count_tables_match_brute_force() -> None:
    sim = _sim(1, 1.0, n_pairs=120, judges=5)
    data = sim.data
    res = ppc(_truth_posterior(sim.truth, with_pair=True), data=data, n_resamples=10)
    y = data["y"].transpose("pair", "judge").values
    counts = np.nansum(y, axis=1).astype(int)
    pc = res.pair_counts
    assert list(pc.n_chose_1) == list(range(6))
    np.testing.assert_array_equal(pc.observed, np.bincount(counts, minlength=6))
    assert pc.rep_mean.sum() == pytest.approx(data.sizes["pair"])
    disp = res.dispersion.set_index("statistic")
    assert set(disp.index) == {"count_excess_variance", "count_variance", "count_chi2"}
    assert disp.loc["count_variance", "observed"] == pytest.approx(counts.var())
    assert set(res.tables()) >= {"counts", "dispersion", "reliability", "flags"}
    assert {"dependence", "miscalibration"} <= set(res.flagged())


def test_calibration_comes_from_loo_and_flags_overconfidence() -> None:
    """Calibration uses the PSIS-LOO probabilities (exp(elpd_i) of the label, or its
    complement). At the truth it is not flagged; with every logit tripled (overconfident)
    the PAV miscalibration p-value is at its floor 1/201 and the pooled-weights fit is
    sent to the hierarchical spec."""
    sim = _sim(2, 0.0, n_pairs=300)
    data = sim.data
    good = _truth_posterior(sim.truth, with_pair=False)
    lr = loo(good, data=data)
    a = ppc(good, data=data, loo_result=lr)
    b = ppc(good, data=data)
    assert a.calibration.equals(b.calibration)
    assert a.calibration.attrs["source"] == "psis-loo"
    y = lr.observed.astype(float)
    p1 = np.where(y > 0.5, np.exp(lr.elpd_i.values), 1 - np.exp(lr.elpd_i.values))
    cal = a.calibration
    assert cal.n.sum() == y.size
    assert (cal.predicted * cal.n).sum() == pytest.approx(p1.sum(), rel=1e-9)
    mis = a.flags.set_index("check").loc["miscalibration"]
    assert not mis.flagged and mis.p_value > MISCALIBRATION_P
    rel = a.reliability
    assert rel.n.sum() == y.size and np.all(np.diff(rel.calibrated) > 0)
    assert rel.attrs["brier"] == pytest.approx(
        rel.attrs["mcb"] - rel.attrs["dsc"] + rel.attrs["unc"])
    bad = ppc(_truth_posterior(sim.truth, with_pair=False, scale=3.0), data=data)
    mis = bad.flags.set_index("check").loc["miscalibration"]
    assert mis.flagged and mis.p_value == pytest.approx(1 / 201)
    assert mis.remedy == REMEDY["miscalibration"]


def test_loo_result_of_other_data_is_refused() -> None:
    sim = _sim(3, 0.0, n_pairs=80)
    other = _sim(4, 0.0, n_pairs=60)
    post = _truth_posterior(other.truth, with_pair=False)
    with pytest.raises(BayesDissectError, match="loo_result has .* pointwise values"):
        ppc(_truth_posterior(sim.truth, with_pair=False), data=sim.data,
            loo_result=loo(post, data=other.data))
