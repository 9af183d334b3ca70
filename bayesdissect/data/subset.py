"""Select what a fit sees: some judges, some groups, or the pairs of one case as a group."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from bayesdissect.errors import BayesDissectError


def name_list(value: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Names from a list or a comma-separated string (``"a, b"``); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    out = [str(v) for v in value if str(v) != ""]
    return out


def subset_data(data: xr.Dataset, judges: Any = None, groups: Any = None,
                subset: str | None = None) -> xr.Dataset:
    """Keep only some judges, groups, or the pairs of one case (as one group named after it)."""
    judge_list = name_list(judges)
    if judge_list is not None:
        known = [str(j) for j in data.judge.values]
        bad = [j for j in judge_list if j not in known]
        if bad or not judge_list:
            raise BayesDissectError(f"--judges: unknown judge(s) {bad or judge_list}; expected "
                                    f"some of {known}")
        data = data.sel(judge=judge_list)
    group_list = name_list(groups)
    if group_list is not None:
        known = sorted(set(np.asarray(data.group.values).astype(str)))
        bad = [g for g in group_list if g not in known]
        if bad or not group_list:
            raise BayesDissectError(f"--groups: unknown group(s) {bad or group_list}; expected "
                                    f"some of {known}")
        data = data.isel(pair=np.isin(np.asarray(data.group.values).astype(str), group_list))
    if subset is not None:
        var = f"case_{subset}"
        cases = [str(v)[5:] for v in data.data_vars if str(v).startswith("case_")]
        if var not in data:
            raise BayesDissectError(f"--subset: unknown case {subset!r}; expected one of {cases}")
        keep = np.asarray(data[var].values).astype(bool)
        if not keep.any():
            raise BayesDissectError(f"--subset: case {subset!r} has no pairs in this data")
        data = data.isel(pair=keep)
        data = data.assign(group=("pair", np.full(data.sizes["pair"], subset, dtype=object)
                                  .astype(str)))
    return data
