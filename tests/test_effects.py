"""Effects and contrasts on posteriors built directly with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from _query_posteriors import make_posterior, true_cell_weights

from bayesdissect.errors import BayesDissectError
from bayesdissect.queries.effects import (
    EFFECT_COLUMNS,
    all_effects,
    contrast,
    effects,
    summarise_draws,
)
from bayesdissect.queries.weights import available_levels, level_weights


def test_summaries_match_numpy_on_known_draws() -> None:
    draws = np.random.default_rng(0).normal(0.3, 0.2, size=(4000, 3))
    s = summarise_draws(draws, prob=0.8)
    np.testing.assert_allclose(s["mean"], draws.mean(0))
    np.testing.assert_allclose(s["lower"], np.quantile(draws, 0.1, axis=0))
    np.testing.assert_allclose(s["upper"], np.quantile(draws, 0.9, axis=0))
    np.testing.assert_allclose(s["prob_positive"], (draws > 0).mean(0))
    np.testing.assert_allclose(s["pref_mean"], (100 / (1 + np.exp(-draws))).mean(0))
    np.testing.assert_allclose(s["pref_lower"], 100 / (1 + np.exp(-s["lower"])))


@pytest.mark.parametrize("level", ["global", "judge", "group", "cell"])
def test_columns_rows_and_truth_at_each_level(level: str) -> None:
    post, truth = make_posterior(noise=0.05)
    df = effects(post, level)
    assert list(df.columns) == EFFECT_COLUMNS
    n = {"global": 1, "judge": 5, "group": 3, "cell": 15}[level] * 8
    assert len(df) == n and (df.level == level).all()
    assert (df.judge != "").all() == (level in ("judge", "cell"))
    assert (df.group != "").all() == (level in ("group", "cell"))
    w = true_cell_weights(truth, 5, 3)
    expected = {  # the paper's averages of the cell weights over fitted groups / judges
        "global": w.mean((0, 1)), "judge": w.mean(1), "group": w.mean(0), "cell": w,
    }[level].ravel()
    # sum of up to 4 terms each with noise 0.05 -> posterior sd <= 0.1; 5 sd tolerance
    np.testing.assert_allclose(df["mean"], expected, atol=0.05)
    assert ((df.lower <= df["mean"]) & (df["mean"] <= df.upper)).all()
    assert ((df.pref_lower < df.pref_mean) & (df.pref_mean < df.pref_upper)).all()


def test_intervals_cover_truth_at_nominal_rate() -> None:
    # draws ~ N(truth, 0.1^2) per term at judge level (two terms): the 90% interval of a
    # posterior centred on truth + noise-free mean covers the truth nearly always; shift
    # the centre by a known amount to check coverage ~ nominal instead.
    rng = np.random.default_rng(3)
    centre_err = rng.normal(0, 1.0, size=(2000,))
    draws = centre_err[None, :] + rng.normal(0, 1.0, size=(2000, 2000))
    s = summarise_draws(draws, prob=0.9)
    cover = ((s["lower"] <= 0) & (0 <= s["upper"])).mean()
    # exact answer: P(|N(0,1)| < 1.645) = 0.9 ; binomial sd over 2000 entries ~ 0.007
    assert abs(cover - 0.9) < 0.03


def test_filters_and_unknown_labels() -> None:
    post, _ = make_posterior()
    df = effects(post, "cell", judges=["judge1"], groups=["group2"])
    assert set(df.judge) == {"judge1"} and set(df.group) == {"group2"} and len(df) == 8
    with pytest.raises(BayesDissectError, match="unknown judge 'nobody'"):
        effects(post, "judge", judges=["nobody"])
    with pytest.raises(BayesDissectError, match="unknown group"):
        effects(post, "group", groups=["nowhere"])
    with pytest.raises(BayesDissectError, match="unknown level"):
        effects(post, "planet")
    with pytest.raises(BayesDissectError, match="--judge does not apply"):
        effects(post, "global", judges=["judge1"])
    with pytest.raises(BayesDissectError, match="between 0 and 1"):
        effects(post, "judge", prob=1.5)


def test_paper_and_pooled_specs_answer_their_levels() -> None:
    paper, truth = make_posterior(spec="paper", noise=0.02)
    assert available_levels(paper) == ("global", "judge", "group", "cell")
    df = effects(paper, "judge")
    np.testing.assert_allclose(df["mean"], truth["w_cell"].mean(1).ravel(), atol=0.02)
    pooled, ptruth = make_posterior(spec="pooled", noise=0.02)
    assert available_levels(pooled) == ("global",)
    np.testing.assert_allclose(effects(pooled, "global")["mean"], ptruth["mu"], atol=0.02)
    with pytest.raises(BayesDissectError, match="no 'judge' level"):
        effects(pooled, "judge")
    assert set(all_effects(pooled).level) == {"global"}
    assert set(all_effects(paper).level) == {"global", "judge", "group", "cell"}


def test_levels_average_cells_draw_by_draw() -> None:
    # (population=True, a new judge's predictive weights: tests/test_population.py)
    post, _ = make_posterior()
    cell = level_weights(post, "cell")
    for level, dims in (("judge", ["group"]), ("group", ["judge"]),
                        ("global", ["judge", "group"])):
        w = level_weights(post, level)
        xr.testing.assert_allclose(w, cell.mean(dims).transpose(*w.dims))
    pop = effects(post.assign(sigma_judge=post.mu * 0 + 0.5, sigma_cell=post.mu * 0 + 0.2),
                  "group", population=True)
    assert list(pop.columns) == EFFECT_COLUMNS and len(pop) == 24


def test_contrast_known_difference_and_order() -> None:
    post, truth = make_posterior(noise=0.05, twins={3: 0})
    df = contrast(post, "judge0", "judge1")
    w = true_cell_weights(truth, 5, 3)
    true = (w[0] - w[1]).mean(0)  # group-averaged difference
    got = df.set_index("property")["mean"].reindex([f"p{k}" for k in range(8)]).to_numpy()
    np.testing.assert_allclose(got, true, atol=0.04)
    assert (df.prob_a_greater[df["mean"] > 0.3] > 0.95).all()
    # credible ones first, ordered by interval distance from zero
    dist = np.where(df.lower > 0, df.lower, np.where(df.upper < 0, -df.upper, 0))
    assert (np.diff(dist) <= 1e-12).all()
    # a twin: every difference is exactly zero, nothing credible
    tw = contrast(post, "judge3", "judge0", group="group1")
    assert (tw["mean"] == 0).all() and not tw.credible.any() and (tw.group == "group1").all()
    with pytest.raises(BayesDissectError, match="two different judges"):
        contrast(post, "judge1", "judge1")
    with pytest.raises(BayesDissectError, match="unknown judge"):
        contrast(post, "judge1", "ghost")


# ------------------------------------------------------------------ a real small fit
def test_real_fit_intervals_cover_the_truth(query_fits: dict) -> None:
    f = query_fits
    truth = f["truth"]
    judge = effects(f["hier"], "judge", prob=0.9)
    true_j = truth["w"].mean(1).ravel()  # judge averaged over groups; dataset order
    cover_j = ((judge.lower <= true_j) & (true_j <= judge.upper)).mean()
    cell = effects(f["hier"], "cell", prob=0.9)
    true_c = truth["w"].ravel()
    cover_c = ((cell.lower <= true_c) & (true_c <= cell.upper)).mean()
    # nominal 0.9; 25 judge entries, 75 cell entries, correlated through shared terms
    # (a shift in one property moves all judges): a sensible floor, not the nominal rate
    assert cover_j >= 0.6 and cover_c >= 0.75, (cover_j, cover_c)
    # ... and the intervals are informative, not trivially wide
    assert (cell.upper - cell.lower).median() < 2.0
    # the pooled fit answers only the global level
    assert set(all_effects(f["pooled"]).level) == {"global"}


def test_pref_mean_is_closer_to_50_than_the_papers_plug_in() -> None:
    # sigmoid is concave for w > 0 and convex for w < 0 (and sigmoid - 1/2 is odd), so for a
    # posterior on one side of 0 or symmetric about its mean the average of 100*sigmoid(w)
    # lies between 50 and 100*sigmoid(posterior mean of w): the paper's number is farther out
    import bayesdissect.queries.effects as eff

    rng = np.random.default_rng(5)
    z = rng.normal(size=(20000, 1))
    cases = [m + s * z for m in (-2.0, -0.5, -0.1, 0.1, 0.5, 2.0) for s in (0.1, 0.5, 1.5)]
    cases += [sign * rng.lognormal(mean, 0.8, size=(20000, 1))  # one-sided, skewed
              for sign in (-1, 1) for mean in (-1.0, 0.5)]
    for draws in cases:
        s = summarise_draws(draws)
        plug_in = 100 / (1 + np.exp(-draws.mean(0)))
        assert (np.abs(s["pref_mean"] - 50) < np.abs(plug_in - 50)).all()
    note = " ".join(eff.__doc__.split())
    assert "pref_mean is closer to 50" in note and "farther from 50" in note
