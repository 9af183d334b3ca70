"""Data commands: ``simulate`` (GAIR-schema data with known weights) and ``info DATA``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bayesdissect.errors import BayesDissectError


def register(sub: Any) -> None:
    """Add ``simulate`` and ``info`` to the CLI."""
    p = sub.add_parser(
        "simulate", help="write a simulated GAIR-schema dataset with known true weights",
        description="Simulate pairs in the canonical GAIR row schema (raw annotations) with "
        "labels drawn from known weights: from the model's own prior (--regime prior, where "
        "any correct sampler looks calibrated) or from sparse heavy-tailed paper-shaped "
        "weights (--regime sparse), optionally with a per-pair quality shared by all judges "
        "(--pair-sd); the last two test the model against truth it does not assume. The "
        "truth (weights, pair effects, true judge similarities) goes to FILE.truth.nc.")
    p.add_argument("--out", required=True, metavar="FILE", help="output .parquet or .jsonl")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    jg = p.add_mutually_exclusive_group()
    jg.add_argument("--judges", type=int, metavar="N",
                    help="number of judges (the paper's keys first; default: all 33)")
    jg.add_argument("--paper-judges", action="store_true",
                    help="the paper's 33 judges (the default)")
    p.add_argument("--pairs", type=int, metavar="N", help="number of pairs (default 5,240)")
    p.add_argument("--groups", type=int, metavar="G",
                   help="number of groups (default: the 11 scenarios in paper proportions)")
    p.add_argument("--drop-rate", type=float, default=0.04,
                   help="share of pairs failing the accuracy check (default 0.04)")
    p.add_argument("--label-rate", type=float, default=1.0,
                   help="share of labels present; the rest are missing (default 1)")
    p.add_argument("--no-bias", action="store_true", help="no per-judge position bias")
    p.add_argument("--regime", default="prior", metavar="R",
                   help="where the true weights come from: prior (the model's own prior, the "
                   "default) or sparse (heavy-tailed, shaped like the paper's weights, judges "
                   "clustered by size)")
    p.add_argument("--pair-sd", default="0", metavar="SD",
                   help="sd on the logit of a latent per-pair quality shared by every judge "
                   "(default 0: none; e.g. 1.0)")
    p.add_argument("--title", help="title stored with the data")
    p.set_defaults(func=_simulate)

    q = sub.add_parser("info", help="load any data source and print what it holds",
                       description="Load DATA (GAIR parquet/JSON lines, hf:<id>, demo, tidy "
                       "CSV/parquet) and print pairs, judges, groups, cases, drops and the "
                       "share of pairs where each property is non-zero; on a GAIR source, "
                       "also the first-load checks of dataset.md §9 against the paper's "
                       "numbers. What the loader could not see (absent fields, keys it does "
                       "not read, unparseable ratings, properties 0 on every pair) is one "
                       "'warning:' line each on stderr.")
    q.add_argument("data", metavar="DATA")
    q.add_argument("--field-map", metavar="JSON",
                   help="rename fields: a JSON object or a .json file, canonical name -> "
                   "yours, e.g. '{\"errors\": \"inaccuracies\"}'; a leading '-' says the key "
                   "holds the inverted 0-3 rating, e.g. '{\"repetitive\": \"-non-repetitive\"}' "
                   "(read as 3 - r, so the sign comes out right)")
    q.set_defaults(func=_info)


def _simulate(args: argparse.Namespace) -> int:
    from bayesdissect.data.simulate import LEVELS, simulate

    if args.pairs is not None and args.pairs < 1:
        raise BayesDissectError(f"--pairs {args.pairs}: expected a positive number")
    try:   # a string here, so that a bad value is one line, not argparse's usage text
        pair_sd = float(args.pair_sd)
    except ValueError:
        raise BayesDissectError(f"--pair-sd {args.pair_sd}: expected a number >= 0") from None
    levels = tuple(lv for lv in LEVELS if not (args.no_bias and lv == "bias"))
    sim = simulate(args.out, n_pairs=args.pairs, judges=args.judges, groups=args.groups,
                   seed=args.seed, drop_rate=args.drop_rate, label_rate=args.label_rate,
                   levels=levels, title=args.title, regime=args.regime, pair_sd=pair_sd)
    d = sim.data
    pairs = f", pair effects sd {pair_sd:g}" if pair_sd > 0 else ""
    print(f"wrote {sim.path} (SIMULATED: {d.sizes['pair'] + d.attrs['n_dropped']} pairs, "
          f"{d.attrs['n_dropped']} failing the accuracy check, {d.sizes['judge']} judges, "
          f"{len(set(d['group'].values))} groups; {args.regime} regime{pairs}) and truth "
          f"{sim.truth_path}")
    return 0


def parse_field_map(text: str | None) -> dict[str, str] | None:
    """``--field-map``: inline JSON object or a path to a .json file."""
    if text is None:
        return None
    raw = text
    if not text.lstrip().startswith("{"):
        try:
            raw = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise BayesDissectError(f"--field-map {text}: cannot read ({exc.strerror}); "
                                    "expected a JSON object or a .json file") from None
    try:
        mapping = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BayesDissectError(f"--field-map: invalid JSON ({exc.msg}); expected an object "
                                "of canonical name -> your name") from None
    if not isinstance(mapping, dict):
        raise BayesDissectError("--field-map: expected a JSON object")
    return mapping


@contextlib.contextmanager
def data_warnings_on_stderr() -> Iterator[None]:
    """What the loader could not see (``DataWarning``) as one 'warning:' line each on stderr,
    printed as soon as the block ends (before a fit starts sampling); other warnings pass on."""
    import warnings

    from bayesdissect.errors import DataWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, DataWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _info(args: argparse.Namespace) -> int:
    from bayesdissect.data.loaders import first_load_checks, load_detailed

    with data_warnings_on_stderr():
        data, table = load_detailed(args.data, field_map=parse_field_map(args.field_map))
    out = sys.stdout
    n, nd = data.sizes["pair"], int(data.attrs.get("n_dropped", 0))
    title = str(data.attrs.get("title", ""))
    sim = " (SIMULATED data)" if data.attrs.get("simulated") and \
        "simulated" not in title.lower() else ""
    print(f"{title}{sim}", file=out)
    print(f"source:   {data.attrs.get('source', '')}", file=out)
    print(f"pairs:    {n} kept, {nd} dropped by the accuracy rule", file=out)
    labelled = data["y"].notnull().sum("pair").values
    print(f"judges:   {data.sizes['judge']} ({int(labelled.sum())} labels; "
          f"{int(labelled.min())}-{int(labelled.max())} per judge)", file=out)
    groups, counts = _counts(data["group"].values)
    print(f"groups:   {len(groups)}: " + ", ".join(f"{g} {c}" for g, c in zip(groups, counts,
                                                                         strict=True)),
          file=out)
    cases = [str(v) for v in data.data_vars if str(v).startswith("case_")]
    print("cases:    " + (", ".join(f"{c[5:]} {int(data[c].sum())}" for c in cases)
                          or "none"), file=out)
    print(f"properties: {data.sizes['property']}; share of kept pairs where each is non-zero "
          "(not a tie, not 'not applicable'):", file=out)
    share = (data["x"] != 0).mean("pair").values if n else [0.0] * data.sizes["property"]
    width = max(len(str(p)) for p in data["property"].values)
    for p, f in zip(data["property"].values, share, strict=True):
        flag = "  << 0 on every kept pair" if f == 0 else ""
        print(f"  {str(p):<{width}} {100 * f:6.1f}%{flag}", file=out)
    if table is None:
        return 0
    for what, k in table.counts.items():
        print(f"counted: {k} {what}", file=out)
    checks = first_load_checks(table)
    print("first-load checks (dataset.md §9) on all rows, dropped pairs included: this data, "
          "the paper, '<<' where they differ", file=out)
    width = max(len(c.what) for c in checks)
    for c in checks:
        flag = "  << differs" if c.differs else ""
        note = f"  ({c.note})" if c.note else ""
        print(f"  {c.what:<{width}} {c.here:>8} {c.paper:>8}{flag}{note}", file=out)
    differ = [c for c in checks if c.differs]
    print(f"{len(differ)} of {len(checks)} checks differ from the paper", file=out, end="")
    if data.attrs.get("simulated") and any(c.what.startswith("human share") for c in differ):
        print(" (simulated data: its labels come from the simulator, so the human label "
              "shares are not expected to match)", file=out)
    else:
        print(file=out)
    return 0


def _counts(values: Any) -> tuple[list[str], list[int]]:
    import numpy as np

    uniq, cnt = np.unique(np.asarray(values, dtype=str), return_counts=True)
    return [str(u) for u in uniq], [int(c) for c in cnt]
