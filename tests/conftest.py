"""Shared test fixtures: small contract-conforming datasets with known true weights.

``make_dataset`` builds an ``xarray.Dataset`` that follows the data contract (CONTEXT.md)
directly in numpy, drawing labels from the hierarchical model of model.md §3, and returns
it together with the true parameters. Any test may use it::

    from conftest import make_dataset
    data, truth = make_dataset(n_judges=4, n_groups=3, n_pairs=300, seed=1)

or through the ``make_data`` fixture (the same function).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr

from bayesdissect.data.catalogue import (
    CASES,
    JUDGE_KEYS,
    PROPERTY_NAMES,
    SCENARIO_SIZES,
    judge_info,
)


def make_dataset(
    n_judges: int = 4,
    n_groups: int = 3,
    n_pairs: int = 300,
    n_properties: int = 5,
    seed: int = 0,
    *,
    mu_scale: float = 1.0,
    sigma_judge: float = 0.5,
    sigma_group: float = 0.3,
    sigma_cell: float = 0.2,
    bias_scale: float = 0.3,
    missing: float = 0.0,
    x_values: tuple[float, ...] = (-1.0, 0.0, 1.0),
    x_probs: tuple[float, ...] = (0.3, 0.4, 0.3),
    case_prob: float = 0.3,
) -> tuple[xr.Dataset, dict[str, np.ndarray]]:
    """A contract dataset drawn from the hierarchical model, and its truth.

    Judges are the first ``n_judges`` paper judges (with their metadata), groups the first
    ``n_groups`` paper scenarios (sorted), properties the first ``n_properties`` paper
    property names. Pairs are spread over groups at random (each group gets at least one).
    ``missing`` is the share of labels set to NaN at random. Set a ``sigma_*`` or
    ``bias_scale`` to 0 to leave that level out of the truth.

    ``truth`` holds numpy arrays: ``mu`` (K), ``judge_offset`` (J, K), ``group_offset``
    (G, K), ``cell_offset`` (J, G, K), ``w`` (J, G, K) = their sum, ``bias`` (J),
    ``group_index`` (pair -> group position), ``p`` (pair, judge) true P(y = 1).
    """
    rng = np.random.default_rng(seed)
    judges = list(JUDGE_KEYS[:n_judges])
    groups = sorted(SCENARIO_SIZES)[:n_groups]
    props = list(PROPERTY_NAMES[:n_properties])
    mu = rng.normal(0.0, mu_scale, n_properties)
    judge_off = rng.normal(0.0, 1.0, (n_judges, n_properties)) * sigma_judge
    group_off = rng.normal(0.0, 1.0, (n_groups, n_properties)) * sigma_group
    cell_off = rng.normal(0.0, 1.0, (n_judges, n_groups, n_properties)) * sigma_cell
    w = mu + judge_off[:, None, :] + group_off[None, :, :] + cell_off
    bias = rng.normal(0.0, 1.0, n_judges) * bias_scale
    gidx = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, n_pairs - n_groups)])
    rng.shuffle(gidx)
    x = rng.choice(np.asarray(x_values, float), size=(n_pairs, n_properties), p=x_probs)
    logits = np.einsum("ik,jik->ij", x, w[:, gidx, :]) + bias[None, :]
    p = 1.0 / (1.0 + np.exp(-logits))
    y = (rng.random(p.shape) < p).astype(float)
    if missing > 0:
        y[rng.random(y.shape) < missing] = np.nan
    info = [judge_info(j) for j in judges]
    data = xr.Dataset(
        {
            "x": (("pair", "property"), x),
            "y": (("pair", "judge"), y),
            "group": (("pair",), np.asarray(groups, dtype=object)[gidx].astype(str)),
            **{f"case_{c}": (("pair",), rng.random(n_pairs) < case_prob) for c in CASES},
        },
        coords={
            "pair": np.arange(n_pairs, dtype=np.int64),
            "property": props,
            "judge": judges,
            "judge_display": ("judge", [i.display for i in info]),
            "judge_size": ("judge", np.array([i.size for i in info], dtype=float)),
            "judge_type": ("judge", [i.type for i in info]),
            "property_key": ("property", props),
            "property_kind": ("property", ["basic"] * n_properties),
        },
        attrs={"source": f"tests.make_dataset(seed={seed})", "n_dropped": 0, "simulated": 1,
               "title": "test fixture"},
    )
    truth = {"mu": mu, "judge_offset": judge_off, "group_offset": group_off,
             "cell_offset": cell_off, "w": w, "bias": bias, "group_index": gidx, "p": p}
    return data, truth


def light_spec(parameterization: str = "noncentered", backend: str | None = None,
               name: str = "light") -> dict:
    """The smallest hierarchical spec, as the dict ``parse_spec`` takes: a global weight,
    zero-sum judge offsets (``parameterization``) and a judge bias. Tests that fit for the
    machinery, not the model, use it: it compiles in seconds where the default spec takes
    a minute. ``backend`` sets the sampler's back end (nutpie JAX compiles fastest here)."""
    spec = {"name": name, "levels": {
        "mu": {"prior": "normal", "scale": 1.0},
        "judge": {"sigma_prior": "halfnormal", "sigma_scale": 0.5,
                  "parameterization": parameterization, "zero_sum": True},
        "bias": {"prior": "normal", "scale": 0.5}}}
    if backend:
        spec["sampler"] = {"backend": backend}
    return spec


@pytest.fixture(scope="session")
def query_fits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The small real fits of ``_query_fits.py``, made once per test run: under
    pytest-xdist in the folder all workers of the run share (the parent of each worker's
    base temporary directory)."""
    from _query_fits import small_fits

    base = tmp_path_factory.getbasetemp()
    return small_fits((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)
                      / "query-fits")


@pytest.fixture
def make_data():
    """The ``make_dataset`` factory as a fixture."""
    return make_dataset
