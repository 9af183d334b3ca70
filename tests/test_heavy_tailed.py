"""Heavy-tailed offsets (issue 14, item 2): ``offsets = "student_t"`` on a hierarchical
level, in the spec (validation, round trip), the PyMC model (a Student-t prior, centred
over the zero-sum axes), a fit, and the queries that draw a new judge from the prior."""

from __future__ import annotations

import numpy as np
import pytest

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.build import build_model
from bayesdissect.model.specs import load_spec, parse_spec, spec_from_json
from bayesdissect.queries.weights import new_judge_weights

T_LEVELS = {
    "mu": {"prior": "normal", "scale": 1.0},
    "judge": {"sigma_prior": "halfnormal", "sigma_scale": 0.5, "zero_sum": True,
              "offsets": "student_t", "parameterization": "centered"},
    "group": {"sigma_prior": "halfnormal", "sigma_scale": 0.5, "zero_sum": True,
              "offsets": "student_t", "parameterization": "centered"},
    "cell": {"sigma_prior": "halfnormal", "sigma_scale": 0.25, "zero_sum": True,
             "offsets": "student_t", "offset_nu": 5},
    "bias": {"prior": "normal", "scale": 0.5}}


def _spec(**cell):  # noqa: ANN003, ANN202
    return parse_spec({"name": "t", "levels": {**T_LEVELS, "cell": {**T_LEVELS["cell"],
                                                                   **cell}},
                       "sampler": {"backend": "numba"}})


def test_student_t_levels_parse_and_round_trip() -> None:
    spec = _spec()
    cell = spec.levels["cell"]
    assert cell.heavy_tailed and cell.offset_nu == 5.0
    assert cell.parameterization == "noncentered"  # the default of a student_t level
    assert spec.levels["judge"].parameterization == "centered"
    assert not spec.levels["mu"].heavy_tailed and not load_spec("hierarchical").levels[
        "cell"].heavy_tailed
    assert spec_from_json(spec.to_json()).levels == spec.levels


@pytest.mark.parametrize(("where", "bad", "match"), [
    ("cell", {"offsets": "laplace"}, "offsets: unknown value 'laplace'"),
    ("cell", {"offset_nu": 2}, "more than 2 degrees of freedom"),
    ("cell", {"parameterization": "radial"}, "student_t offsets are sampled one of"),
    ("mu", {"offsets": "student_t"}, "only a hierarchical level"),
])
def test_bad_offsets_are_one_clear_error(where: str, bad: dict, match: str) -> None:
    levels = {**T_LEVELS, where: {**T_LEVELS[where], **bad}}
    with pytest.raises(BayesDissectError, match=match) as err:
        parse_spec({"name": "t", "levels": levels})
    assert "\n" not in str(err.value) and f"levels.{where}" in str(err.value)


def test_prior_is_student_t_and_sums_to_zero(make_data) -> None:
    import pymc as pm

    data, _ = make_data(n_judges=4, n_groups=3, n_pairs=60, n_properties=3)
    model = build_model(_spec(), data)
    assert {"z_cell_zerosum__", "z_judge_zerosum__"} <= {v.name for v in model.value_vars}
    with model:
        prior = pm.sample_prior_predictive(draws=4000, random_seed=1,
                                           var_names=["cell_offset", "z_cell",
                                                      "judge_offset"]).prior
    cell = prior["cell_offset"].values  # (1, S, J, G, K)
    assert np.abs(cell.sum(axis=2)).max() < 1e-4 and np.abs(cell.sum(axis=3)).max() < 1e-4
    assert np.abs(prior["judge_offset"].values.sum(axis=2)).max() < 1e-4
    # excess kurtosis of the sampled t(5): 6 in theory; a normal's is 0 +- sqrt(24 / n)
    zs = prior["z_cell"].values.ravel()
    zs = (zs - zs.mean()) / zs.std()
    n = zs.size
    assert (zs**4).mean() - 3.0 > 20 * np.sqrt(24.0 / n)


