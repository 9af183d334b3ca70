"""A new judge's labels, read into a ``y (pair)`` vector aligned to a fit's pairs.

What ``add_judge`` accepts as ``labels`` (or the CLI's LABELS file): a list of "A"/"B" per
pair in source row order (``None`` / "" = not labelled; pairs dropped from the fit are
skipped by index), a dict {pair index: label}, a pandas Series indexed by pair, or a path to
a ``.json`` file holding a list or an object, or to a ``.csv`` with columns ``pair`` and
``label``. What one label means is decided by ``bayesdissect.data.features.parse_label``,
the loader's rule ("A", "response_1", 1 = the judge preferred response 1; "B",
"response_2", 2 = response 2); "response 1" / "response 2" (a space for the underscore) are
accepted too. Every problem raises ``BayesDissectError`` with one line naming where it is.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bayesdissect.data.features import parse_label
from bayesdissect.errors import BayesDissectError


def _label_value(value: Any, where: str) -> float:
    """1.0 for response 1, 0.0 for response 2, NaN for missing (None, NaN, "" or blanks),
    as ``parse_label`` reads them; anything else is an error naming ``where``."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BayesDissectError(f"{where}: label {value!r} is not one of A/B")
    key = value.strip().lower().replace(" ", "_") if isinstance(value, str) else value
    if key == "":
        return math.nan
    try:
        return parse_label(key)
    except (KeyError, OverflowError):
        raise BayesDissectError(
            f"{where}: label {value!r} is not one of A/B (or response_1/response_2, 1/2)"
        ) from None


def _pair_index(key: Any, where: str) -> int:
    """A pair index from a dict key or CSV cell: a non-negative integer."""
    text = str(key).strip()
    try:
        idx = int(text)
    except ValueError:
        raise BayesDissectError(
            f"{where}: pair index {key!r} is not an integer (0-based source row)") from None
    if idx < 0:
        raise BayesDissectError(f"{where}: pair index {idx} is negative")
    return idx


def _source_rows(data: xr.Dataset, settings: Mapping[str, Any] | None = None) -> int | None:
    """Rows in the source the fit's pairs came from, when that is known: an explicit
    ``n_source_rows`` attribute, else kept + dropped pairs when the fit used every pair
    (no group or case selection in ``settings``)."""
    for key in ("n_source_rows", "n_rows"):
        if key in data.attrs:
            return int(data.attrs[key])
    settings = settings or {}
    if settings.get("groups") or settings.get("subset"):
        return None
    if "n_dropped" in data.attrs:
        return int(data.sizes["pair"]) + int(data.attrs["n_dropped"])
    return None


def _read_labels_file(path: Path) -> Any:
    """Parse a labels file (.json list/dict or .csv with pair,label) into a list or dict."""
    if not path.is_file():
        raise BayesDissectError(f"{path}: labels file not found")
    if path.suffix.lower() == ".csv":
        try:
            with path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                fields = {(f or "").strip().lower(): f for f in (reader.fieldnames or [])}
                if "pair" not in fields or "label" not in fields:
                    raise BayesDissectError(
                        f"{path}: CSV needs columns 'pair' and 'label'; "
                        f"found {list(reader.fieldnames or [])}")
                out: dict[int, Any] = {}
                for row_no, row in enumerate(reader, start=2):
                    where = f"{path} line {row_no}"
                    idx = _pair_index(row[fields["pair"]], f"{where} field pair")
                    if idx in out:
                        raise BayesDissectError(f"{where}: pair {idx} labelled twice")
                    out[idx] = row[fields["label"]]
                return out
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise BayesDissectError(f"{path}: cannot read CSV labels ({exc})") from None
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise BayesDissectError(f"{path}: cannot read labels ({exc})") from None
    except json.JSONDecodeError as exc:
        raise BayesDissectError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} "
            "(expected a list of \"A\"/\"B\" or an object {pair: label})") from None
    return obj


def parse_labels(labels: Any, data: xr.Dataset,
                 settings: Mapping[str, Any] | None = None) -> xr.DataArray:
    """The new judge's labels as ``y (pair)`` aligned to ``data.pair`` (1.0/0.0/NaN).

    ``labels``: a list (one per source row, source row order), a dict {pair index: label},
    a pandas Series indexed by pair, or a path to a .json / .csv file (see module doc).
    ``settings``: the fit's settings, to know whether every source row was fitted (then a
    list must have exactly one label per source row).
    """
    source = "labels"
    if isinstance(labels, str | os.PathLike):
        path = Path(labels)
        labels = _read_labels_file(path)
        source = str(path)
    elif hasattr(labels, "to_dict") and hasattr(labels, "index"):  # pandas Series
        labels = labels.to_dict()
    pairs = np.asarray(data["pair"].values, dtype=np.int64)
    position = {int(p): i for i, p in enumerate(pairs)}
    y = np.full(pairs.shape[0], np.nan)
    if isinstance(labels, Mapping):
        for key, value in labels.items():
            idx = _pair_index(key, f"{source}: key {key!r}")
            if idx not in position:
                raise BayesDissectError(
                    f"{source}: pair {idx} is not among the fit's pairs (0..{int(pairs.max())}, "
                    f"{pairs.size} pairs; dropped pairs cannot be labelled)")
            y[position[idx]] = _label_value(value, f"{source} pair {idx}")
    elif isinstance(labels, Sequence) and not isinstance(labels, str | bytes):
        n = len(labels)
        expected = _source_rows(data, settings)
        if expected is not None and n != expected:
            raise BayesDissectError(
                f"{source}: {n} labels but the data has {expected} source rows "
                "(expected one \"A\"/\"B\" per pair in source row order)")
        if n <= int(pairs.max()):
            raise BayesDissectError(
                f"{source}: {n} labels but the fit has pair index {int(pairs.max())} "
                "(expected one \"A\"/\"B\" per pair in source row order)")
        values = [_label_value(v, f"{source} item {i}") for i, v in enumerate(labels)]
        y = np.asarray([values[p] for p in pairs], dtype=float)
    else:
        raise BayesDissectError(
            f"{source}: expected a list of \"A\"/\"B\" per pair, an object {{pair: label}} "
            f"or a CSV with pair,label columns; got {type(labels).__name__}")
    if not np.isfinite(y).any():
        raise BayesDissectError(f"{source}: no fitted pair is labelled")
    return xr.DataArray(y, dims=("pair",), coords={"pair": data["pair"].values})

