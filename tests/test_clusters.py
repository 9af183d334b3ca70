"""Clustering with co-clustering probabilities on posteriors with known structure."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from _query_posteriors import make_posterior

from bayesdissect.errors import BayesDissectError
from bayesdissect.queries.clusters import K_RULE, clusters, silhouette


def _blocks(noise: float = 0.05, seed: int = 0) -> xr.Dataset:
    """9 judges in 3 well-separated blocks of 3 (judge offsets = block centre + small
    spread); no shared terms, so the paper similarity reflects the blocks."""
    rng = np.random.default_rng(seed)
    k, g = 12, 2
    centres = rng.normal(0, 1, (3, k))
    jo = np.repeat(centres, 3, axis=0) + rng.normal(0, 0.15, (9, k))
    draws = jo[None, None] + noise * rng.normal(size=(2, 150, 9, k))
    return xr.Dataset(
        {"mu": (("chain", "draw", "property"), np.zeros((2, 150, k))),
         "judge_offset": (("chain", "draw", "judge", "property"), draws),
         "group_offset": (("chain", "draw", "group", "property"), np.zeros((2, 150, g, k)))},
        coords={"judge": [f"j{i}" for i in range(9)], "group": ["a", "b"],
                "property": [f"p{i}" for i in range(k)]})


def test_recovers_blocks_with_default_k() -> None:
    res = clusters(_blocks(), kind="paper")
    assert res.k == 3 and res.rule == K_RULE
    assert [set(m.split(", ")) for m in res.clusters.members] == [
        {"j0", "j1", "j2"}, {"j3", "j4", "j5"}, {"j6", "j7", "j8"}]
    assert (res.clusters.stability > 0.95).all()
    co = res.coclustering.values
    assert co[0, 1] > 0.95 and co[0, 3] < 0.05
    np.testing.assert_allclose(np.diag(co), 1.0)
    assert res.linkage.shape == (8, 4)
    assert res.silhouette.idxmax() == 3
    pairs = res.pairs()
    assert len(pairs) == 36 and pairs.same_cluster.sum() == 9
    a = res.assignments()
    assert list(a.columns) == ["judge", "cluster", "cluster_size", "cluster_stability",
                               "mate_prob"]


def test_noisy_posterior_lowers_stability_and_fixed_k() -> None:
    sharp = clusters(_blocks(noise=0.05), kind="paper", k=3)
    vague = clusters(_blocks(noise=1.2), kind="paper", k=3)
    assert vague.clusters.stability.mean() < sharp.clusters.stability.mean()
    two = clusters(_blocks(), kind="paper", k=2)
    assert two.k == 2 and two.rule == "given" and two.clusters["size"].sum() == 9


def test_twin_coclusters_with_probability_one() -> None:
    post, _ = make_posterior(n_judges=7, noise=0.2, twins={6: 2})
    res = clusters(post, k=3, kind="paper")
    assert res.coclustering.sel(judge="judge2", judge2="judge6").item() == 1.0
    lab = dict(zip(res.judges, res.labels, strict=True))
    assert lab["judge2"] == lab["judge6"]


def test_silhouette_known_value() -> None:
    # two tight pairs far apart: a = 1, b = 10 for everyone -> s = 0.9
    d = np.array([[0, 1, 10, 10], [1, 0, 10, 10], [10, 10, 0, 1], [10, 10, 1, 0]], float)
    assert silhouette(d, np.array([1, 1, 2, 2])) == pytest.approx(0.9)


def test_errors_and_dendrogram() -> None:
    res = clusters(_blocks(), kind="paper", k=3)
    fig = res.plot_dendrogram()
    assert fig.axes
    with pytest.raises(BayesDissectError, match="--k must be between 1"):
        clusters(_blocks(), kind="paper", k=20)
    pooled, _ = make_posterior(spec="pooled")
    with pytest.raises(BayesDissectError, match="no judge-level terms"):
        clusters(pooled)


def test_fast_cut_matches_scipy_public_api() -> None:
    from scipy.cluster.hierarchy import fcluster, linkage

    from bayesdissect.queries.clusters import _average_cut

    rng = np.random.default_rng(5)
    for n, k in ((5, 2), (12, 4), (33, 7)):
        cut = _average_cut(n, k)
        for _ in range(20):
            d = rng.random(n * (n - 1) // 2)
            np.testing.assert_array_equal(cut(d), fcluster(linkage(d, "average"), k,
                                                           criterion="maxclust"))


# ------------------------------------------------------------------ a real small fit
def test_real_fit_twin_lands_in_its_judges_cluster(query_fits: dict) -> None:
    from _query_fits import SOURCE, TWIN

    f = query_fits
    res = clusters(f["hier"])
    assert res.labels[SOURCE] == res.labels[TWIN]
    assert res.coclustering.values[SOURCE, TWIN] >= 0.8
