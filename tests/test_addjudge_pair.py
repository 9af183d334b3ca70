"""add-judge's fast path on a fit with a pair level (issue 14): each draw of the new
judge's parameters is conditional on the same draw of the fit's pair effects u, which
every judge shares (the cut, as for mu and the group offsets). Leaving u out attenuates
the new judge's weights towards 0, as a logistic regression's are when a shared random
effect is left out; a test with u in the data shows both."""

from __future__ import annotations

import numpy as np
import xarray as xr
from test_addjudge import CHAINS, DRAWS, _letters, synthetic_fit

from bayesdissect.model.fitted import Fit
from bayesdissect.queries.addjudge import add_judge
from bayesdissect.queries.laplace import NewJudgeProblem
from bayesdissect.queries.weights import cell_weights

PAIR_SD = 1.5


def _pair_fit(seed: int = 5):  # noqa: ANN202
    """synthetic_fit's held-out judge relabelled with a latent pair quality u ~ N(0, 1.5)
    added to its true logits; the fit's posterior gets u + noise (sd 0.03) as pair_effect.
    Returns (fit with the pair level, the same fit without it, held-out labels, truth)."""
    fit, data, truth = synthetic_fit(n_pairs=2400, seed=seed)
    rng = np.random.default_rng(seed + 7)
    u = rng.normal(0.0, PAIR_SD, data.sizes["pair"])
    p = np.clip(truth["p"][:, -1], 1e-9, 1 - 1e-9)
    logit = np.log(p / (1 - p)) + u
    y_held = (rng.random(u.size) < 1 / (1 + np.exp(-logit))).astype(float)
    post = fit.posterior.assign(pair_effect=xr.DataArray(
        u[None, None] + 0.03 * rng.normal(size=(CHAINS, DRAWS, u.size)),
        dims=("chain", "draw", "pair"), coords={"pair": data["pair"].values}))
    spec = fit.spec.replace_level("pair", sigma_prior="halfnormal", sigma_scale=1.0)
    with_u = Fit(data=fit.data, spec=spec, posterior=post, diagnostics={}, settings={})
    return with_u, fit, _letters(y_held), truth


def _slope(new: Fit, name: str, truth: dict) -> float:
    """Least-squares slope through 0 of the new judge's posterior-mean cell weights on
    the true ones (48 weights)."""
    w = cell_weights(new.posterior).sel(judge=name).mean(("chain", "draw")).values
    t = truth["w"][-1]
    return float((w * t).sum() / (t * t).sum())


def test_fast_path_conditions_on_the_pair_effects() -> None:
    """With u the slope of the estimated on the true weights is 1 within its noise (with
    ~600 labels per group the posterior sd of a weight is ~0.12, so the slope over 48
    weights of sd ~0.6 has sd ~0.03: allowed 1 +- 0.12); without u it is attenuated to
    about 1 / sqrt(1 + 0.35 sd^2) = 0.75 for sd 1.5 (the logistic-normal rule): allowed
    <= 0.88, so a fast path that ignores u fails the first bound."""
    with_u, without_u, labels, truth = _pair_fit()
    name = "new-judge"
    a = add_judge(with_u, labels, name, seed=1)
    b = add_judge(without_u, labels, name, seed=1)
    s_with, s_without = _slope(a, name, truth), _slope(b, name, truth)
    assert abs(s_with - 1.0) < 0.12, s_with
    assert s_without < 0.88, s_without
    info = a.diagnostics["add_judge"]
    assert info["pair_effect"].startswith("paired draws") and info["max_grad_at_mode"] < 1e-4
    assert b.diagnostics["add_judge"]["pair_effect"].startswith("none")
    # the fit's pair effects are a population term: carried over unchanged
    np.testing.assert_array_equal(a.posterior["pair_effect"].values,
                                  with_u.posterior["pair_effect"].values)


def test_offset_enters_the_mode() -> None:
    """The mode of the conditional posterior with an offset solves its score equations:
    the gradient of sum(y eta - log(1 + e^eta)) - |z|^2 / 2 with eta including the offset
    vanishes there, and the mode differs from the one without the offset."""
    rng = np.random.default_rng(0)
    n, k = 300, 3
    x = rng.choice([-1.0, 0.0, 1.0], size=(n, k))
    off = rng.normal(0, 2.0, (1, n))
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ np.array([0.5, -0.3, 0.2]) + off[0])))) * 1.0
    groups = [slice(0, n)]
    xx = (x[:, :, None] * x[:, None, :]).reshape(n, k * k)
    m = np.zeros((1, 1, k))
    sj = np.full((1, k), 0.7)
    z0 = {"b": np.zeros(1), "a": np.zeros((1, k))}
    prob = NewJudgeProblem(x, y, groups, xx, m, sj, None, 0.5, offset=off)
    z, e, _ = prob.mode(z0, None, max_iter=100, tol=1e-10)
    w = z["a"][0] * 0.7
    eta = 0.5 * z["b"][0] + x @ w + off[0]
    np.testing.assert_allclose(e[0], eta, atol=1e-10)
    r = y - 1 / (1 + np.exp(-eta))
    np.testing.assert_allclose(0.7 * (r @ x) - z["a"][0], 0.0, atol=1e-7)
    np.testing.assert_allclose(0.5 * r.sum() - z["b"][0], 0.0, atol=1e-7)
    plain = NewJudgeProblem(x, y, groups, xx, m, sj, None, 0.5)
    z_plain, _, _ = plain.mode(z0, None, max_iter=100, tol=1e-10)
    assert np.abs(z_plain["a"] - z["a"]).max() > 0.05
