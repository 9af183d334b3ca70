"""``bayesdissect add-judge FIT LABELS --name NAME --out FIT2 [--exact]``.

Adds a new judge's labels to a saved fit and writes a new fit that answers effects,
contrasts, similarity and clusters with the judge included. LABELS is a JSON list of
"A"/"B" per pair in source row order (the paper's format), a JSON object {pair: label}, or
a CSV with ``pair`` and ``label`` columns. The default fast path fits only the new judge
given FIT's population posterior; ``--exact`` refits everything, warm-started at FIT's
posterior means (about one full fit: 500 s vs 576 s at full size).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bayesdissect.errors import BayesDissectError


def _add_judge(args: argparse.Namespace) -> int:
    from bayesdissect.model.fitted import load_fit
    from bayesdissect.queries.addjudge import add_judge

    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise BayesDissectError(f"--out {out}: is a directory; expected a fit file path")
    if not Path(args.labels).is_file():
        raise BayesDissectError(f"LABELS {args.labels}: file not found")
    start = time.perf_counter()
    fit = load_fit(args.fit)
    new = add_judge(fit, args.labels, args.name, method="exact" if args.exact else "fast",
                    seed=args.seed, chains=args.chains, draws=args.draws, tune=args.tune,
                    progressbar=not args.quiet)
    new.save(out)  # atomic: a failed run leaves any earlier FIT2 untouched
    info = new.diagnostics.get("add_judge", {})
    if not args.quiet:
        print(f"added judge {args.name!r} ({info.get('labelled_pairs', '?')} labelled pairs, "
              f"{info.get('method', '?')} path) in {time.perf_counter() - start:.1f} s",
              file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``add-judge`` command."""
    p = subparsers.add_parser(
        "add-judge", help="add a new judge's labels to a fit (fast path or exact refit)",
        description="Add a new judge to a saved fit. LABELS: a JSON list of \"A\"/\"B\" per "
        "pair in source row order (null or \"\" = not labelled; pairs dropped from the fit "
        "are skipped), a JSON object {pair index: label}, or a CSV with columns pair,label. "
        "The fast path (default) fits only the new judge's own weights given FIT's "
        "population posterior (per posterior draw, a Laplace approximation of its "
        "conditional posterior; the new labels do not update the other judges). --exact "
        "refits the whole model with the new judge.")
    p.add_argument("fit", metavar="FIT", help="a fit file written by `bayesdissect fit`")
    p.add_argument("labels", metavar="LABELS", help="the new judge's labels (.json or .csv)")
    p.add_argument("--name", required=True, help="the new judge's name (must be new)")
    p.add_argument("--out", required=True, metavar="FIT2",
                   help="where to write the new fit (written atomically)")
    p.add_argument("--exact", action="store_true",
                   help="refit everything with the new judge, warm-started at FIT "
                   "(about one full fit)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--chains", type=int, default=None,
                   help="exact path / paper spec: chains (default: FIT's)")
    p.add_argument("--draws", type=int, default=None,
                   help="exact path / paper spec: draws per chain (default: FIT's)")
    p.add_argument("--tune", type=int, default=None,
                   help="exact path / paper spec: tuning steps (default: FIT's)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_add_judge)
