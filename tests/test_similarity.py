"""Draw-by-draw similarity on posteriors built directly with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from _query_posteriors import make_posterior, true_cell_weights

from bayesdissect.errors import BayesDissectError
from bayesdissect.queries.similarity import (
    SIMILARITY_COLUMNS,
    similarity,
    similarity_draws,
    similarity_matrix,
)


def _paper_similarity(w: np.ndarray) -> np.ndarray:
    """Reference: loops, np.corrcoef per group, mean over groups. w (J, G, K)."""
    j, g, _ = w.shape
    out = np.zeros((j, j))
    for gi in range(g):
        out += np.corrcoef(w[:, gi, :])
    return out / g


def test_core_matches_corrcoef_reference() -> None:
    w = np.random.default_rng(0).normal(size=(7, 6, 4, 29))  # 7 draws, 6 judges, 4 groups
    got = similarity_draws(w, chunk=3)
    for s in range(7):
        np.testing.assert_allclose(got[s], _paper_similarity(w[s]), atol=1e-5)


def test_table_columns_pairs_and_of_means() -> None:
    post, truth = make_posterior(n_judges=6, noise=0.1)
    df = similarity(post, kind="paper")
    assert list(df.columns) == SIMILARITY_COLUMNS
    assert len(df) == 15 and (df.judge_a < df.judge_b).all()
    # of_means is the paper's similarity of the posterior-mean cell weights
    wmean = (post.mu + post.judge_offset + post.group_offset + post.cell_offset).mean(
        ("chain", "draw")).transpose("judge", "group", "property").values
    ref = _paper_similarity(wmean)
    np.testing.assert_allclose(df.of_means, ref[np.triu_indices(6, 1)], atol=1e-5)
    assert ((df.lower <= df["mean"]) & (df["mean"] <= df.upper)).all()
    # noise shrinks per-draw correlations: mean of correlations <= correlation of means
    assert (df["mean"] <= df.of_means + 1e-6).mean() > 0.8


def test_twin_has_similarity_one_and_truth_is_covered() -> None:
    post, truth = make_posterior(n_judges=6, noise=0.05, twins={5: 2})
    df = similarity(post, kind="paper").set_index(["judge_a", "judge_b"])
    row = df.loc[("judge2", "judge5")]
    assert row["mean"] == pytest.approx(1.0, abs=1e-5) and row.lower > 0.9999
    true = _paper_similarity(true_cell_weights(truth, 6, 3))
    ia, ib = np.triu_indices(6, 1)
    inside = (df.lower.to_numpy() - 0.02 <= true[ia, ib]) & (true[ia, ib] <= df.upper + 0.02)
    assert inside.mean() >= 0.8


def test_deviation_kind_removes_shared_weights() -> None:
    # big shared mu and group terms: paper similarity is high for everyone, deviation is not
    post, truth = make_posterior(n_judges=6, noise=0.02, seed=4)
    post = post.assign(mu=post.mu * 4, group_offset=post.group_offset * 4)
    paper = similarity(post, kind="paper")
    dev = similarity(post, kind="deviation")
    assert paper["mean"].mean() > dev["mean"].mean() + 0.3
    jo = truth["judge_offset"][:, None] + truth["cell_offset"]
    ref = _paper_similarity(jo)[np.triu_indices(6, 1)]
    np.testing.assert_allclose(dev.of_means, ref, atol=0.05)


def test_single_group_and_matrix() -> None:
    post, _ = make_posterior(noise=0.05, twins={4: 1})
    one = similarity(post, kind="paper", group="group1")
    w = (post.mu + post.judge_offset + post.group_offset + post.cell_offset).sel(
        group="group1").mean(("chain", "draw")).transpose("judge", "property").values
    np.testing.assert_allclose(one.of_means, np.corrcoef(w)[np.triu_indices(5, 1)], atol=1e-5)
    mat = similarity_matrix(post, "paper")
    assert mat.shape == (5, 5) and np.allclose(np.diag(mat), 1.0)
    np.testing.assert_allclose(mat.values, mat.values.T)


def test_paper_spec_and_errors() -> None:
    paper, _ = make_posterior(spec="paper", twins={3: 0})
    df = similarity(paper, kind="deviation").set_index(["judge_a", "judge_b"])
    assert df.loc[("judge0", "judge3"), "mean"] == pytest.approx(1.0, abs=1e-5)
    pooled, _ = make_posterior(spec="pooled")
    with pytest.raises(BayesDissectError, match="no judge-level terms"):
        similarity(pooled)
    post, _ = make_posterior()
    with pytest.raises(BayesDissectError, match="unknown similarity kind"):
        similarity(post, kind="cosine")
    with pytest.raises(BayesDissectError, match="unknown group"):
        similarity(post, kind="paper", group="Mars")


# ------------------------------------------------------------------ a real small fit
def test_real_fit_twin_is_most_similar_and_truth_covered(query_fits: dict) -> None:
    from _query_fits import SOURCE, TWIN

    f = query_fits
    df = similarity(f["hier"], kind="paper")
    judges = [str(j) for j in f["data"].judge.values]
    a, b = judges[SOURCE], judges[TWIN]
    twin = df[(df.judge_a == a) & (df.judge_b == b)].iloc[0]
    assert twin["mean"] > 0.9 and twin.upper > 0.97
    others = df[((df.judge_a == a) | (df.judge_b == a)) & ~((df.judge_a == a) & (df.judge_b == b))]
    assert twin["mean"] > others["mean"].max()
    true = _paper_similarity(f["truth"]["w"])[np.triu_indices(len(judges), 1)]
    inside = ((df.lower - 0.02 <= true) & (true <= df.upper + 0.02)).mean()
    assert inside >= 0.6, inside
