"""model_info: what build_model knows about the model it built (data layout, radial levels),
kept beside the model instead of on it. No sampling; well under a second each."""

from __future__ import annotations

import numpy as np
import pymc as pm
from conftest import make_dataset

from bayesdissect.model.build import (
    RADIAL_MIN_DIM,
    TERM_NAMES,
    build_model,
    model_info,
    prepare_data,
)
from bayesdissect.model.specs import load_spec


def test_radial_constants_describe_the_built_graph() -> None:
    """Each radial level is listed with the offset it builds, its free dimension n and the
    centring constants: at z_lognorm = z_logsize = 0 (signed: z_size = 1), the model's
    sigma is exp(psi0 - l0). The default spec samples its cell level signed."""
    data, _ = make_dataset(10, 3, 200, 4, seed=0)
    spec = load_spec("hierarchical")
    model = build_model(spec, data, likelihood="potential")
    info = model_info(model)
    assert info is not None
    radial = {lv for lv in ("judge", "group", "cell") if f"z_{lv}_lognorm" in model.named_vars}
    assert radial and set(info.radial) == radial
    assert any(c.signed for c in info.radial.values())
    assert not all(c.signed for c in info.radial.values())
    free = {"judge": 9, "group": 2, "cell": 18}  # zero-sum subspaces of 10 judges x 3 groups
    point = model.initial_point()
    for lv, const in info.radial.items():
        assert const.term == TERM_NAMES[lv]
        assert const.zs_dims == tuple(model.named_vars_to_dims[f"z_{lv}"])
        assert const.n == free[lv] >= RADIAL_MIN_DIM
        assert np.isclose(const.l0, 0.5 * np.log(const.n - 0.5))
        scale = spec.levels[lv].sigma_scale
        assert np.isclose(const.psi0, np.log(scale) + const.l0)
        assert const.signed == (spec.levels[lv].parameterization == "signed_radial")
        size = {f"z_{lv}_size": np.ones(4)} if const.signed else {
            f"z_{lv}_logsize": np.zeros(4)}
        at = {**point, f"z_{lv}_lognorm": np.zeros(4), **size}
        out = model.replace_rvs_by_values([model[f"sigma_{lv}"]])[0]
        sigma = model.compile_fn(out, inputs=model.value_vars,
                                 on_unused_input="ignore", mode="FAST_COMPILE")(at)
        assert np.allclose(sigma, np.exp(const.psi0 - const.l0)), lv


def test_data_layout_and_other_models() -> None:
    """The layout is prepare_data's; a model build_model did not make has no info, and the
    info is not stored on the model object."""
    data, _ = make_dataset(3, 2, 60, 4, seed=1)
    model = build_model("pooled", data)
    info = model_info(model)
    assert info is not None and info.radial == {}
    ref = prepare_data(data)
    assert np.array_equal(info.data.obs_flat, ref.obs_flat)
    assert np.array_equal(info.data.order, ref.order)
    assert not [a for a in vars(model) if a.startswith("_bd_")]
    assert model_info(pm.Model()) is None
    assert model_info(build_model("pooled", data)) is not info  # one per model