def test_zero_sum_t_density_is_the_zero_sum_normal_at_large_nu() -> None:
    """The conditioned density's scale term (sigma**-n_free, not sigma**-n): at nu -> inf
    it must equal ZeroSumNormal's logp up to a constant, at every sigma and value."""
    import pymc as pm

    from bayesdissect.model.build import _zero_sum_t

    coords = {"property": ["a", "b"], "judge": list("abcd"), "group": list("xyz")}
    dims = ("property", "judge", "group")

    def logp(kind: str):  # noqa: ANN202
        with pm.Model(coords=coords) as m:
            sig = pm.HalfNormal("sig", 1.0, dims="property")
            if kind == "t":
                _zero_sum_t("z", 1e8, sig.reshape((-1, 1, 1)), dims, ("judge", "group"))
            else:
                pm.ZeroSumNormal("z", sigma=sig.reshape((-1, 1, 1)), dims=dims,
                                 n_zerosum_axes=2)
        return m.compile_logp()

    ft, fn = logp("t"), logp("normal")
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(4):
        point = {"sig_log__": rng.normal(size=2), "z_zerosum__": rng.normal(size=(2, 3, 2))}
        diffs.append(float(ft(point) - fn(point)))
    # t(1e8) differs from a normal by O(z^4 / nu) per element: ~1e-7 here
    assert np.ptp(diffs) < 1e-4


def test_new_judge_draws_are_heavy_tailed_for_a_t_level() -> None:
    import xarray as xr

    s, k = 20000, 2
    post = xr.Dataset(
        {"mu": (("chain", "draw", "property"), np.zeros((1, s, k))),
         "judge_offset": (("chain", "draw", "judge", "property"), np.zeros((1, s, 3, k))),
         "sigma_judge": (("chain", "draw", "property"), np.ones((1, s, k)))},
        coords={"property": ["a", "b"], "judge": ["j1", "j2", "j3"]})
    levels = {"mu": {"prior": "normal", "scale": 1.0},
              "judge": {"sigma_prior": "halfnormal", "sigma_scale": 0.5}}
    normal = parse_spec({"name": "n", "levels": levels})
    heavy = parse_spec({"name": "t", "levels": {**levels, "judge": {
        **levels["judge"], "offsets": "student_t", "offset_nu": 5}}})

    def kurt(spec) -> float:  # noqa: ANN001
        w = new_judge_weights(post, spec, seed=3).values.ravel()
        w = (w - w.mean()) / w.std()
        return float((w**4).mean() - 3.0)

    band = 5 * np.sqrt(24.0 / (s * k))
    assert abs(kurt(normal)) < band and kurt(heavy) > 10 * band


def test_t_spec_fits_and_add_judge_fast_path_refuses(make_data) -> None:
    import bayesdissect as bd

    data, truth = make_data(n_judges=4, n_groups=2, n_pairs=400, n_properties=3, seed=2)
    spec = parse_spec({"name": "t-light", "levels": {
        "mu": T_LEVELS["mu"], "judge": T_LEVELS["judge"], "bias": T_LEVELS["bias"]},
        "sampler": {"backend": "numba"}})
    fit = bd.fit(data, spec, sampler="numpyro", chains=2, draws=300, tune=300, seed=4,
                 progressbar=False, warn=False)
    assert fit.diagnostics["max_rhat"] < 1.05 and fit.diagnostics["divergences"] <= 3
    w = (fit.posterior["mu"] + fit.posterior["judge_offset"]).mean(("chain", "draw"))
    true = truth["mu"][None, :] + truth["judge_offset"]
    # 4 x 3 judge weights from 400 labels each: posterior sd ~ 0.15; 0.6 is 4 sd
    assert np.abs(w.transpose("judge", "property").values - true).max() < 0.6
    y0 = data["y"].isel(judge=0).values
    labels = {int(p): "A" if y == 1 else "B" for p, y in zip(data.pair.values, y0,
                                                            strict=True)}
    with pytest.raises(BayesDissectError, match="student_t offsets; use --exact"):
        bd.add_judge(fit, labels, "new-judge")
