"""``load(source)``: every data source -> one ``xarray.Dataset`` (the data contract).

Sources:

* a parquet or JSON-lines file in the canonical GAIR row schema (dataset.md §2.1/§2.2b);
  features computed by ``features.gair_table`` (dataset.md §5);
* ``"hf:<id>"`` (e.g. ``hf:GAIR/preference-dissection``) through ``datasets.load_dataset``
  with the token from ``HF_TOKEN``; fails within seconds when the hub is unreachable;
* ``"demo"``: the bundled *simulated* paper-sized dataset;
* a tidy CSV / parquet table (model.md §6): ``label:<judge>``, ``case:<name>``, ``group``,
  optional ``pair``, every other column a numeric property.

The returned dataset has dims ``pair``, ``property``, ``judge``; ``x (pair, property)``,
``y (pair, judge)`` (1 = response 1 preferred, NaN = not labelled), ``group (pair)``,
boolean ``case_<name> (pair)``; attrs ``source``, ``n_dropped``, ``simulated``, ``title``.

``load`` is loud about what it cannot see: each finding of ``features.gair_table`` (a field
that feeds a property but is absent, a key it does not read, ratings that could not be
parsed) and every property that is 0 on all kept pairs is one ``DataWarning`` line.
``load_detailed`` also returns the row-level table that ``bayesdissect info`` checks
against the paper's numbers (``first_load_checks``, dataset.md §9).
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import re
import socket
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import xarray as xr

from bayesdissect.data.catalogue import (
    CASE_SIZES,
    CASES,
    HUMAN_A_COUNTS,
    HUMAN_A_TOTAL,
    JUDGE_KEYS,
    PAPER_ROWS,
    PROPERTIES,
    PROPERTY_NAMES,
    SCENARIO_SIZES,
    judge_info,
)
from bayesdissect.data.features import GairTable, gair_table, parse_label
from bayesdissect.errors import BayesDissectError, DataWarning

DEMO_FILE = "demo.parquet"
DEMO_TRUTH_FILE = "demo_truth.nc"
#: Key of the parquet schema metadata where the simulator records provenance.
META_KEY = b"bayesdissect"
_KIND_BY_NAME = {p.name: p.kind for p in PROPERTIES}
_KEY_BY_NAME = {p.name: p.key for p in PROPERTIES}
_HF_PROBE_SECONDS = 3.0
_CASE_OF = {p.name: p.case for p in PROPERTIES if p.case is not None}
#: Warnings point at the caller's line, not at a frame inside the package.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------
# The contract container
# ---------------------------------------------------------------------------

def build_dataset(x: np.ndarray, y: np.ndarray, *, pair: Sequence[int],
                  properties: Sequence[str], judges: Sequence[str], group: Sequence[str],
                  cases: Mapping[str, np.ndarray], source: str, n_dropped: int = 0,
                  simulated: bool = False, title: str = "",
                  property_keys: Sequence[str] | None = None,
                  property_kinds: Sequence[str] | None = None) -> xr.Dataset:
    """Assemble the contract ``xarray.Dataset`` from plain arrays (already filtered)."""
    properties = [str(p) for p in properties]
    judges = [str(j) for j in judges]
    keys = list(property_keys) if property_keys is not None else \
        [_KEY_BY_NAME.get(p, p) for p in properties]
    kinds = list(property_kinds) if property_kinds is not None else \
        [_KIND_BY_NAME.get(p, "custom") for p in properties]
    info = [judge_info(j) for j in judges]
    coords = {
        "pair": np.asarray(pair, dtype=np.int64),
        "property": np.asarray(properties, dtype=str),
        "judge": np.asarray(judges, dtype=str),
        "property_key": ("property", np.asarray(keys, dtype=str)),
        "property_kind": ("property", np.asarray(kinds, dtype=str)),
        "judge_display": ("judge", np.asarray([j.display for j in info], dtype=str)),
        "judge_size": ("judge", np.asarray([j.size for j in info], dtype=np.float64)),
        "judge_type": ("judge", np.asarray([j.type for j in info], dtype=str)),
    }
    data_vars: dict[str, Any] = {
        "x": (("pair", "property"), np.asarray(x, dtype=np.float64)),
        "y": (("pair", "judge"), np.asarray(y, dtype=np.float64)),
        "group": ("pair", np.asarray([str(g) for g in group], dtype=str)),
    }
    for name, flags in cases.items():
        data_vars[f"case_{name}"] = ("pair", np.asarray(flags, dtype=bool))
    attrs = {"source": str(source), "n_dropped": int(n_dropped),
             "simulated": int(bool(simulated)), "title": str(title)}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def to_tidy(data: xr.Dataset) -> pd.DataFrame:
    """The contract dataset as a tidy table (model.md §6) that ``load`` reads back."""
    df = pd.DataFrame({"pair": data["pair"].values, "group": data["group"].values})
    for name in data.data_vars:
        if str(name).startswith("case_"):
            df[f"case:{str(name)[5:]}"] = data[name].values
    for j in data["judge"].values:
        col = data["y"].sel(judge=j).values
        df[f"label:{j}"] = np.where(np.isnan(col), "", np.where(col == 1.0, "A", "B"))
    for k, p in enumerate(data["property"].values):
        df[str(p)] = data["x"].values[:, k]
    return df


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

def load(source: str | os.PathLike[str] | pd.DataFrame, *,
         field_map: Mapping[str, str] | None = None, split: str = "train",
         title: str | None = None) -> xr.Dataset:
    """Load pairs, features and judge labels from ``source`` (see module docstring).

    ``field_map`` renames canonical GAIR fields/keys to the names of your data (e.g.
    ``{"scenario_group": "category", "num_words": "n_words"}``), so a differently named
    dataset loads without code changes; a value ``"-name"`` says that key holds the
    inverted 0-3 rating, e.g. ``{"repetitive": "-non-repetitive"}`` (read as 3 - r, so
    the sign of ``non-repetitive`` comes out right). ``split`` is used for ``hf:`` sources
    only. Raises ``BayesDissectError`` (one line: file, row, field, expectation) on bad
    input; warns (``DataWarning``, one line each) about what it could not see.
    """
    return load_detailed(source, field_map=field_map, split=split, title=title)[0]


def load_detailed(source: str | os.PathLike[str] | pd.DataFrame, *,
                  field_map: Mapping[str, str] | None = None, split: str = "train",
                  title: str | None = None) -> tuple[xr.Dataset, GairTable | None]:
    """``load``, plus the row-level ``GairTable`` of a GAIR source (None for tidy tables):
    all rows, dropped ones included, with the notes and counts of what was not seen."""
    if field_map is not None and not (isinstance(field_map, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in field_map.items())):
        raise BayesDissectError("field_map: expected a mapping of canonical field name -> "
                                "your field name (both strings)")
    data, table = _dispatch(source, field_map, split, title)
    if table is None and field_map:
        raise BayesDissectError(f"{data.attrs['source']}: field map given, but this is a tidy "
                                "table (label:<judge> columns); a field map renames GAIR "
                                "fields only")
    for note in table.notes if table is not None else ():
        _warn(f"{data.attrs['source']}: {note}")
    for note in dead_properties(data, table):
        _warn(f"{data.attrs['source']}: {note}")
    return data, table


def _warn(message: str) -> None:
    warnings.warn(message, DataWarning, skip_file_prefixes=(_PACKAGE_DIR,))


def dead_properties(data: xr.Dataset, table: GairTable | None = None) -> list[str]:
    """One line per property that is 0 on every kept pair: it carries no information
    (its weight is only the prior), most likely because what feeds it was not seen."""
    x = data["x"].values
    out = []
    for k in np.flatnonzero(~np.any(x != 0, axis=0)):
        name = str(data["property"].values[k])
        origin = f"column {name!r}" if table is None else \
            f"from {table.sources.get(name, name)}"
        case = _CASE_OF.get(name) if table is not None else None
        why = ""
        if case is not None and f"case_{case}" in data and not data[f"case_{case}"].any():
            why = f"; its case {case} has no kept pair"
        out.append(f"property {name!r} ({origin}) is 0 on all {x.shape[0]} kept pairs: "
                   f"it carries no information, so its weight is only the prior{why}")
    return out


def _dispatch(source: str | os.PathLike[str] | pd.DataFrame,
              field_map: Mapping[str, str] | None, split: str,
              title: str | None) -> tuple[xr.Dataset, GairTable | None]:
    if isinstance(source, pd.DataFrame):
        return _from_tidy(source, "<DataFrame>", title), None
    text = os.fspath(source)
    if text == "demo":
        return _load_demo(field_map)
    if text.startswith("hf:"):
        return _load_hf(text, field_map, split, title)
    path = Path(text).expanduser()
    if not path.exists():
        raise BayesDissectError(f"{text}: file not found; expected a parquet, JSON-lines or "
                                "CSV file, 'demo', or 'hf:<dataset id>'")
    if path.is_dir():
        raise BayesDissectError(f"{text}: is a directory; expected a data file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _from_tidy(_read_csv(path, "\t" if suffix == ".tsv" else ","), text, title), None
    if suffix in (".parquet", ".pq"):
        return _load_parquet(path, text, field_map, title)
    if suffix in (".jsonl", ".json", ".ndjson"):
        rows = _read_jsonl(path, text)
        if rows and isinstance(rows[0], Mapping) and any(
                str(k).startswith("label:") for k in rows[0]):
            return _from_tidy(pd.DataFrame(rows), text, title), None
        meta = _sidecar_meta(path)
        return _from_gair_rows(rows, text, field_map, title, meta)
    raise BayesDissectError(f"{text}: unknown file type {suffix or '(none)'!r}; expected "
                            ".parquet, .jsonl/.json, or .csv/.tsv")


# ---------------------------------------------------------------------------
# GAIR rows
# ---------------------------------------------------------------------------

def _from_gair_rows(rows: Sequence[Mapping[str, Any]], source: str,
                    field_map: Mapping[str, str] | None, title: str | None,
                    meta: Mapping[str, Any] | None = None) -> tuple[xr.Dataset, GairTable]:
    t = gair_table(rows, source=source, field_map=field_map)
    keep = np.flatnonzero(t.keep)
    meta = dict(meta or {})
    simulated = bool(meta.get("simulated", False))
    default_title = meta.get("title") or (
        f"Simulated GAIR-schema data ({Path(source).name})" if simulated
        else f"GAIR preference-dissection rows ({Path(source).name})")
    data = build_dataset(
        t.x[keep], t.y[keep], pair=keep, properties=PROPERTY_NAMES, judges=t.judges,
        group=t.group[keep], cases={c: t.cases[c][keep] for c in CASES}, source=source,
        n_dropped=int(len(t.keep) - len(keep)), simulated=simulated,
        title=title or str(default_title))
    return data, t


def _read_jsonl(path: Path, source: str) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BayesDissectError(f"{source}: cannot read file ({_reason(exc)})") from None
    stripped = text.lstrip()
    if not stripped:
        raise BayesDissectError(f"{source}: file is empty; expected one JSON object per line")
    if stripped.startswith("["):  # a JSON array of rows is accepted too
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BayesDissectError(f"{source}: invalid JSON array at line {exc.lineno}: "
                                    f"{exc.msg}") from None
        return list(rows)
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise BayesDissectError(
                f"{source}: line {lineno} (row {len(rows)}) is not valid JSON ({exc.msg} at "
                f"column {exc.colno}); expected one complete JSON object per line "
                "(truncated file?)") from None
    return rows


def _sidecar_meta(path: Path) -> dict[str, Any]:
    """Provenance of a simulated JSON-lines file: recorded in its ``.truth.nc`` sidecar."""
    truth = path.with_name(path.name + ".truth.nc")
    if not truth.exists():
        return {}
    try:
        with xr.open_dataset(truth) as t:
            return {"simulated": bool(t.attrs.get("simulated", 1)),
                    "title": str(t.attrs.get("data_title", ""))}
    except Exception:  # a broken sidecar must not stop the data from loading
        return {}


def _load_parquet(path: Path, source: str, field_map: Mapping[str, str] | None,
                  title: str | None) -> tuple[xr.Dataset, GairTable | None]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise BayesDissectError(f"{source}: cannot read parquet ({_reason(exc)})") from None
    if any(name.startswith("label:") for name in table.column_names):
        return _from_tidy(table.to_pandas(), source, title), None
    if table.num_rows == 0:
        raise BayesDissectError(f"{source}: file has no rows; expected at least one pair")
    meta = {}
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw:
        try:
            meta = json.loads(raw)
        except ValueError:
            meta = {}
    return _from_gair_rows(_arrow_rows(table), source, field_map, title, meta)


def _arrow_rows(table: Any) -> list[dict[str, Any]]:
    """Rows of an arrow table as dicts, skipping long text columns nobody reads."""
    skip = {"query", "gpt-4-turbo_reference"}
    cols = [c for c in table.column_names if c not in skip]
    return table.select(cols).to_pylist()


def _load_demo(field_map: Mapping[str, str] | None) -> tuple[xr.Dataset, GairTable | None]:
    path = resources.files("bayesdissect.data").joinpath(DEMO_FILE)
    with resources.as_file(path) as p:
        if not Path(p).exists():
            raise BayesDissectError(
                f"demo: bundled file {DEMO_FILE} is missing from the installed package; "
                "reinstall bayesdissect or run benchmarks/make_demo_data.py")
        data, table = _load_parquet(Path(p), "demo", field_map, None)
    data.attrs["source"] = "demo"
    return data, table


# ---------------------------------------------------------------------------
# Hugging Face hub
# ---------------------------------------------------------------------------

def _load_hf(text: str, field_map: Mapping[str, str] | None, split: str,
             title: str | None) -> tuple[xr.Dataset, GairTable]:
    repo = text[3:].strip()
    local_hint = ("download it where the hub is reachable (datasets.load_dataset(...)"
                  ".to_parquet('gair.parquet')) and pass the local file instead, "
                  "e.g. bayesdissect.load('gair.parquet')")
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", repo):
        raise BayesDissectError(f"{text}: not a valid dataset id; expected hf:<owner>/<name>, "
                                "e.g. hf:GAIR/preference-dissection")
    offline = any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
                  for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"))
    if not offline and not proxied:
        reason = _probe_hub()
        if reason:
            raise BayesDissectError(f"{text}: the Hugging Face hub is unreachable ({reason}); "
                                    f"{local_hint}")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
    try:
        import datasets
        import huggingface_hub.constants as hub_constants

        hub_constants.HF_HUB_ETAG_TIMEOUT = int(os.environ["HF_HUB_ETAG_TIMEOUT"])
        hub_constants.HF_HUB_DOWNLOAD_TIMEOUT = int(os.environ["HF_HUB_DOWNLOAD_TIMEOUT"])
        token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
        ds = datasets.load_dataset(repo, split=split, token=token)
    except Exception as exc:
        name = type(exc).__name__
        msg = str(exc)
        if "Gated" in name or "401" in msg or "403" in msg or "gated" in msg.lower():
            what = ("access is missing (gated dataset: accept its conditions on the hub and "
                    "set HF_TOKEN)")
        elif "NotFound" in name or "404" in msg or "doesn't exist" in msg:
            what = "dataset not found, or your token has no access to it"
        else:
            what = f"could not be loaded ({name}: {_reason(exc)})"
        raise BayesDissectError(f"{text}: {what}; {local_hint}") from None
    if not isinstance(ds, datasets.Dataset):
        raise BayesDissectError(f"{text}: split {split!r} did not give one table "
                                f"(got {type(ds).__name__}); expected a split name such as "
                                "'train'")
    table = ds.data.table
    return _from_gair_rows(_arrow_rows(table), text, field_map, title,
                           {"title": f"GAIR preference-dissection ({repo}, split {split})"})


def _probe_hub() -> str:
    """'' if the hub endpoint accepts a TCP connection within a few seconds, else why not.
    Run in a thread so that a slow DNS lookup cannot block for minutes either."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)

    def connect() -> str:
        try:
            socket.create_connection((host, port), timeout=_HF_PROBE_SECONDS).close()
            return ""
        except OSError as exc:
            return f"cannot connect to {host}:{port}: {_reason(exc)}"

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(connect).result(timeout=_HF_PROBE_SECONDS + 0.5)
    except concurrent.futures.TimeoutError:
        return f"no answer from {host}:{port} within {_HF_PROBE_SECONDS:.0f} s"
    finally:
        pool.shutdown(wait=False)


