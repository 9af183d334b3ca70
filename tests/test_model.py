"""The model builder: dims and variables per spec, the likelihood against numpy, masking,
no design matrix, bad data. No sampling here: every test takes well under a second."""

from __future__ import annotations

import numpy as np
import pytensor
import pytest
from conftest import make_dataset
from pytensor.graph.traversal import ancestors
from pytensor.tensor.variable import TensorConstant

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.build import build_model, prepare_data
from bayesdissect.model.specs import load_spec


def _free(model) -> set[str]:  # noqa: ANN001
    return {v.name for v in model.free_RVs}


def test_variables_and_dims_follow_the_spec() -> None:
    data, _ = make_dataset(3, 2, 60, 4, seed=0)
    h = build_model("hierarchical", data)
    named = set(h.named_vars)
    for name in ("mu", "judge_offset", "group_offset", "cell_offset", "bias", "sigma_judge",
                 "sigma_group", "sigma_cell"):
        assert name in named
    assert h.named_vars_to_dims["judge_offset"] == ("judge", "property")
    assert h.named_vars_to_dims["cell_offset"] == ("judge", "group", "property")
    assert h.named_vars_to_dims["sigma_cell"] == ("property",)
    assert list(h.coords["judge"]) == list(data.judge.values)
    assert list(h.coords["group"]) == sorted(set(data.group.values))
    assert list(h.coords["property"]) == list(data.property.values)
    assert _free(build_model("paper", data)) == {"w_cell"}
    assert _free(build_model("pooled", data)) == {"mu", "bias"}
    no_cell = load_spec("hierarchical").replace_level("cell").replace_level("bias")
    m = build_model(no_cell, data)
    assert "cell_offset" not in m.named_vars and "sigma_cell" not in m.named_vars
    assert "bias" not in m.named_vars
    nc = load_spec("hierarchical").replace_level("judge", parameterization="noncentered")
    assert "z_judge" in _free(build_model(nc, data))


def _loglik_numpy(x: np.ndarray, y: np.ndarray, gidx: np.ndarray, w: np.ndarray,
                  bias: np.ndarray) -> float:
    logits = np.einsum("ik,jik->ij", x, w[:, gidx, :]) + bias[None, :]
    obs = ~np.isnan(y)
    ll = np.where(y == 1, -np.logaddexp(0, -logits), -np.logaddexp(0, logits))
    return float(ll[obs].sum())


@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_likelihood_matches_numpy_and_masks_missing_labels(missing: float) -> None:
    data, truth = make_dataset(4, 3, 120, 5, seed=2, missing=missing)
    model = build_model("paper", data)
    n_obs = int((~np.isnan(data.y.values)).sum())
    assert model["y"].shape.eval()[0] == n_obs  # only observed entries, nothing imputed
    logp = model.compile_logp(vars=[model["y"]])
    val = logp({"w_cell": truth["w"]})
    ref = _loglik_numpy(data.x.values, data.y.values, truth["group_index"], truth["w"],
                        np.zeros(4))
    assert np.isclose(val, ref, rtol=1e-10)
    # bias enters as an additive logit shift per judge
    pooled = build_model("pooled", data)
    mu = np.linspace(-1, 1, 5)
    bias = np.array([0.3, -0.2, 0.0, 0.5])
    val = pooled.compile_logp(vars=[pooled["y"]])({"mu": mu, "bias": bias})
    w = np.broadcast_to(mu, truth["w"].shape)
    assert np.isclose(val, _loglik_numpy(data.x.values, data.y.values, truth["group_index"],
                                         w, bias), rtol=1e-10)


def test_observed_entries_map_back_to_pairs_and_judges() -> None:
    data, _ = make_dataset(3, 3, 50, 3, seed=4, missing=0.2)
    md = prepare_data(data)
    model = build_model("pooled", data)
    entries = md.observed_entries(data.pair.values)
    y_model = model.rvs_to_values[model["y"]].data
    y_data = data.y.sel(pair=entries.pair.to_xarray(), judge=entries.judge.to_xarray()).values
    np.testing.assert_array_equal(y_model, y_data)
    assert len(entries) == int((~np.isnan(data.y.values)).sum())


def test_no_design_matrix_in_the_graph() -> None:
    """The largest constant is the label vector (pairs x judges), never (pairs*judges) x K."""
    data, _ = make_dataset(6, 4, 400, 8, seed=5)
    model = build_model("hierarchical", data)
    logp = model.logp()
    biggest = max(int(np.prod(c.data.shape)) for c in ancestors([logp])
                  if isinstance(c, TensorConstant))
    assert biggest <= 400 * max(6, 8)
    grad = pytensor.grad(logp, model.value_vars[0])
    assert grad is not None


@pytest.mark.parametrize(("change", "needle"), [
    (lambda d: d.assign(x=d.x.where(d.pair != 3)), "NaN or infinite"),
    (lambda d: d.assign(y=d.y.where(d.pair != 3, 2.0)), "other than 0, 1"),
    (lambda d: d.drop_vars("group"), "missing variable 'group'"),
    (lambda d: d.assign(y=d.y * np.nan), "no observed labels"),
])
def test_bad_data_raises_one_line(change, needle: str) -> None:  # noqa: ANN001
    data, _ = make_dataset(2, 2, 30, 3, seed=6)
    with pytest.raises(BayesDissectError, match=needle) as err:
        build_model("pooled", change(data))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("missing", [0.0, 0.25])
