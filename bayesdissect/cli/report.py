"""``bayesdissect report FIT --out DIR`` and ``bayesdissect demo``: the front door.

``demo`` loads the bundled simulated data, fits the ``demo`` spec (the hierarchical model
with one scale per level, models/demo.toml) on a scope that converges in about two minutes
on two cores (8 judges, all groups, the spec's 4 chains x 1,200 draws; it says so), writes
the report and prints where it is with a short summary table. ``--full`` fits all judges
with the default ``hierarchical-pair`` spec and its sampler defaults (the paper-sized analysis).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from bayesdissect.model.specs import DEFAULT_MODEL

#: Judges of the default demo scope: the paper's two headline judges plus open models of
#: every size and both kinds (base/aligned), so every figure has something to show.
DEMO_JUDGES: tuple[str, ...] = (
    "human", "gpt-4-1106-preview", "gpt-3.5-turbo-1106", "llama-2-70b-chat", "llama-2-70b",
    "tulu-2-dpo-70b", "yi-6b-chat", "mistral-7b-instruct-v0.2",
)
#: The demo's spec (sampler settings included); ``--full`` fits FULL_MODEL instead.
DEMO_MODEL = "demo"
FULL_MODEL = DEFAULT_MODEL
DEMO_OUT = "bayesdissect-demo"


def _judge_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def _say(args: argparse.Namespace, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def _finish(args: argparse.Namespace, path: Path, findings: Any, seconds: float) -> None:
    """The end of a run: a compact summary table (unless --quiet), then where it is."""
    from bayesdissect.cli.output import render

    if not args.quiet:
        for line in findings.warnings():  # what the checks flag comes first, in words
            print(line)
        table = findings.summary(max_rows=12)
        if not table.empty:
            ref = findings.reference
            print(f"\nSummary ({findings.prob:.0%} intervals"
                  + (f"; credible diffs = properties on which the judge differs credibly "
                     f"from {ref}" if ref else "") + "):")
            sys.stdout.write(render(table, "table"))
        print(f"\ndone in {seconds:.0f} s")
    print(f"report: {path}")


def _report(args: argparse.Namespace) -> int:
    from bayesdissect._io import check_out_dir
    from bayesdissect.model.fitted import load_fit
    from bayesdissect.report.findings import compute_findings
    from bayesdissect.report.html import write_report

    start = time.perf_counter()
    check_out_dir(args.out)
    _say(args, f"loading {args.fit}")
    fit = load_fit(args.fit)
    findings = compute_findings(fit, _judge_list(args.judges), prob=args.prob, k=args.k,
                                checks=not args.no_checks,
                                progress=lambda m: _say(args, f"computing {m}"))
    path = write_report(fit, args.out, findings=findings,
                        progress=lambda m: _say(args, f"writing {m}"))
    _finish(args, path, findings, time.perf_counter() - start)
    return 0


def demo_scope(full: bool, judges: list[str] | None, available: list[str]) -> list[str] | None:
    """The judges a demo fits: None (all) with ``--full``, the given ones, or DEMO_JUDGES
    (those the data have)."""
    if judges:
        return judges
    if full:
        return None
    return [j for j in DEMO_JUDGES if j in available]


def _demo(args: argparse.Namespace) -> int:
    import bayesdissect as bd
    from bayesdissect._io import check_out_dir
    from bayesdissect.report.findings import compute_findings
    from bayesdissect.report.html import write_report

    start = time.perf_counter()
    out = Path(args.out)
    check_out_dir(out)
    data = bd.load("demo")
    available = [str(j) for j in data["judge"].values]
    judges = demo_scope(args.full, _judge_list(args.judges), available)
    model = args.model or (FULL_MODEL if args.full else DEMO_MODEL)
    spec = bd.load_spec(model)
    sampling = {"chains": spec.sampler.chains, "draws": spec.sampler.draws,
                "tune": spec.sampler.tune}
    for key in ("chains", "draws", "tune"):
        if getattr(args, key) is not None:
            sampling[key] = getattr(args, key)
    n_j = len(judges) if judges else len(available)
    scope = (f"{n_j} of {len(available)} judges ({', '.join(judges)})" if judges
             and n_j < len(available) else f"all {len(available)} judges")
    early = spec.sampler.min_draws or 0
    n_draws = (f"{early}-{sampling['draws']} draws (until converged)"
               if 0 < early < sampling["draws"] else f"{sampling['draws']} draws")
    draws = f"{sampling['chains']} chains x {n_draws}, {sampling['tune']} tuning"
    n_groups = len(set(map(str, data["group"].values)))
    _say(args, f"bayesdissect demo: SIMULATED data bundled with the package "
               f"({data.sizes['pair']:,} pairs, {n_groups} groups).\n"
               f"scope: {scope}, all groups; model {spec.name} ({spec.description}); "
               f"{draws}."
               + ("" if args.full else f"\n       (bayesdissect demo --full fits all judges "
                  f"with the {FULL_MODEL} model and its default draws: the paper-sized "
                  "analysis)"))
    _say(args, "fitting: building and compiling the model (seconds), then sampling "
               "(progress bars on a terminal)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bd.fit(data, model=spec, judges=judges, seed=args.seed,
                     progressbar=not args.quiet, **sampling)
    for w in caught:  # one line each, without the source line Python's default shows
        print(f"warning: {w.message}", file=sys.stderr)
    findings = compute_findings(fit, None, prob=0.9,
                                progress=lambda m: _say(args, f"computing {m}"))
    path = write_report(fit, out, findings=findings,
                        progress=lambda m: _say(args, f"writing {m}"))
    fit.save(out / "fit.nc")
    _say(args, f"fit saved to {out / 'fit.nc'} (query it: bayesdissect effects "
               f"{out / 'fit.nc'} --judge human)")
    _finish(args, path, findings, time.perf_counter() - start)
    return 0


def register(subparsers: Any) -> None:
    """Add ``report`` and ``demo`` to the command line."""
    p = subparsers.add_parser(
        "report", help="write an HTML report (figures, findings, CSV tables) of a saved fit",
        description="Write DIR/report.html with its figures and effects.csv, similarity.csv "
        "(predicted agreement), similarity_paper.csv (the paper's correlation), clusters.csv "
        "and more beside it. DIR is replaced only once the new report is complete.")
    p.add_argument("fit", metavar="FIT", help="a saved fit (from `bayesdissect fit`)")
    p.add_argument("--out", metavar="DIR", required=True, help="report folder")
    p.add_argument("--judges", metavar="A,B", default=None,
                   help="judges to feature (default: human,gpt-4-1106-preview)")
    p.add_argument("--prob", type=float, default=0.9,
                   help="credible interval probability (default 0.9)")
    p.add_argument("--k", type=int, default=None,
                   help="number of judge clusters (default: best mean silhouette)")
    p.add_argument("--no-checks", action="store_true",
                   help="skip the posterior predictive checks")
    p.add_argument("--quiet", action="store_true", help="print only the report path")
    p.set_defaults(func=_report)

    d = subparsers.add_parser(
        "demo", help="fit the bundled simulated data and write a report (the one-command start)",
        description="Load the bundled SIMULATED dataset, fit the default model and write a "
        f"report. Default scope (about two minutes on 2 cores): the {DEMO_MODEL!r} spec "
        "(one shared scale per level), "
        f"{len(DEMO_JUDGES)} judges incl. human and GPT-4-Turbo, all groups, the spec's "
        f"chains and draws. --full: all judges, the {FULL_MODEL!r} spec and its draws.")
    d.add_argument("--out", metavar="DIR", default=DEMO_OUT,
                   help=f"report folder (default: {DEMO_OUT})")
    d.add_argument("--full", action="store_true",
                   help=f"fit all judges with the {FULL_MODEL} spec's default draws "
                   "(paper-sized; about 10 minutes on 2 cores)")
    d.add_argument("--quiet", action="store_true",
                   help="no progress bars or summary; print only the report path")
    d.add_argument("--judges", metavar="A,B,...", default=None,
                   help="fit these judges instead of the default scope")
    d.add_argument("--model", default=None,
                   help=f"model spec (default {DEMO_MODEL}; {FULL_MODEL} with --full)")
    d.add_argument("--chains", type=int, default=None, help="override the number of chains")
    d.add_argument("--draws", type=int, default=None, help="override the draws per chain")
    d.add_argument("--tune", type=int, default=None, help="override the tuning draws")
    d.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    d.set_defaults(func=_demo)
