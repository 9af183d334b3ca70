"""Property weights from posterior draws, at every level of the model.

The builder (model.py) names its random variables; this module is the one place that
adds them up, so every query reads weights the same way whatever the spec turned on:

    w[j, g, k] = mu[k] + judge_offset[j, k] + group_offset[g, k] + cell_offset[j, g, k]

The ``paper`` spec has ``w_cell`` (judge, group, property) directly and no shared terms.
"""

from __future__ import annotations

import xarray as xr

#: Terms of w by name, and the dims each carries besides (chain, draw).
TERMS = {
    "mu": ("property",),
    "judge_offset": ("judge", "property"),
    "group_offset": ("group", "property"),
    "cell_offset": ("judge", "group", "property"),
    "w_cell": ("judge", "group", "property"),
}
LEVELS = ("global", "judge", "group", "cell")
_LEVEL_TERMS = {
    "global": ("mu",),
    "judge": ("mu", "judge_offset"),
    "group": ("mu", "group_offset"),
    "cell": tuple(TERMS),
}


def level_weights(posterior: xr.Dataset, level: str) -> xr.DataArray | None:
    """Sum of the terms that make up ``level``; None when the spec has none of them.

    ``cell`` always has dims (chain, draw, judge, group, property), broadcasting the terms
    a spec lacks; ``judge`` is the judge averaged over groups (mu + judge_offset), as the
    paper averages; ``global`` is mu. For the ``paper`` spec, whose only term is ``w_cell``,
    ``judge`` is its mean over groups and ``global`` its mean over judges and groups.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {LEVELS}")
    present = [t for t in _LEVEL_TERMS[level] if t in posterior]
    if not present and "w_cell" in posterior:
        w = posterior["w_cell"]
        reduce = {"global": ["judge", "group"], "judge": ["group"], "group": ["judge"]}[level]
        return w.mean(reduce)
    if not present:
        return None
    total = sum(posterior[t] for t in present)
    if level == "cell":
        coords_ok = all(d in total.dims for d in ("judge", "group"))
        if not coords_ok:
            raise ValueError("cell weights need judge and group terms (or w_cell)")
    return total.rename("w")


def cell_weights(posterior: xr.Dataset, judges: xr.DataArray, groups: xr.DataArray) -> xr.DataArray:
    """w[chain, draw, judge, group, property], broadcasting over whatever the spec lacks.

    ``judges`` and ``groups`` are the fit's coordinates (so a ``pooled`` fit, which has
    only mu, still gives one identical vector per judge and group).
    """
    present = [t for t in TERMS if t in posterior]
    total = sum(posterior[t] for t in present)
    total, _, _ = xr.broadcast(total, judges, groups)
    return total.transpose("chain", "draw", "judge", "group", "property").rename("w")