def test_potential_likelihood_equals_observed_and_float32_is_close(missing: float) -> None:
    """The fast per-group masked likelihood (what ``fit`` samples) is the same density as
    the observed-variable one; in float32 (float64 sums) it differs by rounding only."""
    data, truth = make_dataset(4, 3, 150, 5, seed=8, missing=missing)
    point = {"w_cell": truth["w"]}
    ref = build_model("paper", data).compile_logp()(point)
    fast = build_model("paper", data, likelihood="potential").compile_logp()(point)
    assert np.isclose(fast, ref, rtol=1e-12)
    with pytensor.config.change_flags(floatX="float32"):
        m32 = build_model("paper", data, likelihood="potential")
        val = m32.compile_logp()({"w_cell": truth["w"].astype(np.float32)})
    assert abs(val - ref) < 1e-5 * abs(ref)


def test_pointwise_log_likelihood_matches_numpy() -> None:
    """float32 log-likelihood of each labelled entry on the obs dim (no NaN padding), in
    the order of label_index, equal to numpy's per draw."""
    import xarray as xr

    from bayesdissect.model.build import label_index
    from bayesdissect.queries.predictive import pointwise_log_likelihood

    data, truth = make_dataset(3, 2, 40, 3, seed=9, missing=0.2)
    rng = np.random.default_rng(0)
    w = truth["w"][None, None] + rng.normal(0, 0.1, (2, 3, *truth["w"].shape))
    post = xr.Dataset({"w_cell": (("chain", "draw", "judge", "group", "property"), w)},
                      coords={"chain": [0, 1], "draw": [0, 1, 2], "judge": data.judge,
                              "group": sorted(set(data.group.values)),
                              "property": data.property})
    ll = pointwise_log_likelihood(post, data)["y"]
    n_obs = int(data.y.notnull().sum())
    assert ll.dims == ("chain", "draw", "obs") and ll.shape == (2, 3, n_obs)
    assert ll.dtype == np.float32 and not ll.isnull().any()
    pi, ji = label_index(data)
    np.testing.assert_array_equal(ll.pair.values, data.pair.values[pi])
    np.testing.assert_array_equal(ll.judge.values, data.judge.values[ji])
    for c, d in ((0, 0), (1, 2)):
        logits = np.einsum("ik,jik->ij", data.x.values, w[c, d][:, truth["group_index"], :])
        y = data.y.values
        ref = np.where(y == 1, -np.logaddexp(0, -logits), -np.logaddexp(0, logits))[pi, ji]
        np.testing.assert_allclose(ll.isel(chain=c, draw=d).values, ref, rtol=1e-5,
                                   atol=1e-6)


def test_label_index_ignores_the_order_of_pairs_and_judges() -> None:
    from bayesdissect.model.build import label_index

    data, _ = make_dataset(4, 2, 30, 2, seed=3, missing=0.3)
    shuffled = data.isel(judge=[2, 0, 3, 1], pair=np.random.default_rng(0).permutation(30))
    keys = []
    for d in (data, shuffled):
        pi, ji = label_index(d)
        keys.append(list(zip(d.pair.values[pi].tolist(), d.judge.values[ji].tolist(),
                             strict=True)))
    assert keys[0] == keys[1] and len(keys[0]) == int(data.y.notnull().sum())
    assert keys[0] == sorted(keys[0])


def test_default_model_samples_its_prior() -> None:
    """pm.sample_prior_predictive works on the default (radial) spec, and the radial
    helpers' forward draws give the prior the sampler sees: sigma ~ HalfNormal(s) (mean
    s sqrt(2/pi)) and zero-sum offsets with E[offset^2] = s^2 (1 - 1/J). 4,000 draws:
    the mean of sigma has sd s sqrt(1 - 2/pi) / sqrt(4000) ~ 0.0048 (s = 0.5); 5 sd."""
    import pymc as pm

    data, _ = make_dataset(10, 4, 120, 2, seed=5, missing=0.1)
    spec = load_spec("hierarchical")
    model = build_model(spec, data)
    assert {"z_judge_lognorm", "z_judge_logsize"} <= _free(model)  # radial is in use
    with model:
        idata = pm.sample_prior_predictive(draws=4000, random_seed=3)
    prior = idata["prior"]
    s = spec.levels["judge"].sigma_scale
    sig = prior["sigma_judge"].values.ravel()
    assert abs(sig.mean() - s * np.sqrt(2 / np.pi)) < 5 * s * np.sqrt(1 - 2 / np.pi) / np.sqrt(
        sig.size)
    off = prior["judge_offset"]
    np.testing.assert_allclose(off.sum("judge").values, 0.0, atol=1e-9)
    sq = float((off**2).mean())
    assert abs(sq - s**2 * (1 - 1 / 10)) < 0.05 * s**2  # sd of the mean ~0.6% here
    y = idata["prior_predictive"]["y"]
    assert y.sizes["obs"] == int(data.y.notnull().sum())
    assert set(np.unique(y.values)) <= {0.0, 1.0}
    # the model that fit samples (its likelihood a Potential, which forward sampling
    # skips, as PyMC warns) draws the prior too
    fast = build_model(spec, data, likelihood="potential")
    with fast, pytest.warns(UserWarning, match="Potentials"):
        fast_prior = pm.sample_prior_predictive(draws=10, random_seed=1)["prior"]
    assert np.isfinite(fast_prior["sigma_cell"].values).all()
