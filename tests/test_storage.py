"""Saved fits stay small (issue 12, item 5): ``Fit.thin``, ``Fit.save(thin=, dtype=,
compress=)``, and the loaded fit equal to the thinned one in memory.

One small real fit (3 judges x 2 groups x 3 properties, 2 chains x 150 draws); its file
sizes and save / load seconds are printed (``pytest -s``).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from conftest import make_dataset  # noqa: E402

import bayesdissect as bd  # noqa: E402
from bayesdissect.errors import BayesDissectError  # noqa: E402
from bayesdissect.model.fitted import Fit, load_fit  # noqa: E402

SETTINGS = {"chains": 2, "draws": 150, "tune": 150, "seed": 4, "backend": "jax",
            "progressbar": False, "warn": False}


@pytest.fixture(scope="module")
def fit() -> Fit:
    data, _ = make_dataset(3, 2, 150, 3, seed=12, missing=0.15)
    return bd.fit(data, "hierarchical", log_likelihood=True, **SETTINGS)


def _assert_same_fit(back: Fit, ref: Fit) -> None:
    xr.testing.assert_identical(back.data, ref.data)
    assert set(back.idata.children) == set(ref.idata.children)
    for group in ref.idata.children:
        xr.testing.assert_identical(back.idata[group].to_dataset(),
                                    ref.idata[group].to_dataset())
    assert back.spec == ref.spec
    assert back.settings == ref.settings and back.diagnostics == ref.diagnostics


def test_thin_returns_a_new_fit_of_every_kth_draw(fit: Fit) -> None:
    before = fit.posterior.copy(deep=True)
    thin = fit.thin(3)
    xr.testing.assert_identical(fit.posterior, before)  # the fit itself is unchanged
    assert "thin" not in fit.diagnostics or fit.diagnostics.get("thinned") is None
    xr.testing.assert_identical(thin.posterior, fit.posterior.isel(draw=slice(None, None, 3)))
    for group in ("sample_stats", "log_likelihood"):
        assert thin.idata[group].to_dataset().sizes["draw"] == 50
    assert thin.settings["thin"] == 3
    assert thin.diagnostics["thinned"] == {"thin": 3, "draws": 50, "from_draws": 150}
    assert thin.diagnostics["max_rhat"] == fit.diagnostics["max_rhat"]  # of all draws
    again = thin.thin(2)  # thinning a thinned fit multiplies
    assert again.settings["thin"] == 6
    assert again.diagnostics["thinned"] == {"thin": 6, "draws": 25, "from_draws": 150}
    np.testing.assert_array_equal(again.posterior["draw"].values, np.arange(0, 150, 6))
    xr.testing.assert_identical(fit.thin(1).posterior, fit.posterior)


def test_saved_thinned_fit_loads_as_the_thinned_fit(fit: Fit, tmp_path) -> None:  # noqa: ANN001
    path = fit.save(tmp_path / "thin.nc", thin=3, dtype="float32", compress=1)
    back = load_fit(path)
    _assert_same_fit(back, fit.thin(3))  # the default sampler's draws are float32: exact
    with xr.open_datatree(path) as tree:
        assert tree.attrs["storage"] == '{"thin": 3, "dtype": "float32", "compress": 1}'
    # and it answers queries as the thinned fit does
    a = bd.effects(back, level="judge")
    b = bd.effects(fit.thin(3), level="judge")
    np.testing.assert_array_equal(a.select_dtypes("number").values,
                                  b.select_dtypes("number").values)


def test_compression_is_lossless_and_sizes_and_seconds(fit: Fit, tmp_path) -> None:  # noqa: ANN001
    rows = []
    for name, kw in [("plain", {}), ("zlib1", {"compress": 1}), ("thin3", {"thin": 3}),
                     ("thin3+zlib1", {"thin": 3, "compress": 1})]:
        t0 = time.perf_counter()
        path = fit.save(tmp_path / f"{name}.nc", **kw)
        t1 = time.perf_counter()
        back = load_fit(path)
        t2 = time.perf_counter()
        _assert_same_fit(back, fit.thin(kw.get("thin", 1)))
        rows.append((name, path.stat().st_size, t1 - t0, t2 - t1))
    print("\nsmall fit (3 judges x 2 groups x 3 properties, 2 x 150 draws, log_likelihood):")
    for name, size, ts, tl in rows:
        print(f"  {name:12s} {size / 1e3:8.1f} kB  save {ts:.3f} s  load {tl:.3f} s")
    size = {r[0]: r[1] for r in rows}
    assert size["zlib1"] < size["plain"] and size["thin3"] < size["plain"]
    assert size["thin3+zlib1"] <= size["thin3"]  # (small variables are not compressed)
    # resaving a loaded compressed fit without compress writes an uncompressed file
    again = load_fit(tmp_path / "zlib1.nc").save(tmp_path / "again.nc")
    assert abs(again.stat().st_size - size["plain"]) < 0.02 * size["plain"]


def test_float64_draws_are_stored_as_float32(fit: Fit, tmp_path) -> None:  # noqa: ANN001
    wide = Fit(fit.data, fit.spec, posterior=fit.posterior.astype(np.float64),
               diagnostics=fit.diagnostics, settings=fit.settings)
    back = load_fit(wide.save(tmp_path / "f32.nc", dtype="float32"))
    for v, da in back.posterior.data_vars.items():
        assert da.dtype == np.float32, v
        np.testing.assert_array_equal(da.values, wide.posterior[v].values.astype(np.float32))
    back64 = load_fit(wide.save(tmp_path / "f64.nc"))  # dtype=None keeps float64
    assert all(da.dtype == np.float64 for da in back64.posterior.data_vars.values())


@pytest.mark.parametrize(("kw", "match"), [
    ({"thin": 0}, "thin must be a whole number from 1"),
    ({"thin": 1.5}, "thin must be a whole number from 1"),
    ({"thin": True}, "thin must be a whole number from 1"),
    ({"thin": 151}, r"number of draws \(150\)"),
    ({"dtype": "int8"}, "dtype must be 'float32' or None"),
    ({"dtype": "float16"}, "float16 would change the reported intervals"),
    ({"dtype": "nonsense"}, "dtype must be 'float32' or None"),
    ({"compress": 10}, "compress must be a zlib level from 0"),
    ({"compress": "fast"}, "compress must be a zlib level from 0"),
])
def test_bad_options_fail_with_one_line_and_no_file(fit: Fit, tmp_path, kw, match) -> None:  # noqa: ANN001
    path = tmp_path / "bad.nc"
    with pytest.raises(BayesDissectError, match=match) as err:
        fit.save(path, **kw)
    assert "\n" not in str(err.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    if "thin" in kw:
        with pytest.raises(BayesDissectError, match=match):
            fit.thin(kw["thin"])
