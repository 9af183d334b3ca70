"""Posteriors built directly (no sampling) for the query tests: known truth plus noise,
with the posterior contract's variable names and dims, so answers can be checked exactly."""

from __future__ import annotations

import numpy as np
import xarray as xr

PROPS = [f"p{k}" for k in range(8)]


def make_posterior(
    n_judges: int = 5, n_groups: int = 3, n_props: int = 8, chains: int = 2, draws: int = 200,
    noise: float = 0.05, seed: int = 0, spec: str = "hierarchical",
    twins: dict[int, int] | None = None,
) -> tuple[xr.Dataset, dict[str, np.ndarray]]:
    """(posterior, truth). Draws = truth + noise * N(0, 1) for every term. ``twins`` maps a
    judge index to another whose terms it copies exactly, draw by draw (identical judges)."""
    rng = np.random.default_rng(seed)
    j, g, k = n_judges, n_groups, n_props
    judges = [f"judge{i}" for i in range(j)]
    groups = [f"group{i}" for i in range(g)]
    props = [f"p{i}" for i in range(k)]
    truth = {
        "mu": rng.normal(0, 1, k),
        "judge_offset": rng.normal(0, 0.7, (j, k)),
        "group_offset": rng.normal(0, 0.5, (g, k)),
        "cell_offset": rng.normal(0, 0.25, (j, g, k)),
        "bias": rng.normal(0, 0.2, j),
    }
    dims = {"mu": ("property",), "judge_offset": ("judge", "property"),
            "group_offset": ("group", "property"),
            "cell_offset": ("judge", "group", "property"), "bias": ("judge",)}
    if spec == "paper":
        truth = {"w_cell": truth["mu"] + truth["judge_offset"][:, None]
                 + truth["group_offset"][None] + truth["cell_offset"]}
        dims = {"w_cell": ("judge", "group", "property")}
    elif spec == "pooled":
        truth = {"mu": truth["mu"]}
        dims = {"mu": ("property",)}
    data_vars = {}
    for name, val in truth.items():
        draws_ = val[None, None] + noise * rng.normal(size=(chains, draws) + val.shape)
        if twins and "judge" in dims[name]:
            ax = 2 + dims[name].index("judge")
            for a, b in twins.items():
                src = np.take(draws_, b, axis=ax)
                idx = [slice(None)] * draws_.ndim
                idx[ax] = a
                draws_[tuple(idx)] = src
                tv = [slice(None)] * val.ndim
                tv[dims[name].index("judge")] = a
                val[tuple(tv)] = np.take(val, b, axis=dims[name].index("judge"))
        data_vars[name] = (("chain", "draw") + dims[name], draws_)
    post = xr.Dataset(data_vars, coords={
        "chain": np.arange(chains), "draw": np.arange(draws),
        "judge": judges, "group": groups, "property": props})
    return post, truth


def true_cell_weights(truth: dict[str, np.ndarray], n_judges: int, n_groups: int) -> np.ndarray:
    """(J, G, K) true weights from the truth dict of ``make_posterior``."""
    if "w_cell" in truth:
        return truth["w_cell"]
    k = truth["mu"].shape[0]
    w = np.broadcast_to(truth["mu"], (n_judges, n_groups, k)).copy()
    if "judge_offset" in truth:
        w += truth["judge_offset"][:, None] + truth["group_offset"][None] + truth["cell_offset"]
    return w
