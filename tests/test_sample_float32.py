"""float32 draws: the float64 variables of a sampler's output are cast one by one, so draws
that are already partly or wholly float32 do not trip ``Dataset.astype``'s dict check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from conftest import light_spec, make_dataset

import bayesdissect as bd
from bayesdissect.model.sample import as_float32
from bayesdissect.model.specs import parse_spec


def _draws(**dtypes: type) -> xr.Dataset:
    return xr.Dataset({n: (("chain", "draw"), np.ones((2, 3), dtype=t), {"unit": n})
                       for n, t in dtypes.items()}, attrs={"sampler": "test"})


def test_as_float32_all_mixed_and_none() -> None:
    """float64 -> float32 values and attributes kept; float32 and integer variables as
    they are, with none or only some of the variables float64."""
    for ds in (_draws(a=np.float64, b=np.float64),
               _draws(a=np.float32, b=np.float64, n=np.int64),
               _draws(a=np.float32, n=np.int64)):
        out = as_float32(ds)
        assert list(out.data_vars) == list(ds.data_vars)
        for name, da in ds.data_vars.items():
            want = np.float32 if da.dtype in (np.float32, np.float64) else da.dtype
            assert out[name].dtype == want, name
            assert np.array_equal(out[name].values, da.values)
            assert out[name].attrs == da.attrs
        assert out.attrs == ds.attrs


def test_pymc_sampler_float32_fit_with_mixed_draw_dtypes() -> None:
    """PyMC's own NUTS under floatX float32 returns the radial offsets (float64 constants)
    as float64 and the rest as float32; the fit's posterior is then all float32."""
    data, _ = make_dataset(10, 3, 200, 4, seed=0)  # the judge level radial (n >= 8)
    # global + radial judge weights + bias: the smallest graph with a radial level, as
    # PyMC's sampler compiles it to C (the full default spec took ~60 s on a cold cache)
    spec = parse_spec(light_spec("radial", name="light-radial"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bd.fit(data, spec, sampler="pymc", float32=True, chains=1, draws=10,
                     tune=10, seed=1, progressbar=False, warn=False)
    dtypes = {n: da.dtype for n, da in fit.posterior.data_vars.items()}
    assert {"judge_offset", "sigma_judge", "mu"} <= set(dtypes)
    assert set(dtypes.values()) == {np.dtype(np.float32)}, dtypes


@pytest.mark.parametrize("likelihood", ["potential", "observed"])
def test_float32_likelihood_runs_in_float32_with_radial_levels(likelihood: str) -> None:
    """The radial levels compute their offsets in float64; under floatX float32 the
    products and log-sigmoids over the labels must still be float32 (in float64 they cost
    1.6-2x the gradient on the full data), and a float64 build stays float64."""
    import pytensor
    from pytensor.graph.traversal import ancestors

    from bayesdissect.model.build import build_model

    data, _ = make_dataset(10, 3, 60, 4, seed=0)
    # radial judge, group and cell levels; the pair level's constants are float64 too
    spec = bd.load_spec("hierarchical-pair")
    assert {lv.parameterization for name, lv in spec.levels.items()
            if lv.hierarchical and name != "pair"} <= {"radial", "signed_radial"}
    assert spec.levels["pair"].parameterization in ("signed_radial", "conditional")
    for floatx in ("float32", "float64"):
        with pytensor.config.change_flags(floatX=floatx):
            model = build_model(spec, data, likelihood=likelihood)
            out = model.potentials if likelihood == "potential" else [
                model.logp(vars=model.observed_RVs)]
            dtypes: dict[str, set[str]] = {"Dot": set(), "Softplus": set()}
            for v in ancestors(out):
                op = getattr(v.owner, "op", None)
                name = type(getattr(op, "scalar_op", op)).__name__
                if name in dtypes:
                    dtypes[name].add(v.dtype)
        assert dtypes == {"Dot": {floatx}, "Softplus": {floatx}}, (floatx, dtypes)
