"""``similarity(kind="deviation")`` on zero-sum fits (issue 10, item 4).

Zero-sum deviations sum to zero over the judges, so two judges whose deviations are
independent draws correlate at about -1/(J-1) after that centring. Synthetic posteriors
(no sampling) with independent deviations per draw have true similarity 0.

Tolerance: per draw and group, the Pearson r of two K = 29-vectors has sd at most
1/sqrt(K - 1) = 0.19; averaged over G = 3 groups and S = 400 independent draws that is
0.19 / sqrt(1200) = 0.0055 per pair (5 sd: 0.027); Pearson's small-sample bias at
rho = -1/(J-1) is at most |rho| (1 - rho^2) / (2 (K - 1)) = 0.0067 (J = 3). So 0.035.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from _query_posteriors import make_posterior

from bayesdissect.queries.similarity import similarity, similarity_draws
from bayesdissect.queries.weights import deviation_weights, flat_draws

K, G, CHAINS, DRAWS = 29, 3, 2, 200
TOL = 0.035


def independent_deviations(n_judges: int, seed: int = 0,
                           twins: dict[int, int] | None = None) -> xr.Dataset:
    """Posterior draws of a zero-sum fit whose judges' deviations are independent in every
    draw: e ~ Normal(0, s_k^2) iid over judges, judge_offset = e minus its judge mean; cell
    offsets likewise, centred over judges and groups. ``twins`` copies one judge's
    uncentred draws onto another (identical judges)."""
    rng = np.random.default_rng(seed)
    j, s = n_judges, CHAINS * DRAWS
    scale = rng.uniform(0.3, 1.0, K)
    e = rng.normal(size=(s, j, K)) * scale
    h = 0.5 * rng.normal(size=(s, j, G, K)) * scale
    for a, b in (twins or {}).items():
        e[:, a], h[:, a] = e[:, b], h[:, b]
    judge = e - e.mean(1, keepdims=True)
    cell = h - h.mean(1, keepdims=True) - h.mean(2, keepdims=True) + h.mean((1, 2), keepdims=True)
    group = rng.normal(size=(s, G, K))
    group -= group.mean(1, keepdims=True)
    cd = ("chain", "draw")

    def shaped(x: np.ndarray) -> np.ndarray:
        return x.reshape((CHAINS, DRAWS) + x.shape[1:])

    return xr.Dataset(
        {"mu": (cd + ("property",), shaped(rng.normal(size=(s, K)))),
         "judge_offset": (cd + ("judge", "property"), shaped(judge)),
         "group_offset": (cd + ("group", "property"), shaped(group)),
         "cell_offset": (cd + ("judge", "group", "property"), shaped(cell))},
        coords={"judge": [f"judge{i}" for i in range(j)],
                "group": [f"group{i}" for i in range(G)],
                "property": [f"p{i}" for i in range(K)]})


@pytest.mark.parametrize("n_judges", [3, 8])
def test_independent_deviations_have_similarity_zero(n_judges: int) -> None:
    post = independent_deviations(n_judges)
    df = similarity(post, kind="deviation")
    assert len(df) == n_judges * (n_judges - 1) // 2
    np.testing.assert_array_less(np.abs(df["mean"].to_numpy()), TOL)
    # the plain per-draw correlation of the zero-sum deviations (the estimator before the
    # correction) sits at the centring baseline -1/(J-1)
    raw = similarity_draws(flat_draws(deviation_weights(post)))
    ia, ib = np.triu_indices(n_judges, 1)
    np.testing.assert_allclose(raw[:, ia, ib].mean(0), -1 / (n_judges - 1), atol=TOL)


def test_identical_judges_stay_at_one_and_intervals_hold() -> None:
    post = independent_deviations(5, seed=1, twins={4: 1})
    df = similarity(post, kind="deviation").set_index(["judge_a", "judge_b"])
    row = df.loc[("judge1", "judge4")]
    assert row["mean"] == pytest.approx(1.0, abs=1e-5)
    assert row["of_means"] == pytest.approx(1.0, abs=1e-5)
    assert ((df.lower <= df["mean"]) & (df["mean"] <= df.upper)).all()


def test_two_judges_carry_no_deviation_similarity() -> None:
    # with two judges the zero-sum deviations are exact negatives (r = -1 in every draw)
    df = similarity(independent_deviations(2), kind="deviation")
    assert df["mean"].iloc[0] == pytest.approx(0.0, abs=1e-6)


def test_iid_offsets_are_left_as_they_are() -> None:
    # offsets that do not sum to zero over judges measure deviations from mu itself: no
    # centring, no correction (the plain Pearson correlation, as for a simulated truth)
    post, _ = make_posterior(n_judges=4, noise=0.05)
    df = similarity(post, kind="deviation")
    raw = similarity_draws(flat_draws(deviation_weights(post)))
    ia, ib = np.triu_indices(4, 1)
    np.testing.assert_allclose(df["mean"], raw[:, ia, ib].mean(0), atol=1e-6)


def test_cli_help_states_the_correction(capsys: pytest.CaptureFixture) -> None:
    from bayesdissect.cli.main import main

    with pytest.raises(SystemExit):
        main(["similarity", "--help"])
    assert "-1/(J-1)" in " ".join(capsys.readouterr().out.split())