# ---------------------------------------------------------------------------
# First-load checks (dataset.md §9)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One first-load check: what is compared, its value here, the paper's value, whether
    they differ, and a note (e.g. the drops of a group, which the paper did not publish)."""

    what: str
    here: str
    paper: str
    differs: bool
    note: str = ""


def first_load_checks(table: GairTable) -> list[Check]:
    """dataset.md §9 on all rows of a GAIR source (dropped pairs included, as the paper's
    sizes are): rows, judges, missing labels, group and case sizes with the drops of each
    group, and the human label balance overall, per group and per case (§4, §8)."""
    n = len(table.keep)
    out = [Check("rows", str(n), str(PAPER_ROWS), n != PAPER_ROWS)]
    present = sum(j in table.judges for j in JUDGE_KEYS)
    out.append(Check("paper judges present", str(present), str(len(JUDGE_KEYS)),
                     present != len(JUDGE_KEYS)))
    others = [j for j in table.judges if j not in JUDGE_KEYS]
    if others:
        shown = ", ".join(others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4
                                         else "")
        out.append(Check("other judges", str(len(others)), "0", True, shown))
    missing = int(np.isnan(table.y).sum())
    out.append(Check("labels missing", str(missing), "0", missing != 0))
    group = np.asarray(table.group, dtype=str)
    names = list(SCENARIO_SIZES) + sorted(set(group) - set(SCENARIO_SIZES))
    for g in names:
        rows = group == g
        size, want = int(rows.sum()), SCENARIO_SIZES.get(g)
        out.append(Check(f"group {g}", str(size), "-" if want is None else str(want),
                         size != want, f"{int((rows & ~table.keep).sum())} dropped"))
    for c in CASES:
        size = int(table.cases[c].sum())
        out.append(Check(f"case {c}", str(size), str(CASE_SIZES[c]), size != CASE_SIZES[c]))
    out.append(Check("dropped by the accuracy rule", str(int((~table.keep).sum())), "?",
                     False, "the paper did not publish these counts (dataset.md §10.4)"))
    if "human" not in table.judges:
        out.append(Check("human labels", "none", str(PAPER_ROWS), True))
        return out
    y = table.y[:, table.judges.index("human")]
    subsets = [("all rows", np.ones(n, dtype=bool), PAPER_ROWS, HUMAN_A_TOTAL)]
    subsets += [(f"group {g}", group == g, SCENARIO_SIZES[g], HUMAN_A_COUNTS[g])
                for g in SCENARIO_SIZES]
    subsets += [(f"case {c}", table.cases[c], CASE_SIZES[c], HUMAN_A_COUNTS[c])
                for c in CASES]
    for what, rows, size, a_count in subsets:
        labelled = rows & ~np.isnan(y)
        k, m = int((y[labelled] == 1.0).sum()), int(labelled.sum())
        here = f"{100 * k / m:.2f}%" if m else "no labels"
        out.append(Check(f"human share of A, {what}", here, f"{100 * a_count / size:.2f}%",
                         (k, m) != (a_count, size)))
    return out


# ---------------------------------------------------------------------------
# Tidy tables
# ---------------------------------------------------------------------------

def _read_csv(path: Path, sep: str) -> pd.DataFrame:
    source = str(path)
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise BayesDissectError(f"{source}: file is empty; expected a header row with "
                                "label:<judge> and property columns") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise BayesDissectError(f"{source}: cannot read CSV ({_reason(exc)})") from None


_TRUE = {"1", "true", "yes", "y", "t", "1.0"}
_FALSE = {"0", "false", "no", "n", "f", "0.0", ""}


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or \
        (isinstance(v, str) and not v.strip())


def _from_tidy(df: pd.DataFrame, source: str, title: str | None) -> xr.Dataset:
    """A tidy table (one row per pair) -> contract dataset."""
    if len(df.columns) == 0 or len(df) == 0:
        raise BayesDissectError(f"{source}: table has no rows; expected one row per pair")
    cols = [str(c) for c in df.columns]
    df = df.copy()
    df.columns = cols
    label_cols = [c for c in cols if c.startswith("label:")]
    case_cols = [c for c in cols if c.startswith("case:")]
    prop_cols = [c for c in cols if c not in ("pair", "group") and c not in label_cols
                 and c not in case_cols]
    if not label_cols:
        raise BayesDissectError(f"{source}: no label:<judge> column; expected one per judge "
                                "(values 1/2, A/B or response_1/response_2)")
    if not prop_cols:
        raise BayesDissectError(f"{source}: no property columns; expected at least one "
                                "numeric comparison column")
    n = len(df)
    where = lambda i, c: f"{source}: row {i}, column {c!r}"  # noqa: E731

    if "pair" in df.columns:
        ids = pd.to_numeric(df["pair"], errors="coerce").to_numpy(dtype=np.float64)
        for i in np.flatnonzero(~np.isfinite(ids) | (ids != np.round(ids)) | (ids < 0)):
            raise BayesDissectError(f"{where(i, 'pair')} is {_short(df['pair'].iloc[i])}; "
                                    "expected a non-negative integer pair id")
        pair = ids.astype(np.int64)
        dup = pd.Series(pair).duplicated().to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            raise BayesDissectError(f"{where(i, 'pair')} repeats pair id {pair[i]}; "
                                    "expected unique ids")
    else:
        pair = np.arange(n, dtype=np.int64)

    if "group" in df.columns:
        group = df["group"].to_numpy(dtype=object)
        for i, g in enumerate(group):
            if _blank(g):
                raise BayesDissectError(f"{where(i, 'group')} is empty; expected a group name")
        group = np.asarray([str(g) for g in group], dtype=object)
    else:
        group = np.full(n, "all", dtype=object)

    cases: dict[str, np.ndarray] = {}
    for c in case_cols:
        name = c[5:].strip()
        if not re.fullmatch(r"[A-Za-z_][\w]*", name):
            raise BayesDissectError(f"{source}: column {c!r}: case name must be a plain "
                                    "identifier (letters, digits, _)")
        flags = np.zeros(n, dtype=bool)
        for i, v in enumerate(df[c].to_numpy(dtype=object)):
            if isinstance(v, (bool, np.bool_)):
                flags[i] = bool(v)
                continue
            key = "" if _blank(v) else str(v).strip().lower()
            if key in _TRUE:
                flags[i] = True
            elif key not in _FALSE:
                raise BayesDissectError(f"{where(i, c)} is {_short(v)}; expected a boolean "
                                        "flag (true/false, 1/0, yes/no)")
        cases[name] = flags

    judges = [c[6:].strip() for c in label_cols]
    if any(not j for j in judges) or len(set(judges)) != len(judges):
        raise BayesDissectError(f"{source}: label columns {label_cols}: judge names must be "
                                "non-empty and unique")
    y = np.empty((n, len(judges)), dtype=np.float64)
    for k, c in enumerate(label_cols):
        for i, v in enumerate(df[c].to_numpy(dtype=object)):
            if _blank(v):
                y[i, k] = np.nan
                continue
            try:
                y[i, k] = parse_label(v)
            except (KeyError, TypeError):
                raise BayesDissectError(
                    f"{where(i, c)} is {_short(v)}; expected 1/2, A/B, response_1/response_2 "
                    "or empty (not labelled)") from None

    x = np.empty((n, len(prop_cols)), dtype=np.float64)
    for k, c in enumerate(prop_cols):
        raw = df[c]
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(num)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            v = raw.iloc[i]
            what = "empty" if _blank(v) else f"{_short(v)}"
            raise BayesDissectError(f"{where(i, c)} is {what}; expected a finite number "
                                    "(property comparison value, +1 = response 1 better)")
        x[:, k] = num
    return build_dataset(x, y, pair=pair, properties=prop_cols, judges=judges, group=group,
                         cases=cases, source=source, n_dropped=0, simulated=False,
                         title=title or f"Tidy preference table ({Path(source).name})")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
