"""One small real fit (hierarchical) and its misspecified rival (pooled) of simulated data
with known truth, shared by every query test module in the test run, saved to files for
the CLI tests. They are fitted once per run (the ``query_fits`` fixture of conftest.py):
under pytest-xdist the workers share one folder in the run's pytest temporary directory,
which pytest prunes after a few runs (the first worker to take its lock fits and saves,
the others wait and load); every worker uses the fits as loaded from those files, so no
test depends on which worker fitted them.

The data: 5 judges, 3 groups, 5 properties, 400 pairs, drawn from the hierarchical model
(conftest.make_dataset) with real judge differences (sigma_judge = 1); judge 4 is made a
*twin* of judge 1: its labels are drawn independently from judge 1's true probabilities,
so its true weights and bias equal judge 1's.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

import numpy as np
from conftest import make_dataset

TWIN, SOURCE = 4, 1
# numpyro: the fastest to compile here (nutpie's numba compile took 35-100 s on the busy
# test machine); 2 x 300 draws are plenty for the coarse checks below.
SAMPLER = {"sampler": "numpyro", "chains": 2, "draws": 300, "tune": 300, "seed": 11}


def small_fits(out: Path) -> dict[str, Any]:
    """{"data", "truth", "hier", "pooled", "hier_path", "pooled_path"}, the fits saved in
    (or, when another process saved them first, loaded from) the folder ``out``."""
    import bayesdissect as bd

    data, truth = make_dataset(n_judges=5, n_groups=3, n_pairs=400, n_properties=5, seed=7,
                               sigma_judge=1.0, sigma_group=0.4, sigma_cell=0.2)
    rng = np.random.default_rng(99)
    p_src = truth["p"][:, SOURCE]
    data["y"][:, TWIN] = (rng.random(p_src.shape) < p_src).astype(float)
    for key in ("judge_offset", "cell_offset", "w"):
        truth[key][TWIN] = truth[key][SOURCE]
    truth["bias"][TWIN] = truth["bias"][SOURCE]
    truth["p"][:, TWIN] = p_src
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "done").exists():
            for name, spec in (("hier", "hierarchical"), ("pooled", "pooled")):
                bd.fit(data, spec, progressbar=False, warn=False, **SAMPLER).save(
                    out / f"{name}.nc")
            (out / "done").touch()
    hier, pooled = bd.load_fit(out / "hier.nc"), bd.load_fit(out / "pooled.nc")
    return {"data": data, "truth": truth, "hier": hier, "pooled": pooled,
            "hier_path": str(out / "hier.nc"), "pooled_path": str(out / "pooled.nc")}
