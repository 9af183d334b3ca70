"""What-if commands of a saved fit: ``whatif`` (counterfactual win rates), ``exploit``
(per judge and property, the gain of always winning it), ``explain`` (one pair's logit
term by term) and ``departs`` (where a judge departs from a reference judge). Every table
goes through ``output.emit`` (``--format table|csv|json``, ``--out FILE``); ``--plot FILE``
saves the figure. All are the model's counterfactuals of an observational regression,
not causal experiments, and say so on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bayesdissect.cli.output import add_output_args, emit
from bayesdissect.queries.whatif import DEFAULT_MAX_DRAWS

_NOT_CAUSAL = ("These are the fitted model's counterfactuals of an observational regression, "
               "not causal experiments: they say what the weights predict if only the given "
               "comparison values changed.")


def _load(path: str) -> Any:
    from bayesdissect.model.fitted import load_fit
    return load_fit(path)


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _caveat() -> None:
    """The one-line caveat on stderr (stdout stays a clean table / csv / json)."""
    from bayesdissect.queries.whatif import CAVEAT
    _say(f"note: {CAVEAT}")


_PLOT_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


def _check_plot(path: str | None) -> None:
    """Refuse a --plot file type matplotlib cannot write, before any work."""
    from bayesdissect.errors import BayesDissectError
    if path and Path(path).suffix.lower().lstrip(".") not in _PLOT_FORMATS:
        raise BayesDissectError(f"--plot {path}: unknown figure type; expected a file name "
                                f"ending in .{', .'.join(_PLOT_FORMATS)}")


def _plot(fig: Any, path: str | None) -> None:
    if not path:
        return
    from bayesdissect._io import atomic_path
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=130, format=target.suffix.lower().lstrip("."))
    _say(f"wrote {target}")


def _read_pairs(path: str | None) -> Any:
    """A user's own pairs: a CSV/TSV read as is (one column per property, ``group``,
    optional ``pair`` and ``case:<name>``; labels not needed), else any ``bayesdissect``
    data source (GAIR parquet / JSON lines, a tidy parquet)."""
    if not path:
        return None
    import pandas as pd

    from bayesdissect.errors import BayesDissectError
    p = Path(path)
    if not p.is_file():
        raise BayesDissectError(f"--pairs {path}: no such file; expected a CSV of pairs "
                                "(one column per property, and group) or a data file")
    if p.suffix.lower() in (".csv", ".tsv"):
        try:
            return pd.read_csv(p, sep="\t" if p.suffix.lower() == ".tsv" else ",")
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise BayesDissectError(f"--pairs {path}: cannot read it as CSV "
                                    f"({type(exc).__name__})") from None
    from bayesdissect.data.loaders import load
    return load(str(p))


def _pair_ids(text: str | None) -> list[int] | None:
    if not text:
        return None
    from bayesdissect.errors import BayesDissectError
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise BayesDissectError(f"--pair-ids {text!r}: expected comma-separated pair "
                                "coordinates, e.g. 3,17,40") from None


def _assignments(items: list[str] | None, flag: str) -> dict[str, float]:
    from bayesdissect.errors import BayesDissectError
    from bayesdissect.queries.whatif import parse_assignment
    out: dict[str, float] = {}
    for text in items or []:
        name, value = parse_assignment(text, flag)
        if name in out:
            raise BayesDissectError(f"{flag} {name!r} is given twice; give it once")
        out[name] = value
    return out


def _whatif(args: argparse.Namespace) -> int:
    from bayesdissect.errors import BayesDissectError
    from bayesdissect.queries.whatif import intervened_pairs, whatif
    if args.pairs and args.pair_ids:
        raise BayesDissectError("--pairs and --pair-ids: give one of them")
    fit = _load(args.fit)
    pairs = _read_pairs(args.pairs) if args.pairs else _pair_ids(args.pair_ids)
    kw = {"set": _assignments(args.set, "--set"), "shift": _assignments(args.shift, "--shift"),
          "swap": args.swap or [], "groups": args.group, "pairs": pairs,
          "clip": not args.no_clip, "applicable": not args.everywhere}
    df = whatif(fit, judges=args.judge, by_group=args.by_group, prob=args.prob,
                max_draws=args.max_draws, **kw)
    a = df.attrs
    _say(f"{'; '.join(a['interventions'])}: changed x on {a['n_intervened']} of "
         f"{int(df['n_pairs'].iloc[0])} pairs; {a['n_draws']} draws; win rates in % of "
         "pairs that response 1 wins, change in percentage points")
    _caveat()
    if args.intervened:
        from bayesdissect._io import atomic_path
        with atomic_path(args.intervened) as tmp:
            intervened_pairs(fit, **kw).to_csv(tmp, index=False)
        _say(f"wrote {args.intervened}")
    emit(df, args)
    return 0


def _exploit(args: argparse.Namespace) -> int:
    _check_plot(args.plot)
    from bayesdissect.queries.whatif import exploitability, most_exploitable
    fit = _load(args.fit)
    df = exploitability(fit, args.judge, properties=args.property, groups=args.group,
                        value=args.value, prob=args.prob, applicable=not args.everywhere,
                        max_draws=None if args.all_draws else args.max_draws)
    _say(f"{df.attrs['n_draws']} draws; gain / loss = change in the % of pairs response 1 "
         f"wins when it wins (x = {args.value:+g}) / loses the property on every pair, "
         "percentage points")
    _caveat()
    if args.plot:
        from bayesdissect.report.figures import plot_exploitability
        _plot(plot_exploitability(df, prob=args.prob), args.plot)
    emit(most_exploitable(df) if args.top else df, args)
    return 0


def _explain(args: argparse.Namespace) -> int:
    _check_plot(args.plot)
    from bayesdissect.queries.whatif import explain
    fit = _load(args.fit)
    df = explain(fit, args.pair, args.judge, prob=args.prob, max_draws=args.max_draws)
    _say(f"pair {df.attrs['pair']} (group {df.attrs['group']}); terms are x[i,k] * w[j,g,k] "
         f"on the logit scale; probability = P(response 1 wins); {df.attrs['n_draws']} draws")
    _caveat()
    if args.plot:
        from bayesdissect.report.figures import plot_explain
        _plot(plot_explain(df), args.plot)
    emit(df, args)
    return 0


def _departs(args: argparse.Namespace) -> int:
    _check_plot(args.plot)
    from bayesdissect.queries.whatif import departs
    fit = _load(args.fit)
    df = departs(fit, args.judge or None, reference=args.reference, groups=args.group,
                 measure=args.measure, prob=args.prob, max_draws=args.max_draws)
    what = ("mean |P_judge - P_reference|" if args.measure == "absolute"
            else "mean of P_judge - P_reference")
    _say(f"{what} over {df.attrs['n_pairs']} pairs, split by property (percentage points); "
         f"share = term / total; {df.attrs['n_draws']} draws")
    _caveat()
    if args.plot:
        from bayesdissect.report.figures import plot_departs
        _plot(plot_departs(df), args.plot)
    emit(df, args)
    return 0


def _common(p: argparse.ArgumentParser, draws_default: int | None = None) -> None:
    p.add_argument("--prob", type=float, default=0.9,
                   help="probability mass of the equal-tailed interval (default 0.9)")
    what = f"default {draws_default}" if draws_default else "default: every draw"
    p.add_argument("--max-draws", type=int, default=draws_default, metavar="N",
                   help=f"use at most N evenly thinned posterior draws ({what})")
    add_output_args(p)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the what-if commands to the ``bayesdissect`` dispatcher."""
    p = sub.add_parser(
        "whatif", help="counterfactual win rates: set, shift or swap a property",
        description="The posterior predictive probability that response 1 wins, averaged "
        "over pairs, before and after changing a property's comparison value, per judge "
        "(and group), with the change's interval. Columns: judge, group, n_pairs, before, "
        "after, change, change_lower, change_upper (percentage points). " + _NOT_CAUSAL)
    p.add_argument("fit", metavar="FIT", help="a saved fit (bayesdissect fit ... --out FIT)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="set the property's comparison to VALUE on every pair (+1 = "
                   "response 1 better, 0 = tie, -1 = worse); quote names with spaces, e.g. "
                   "--set \"no severe errors=+1\"; may repeat")
    p.add_argument("--shift", action="append", metavar="NAME=DELTA",
                   help="move the comparison by DELTA (clipped to the property's observed "
                   "range unless --no-clip); may repeat")
    p.add_argument("--swap", action="append", metavar="NAME",
                   help="exchange the two responses on this property (x -> -x); may repeat")
    p.add_argument("--judge", nargs="+", default=None, metavar="JUDGE",
                   help="only these judges (default: all)")
    p.add_argument("--group", nargs="+", default=None, metavar="GROUP",
                   help="only the pairs of these groups")
    p.add_argument("--by-group", action="store_true",
                   help="also one row per group (group = all is the average over all pairs)")
    p.add_argument("--pairs", default=None, metavar="FILE",
                   help="your own pairs instead of the fitted ones: a CSV with one column per "
                   "property and group (labels not needed), or a data file")
    p.add_argument("--pair-ids", default=None, metavar="ID,ID,...",
                   help="only these fitted pairs (the pair coordinate, the source row)")
    p.add_argument("--no-clip", action="store_true",
                   help="let --shift leave the property's observed range")
    p.add_argument("--everywhere", action="store_true",
                   help="change a query-specific property (clarify intent, ...) on every "
                   "pair, not only in its case")
    p.add_argument("--intervened", default=None, metavar="FILE",
                   help="write every changed (pair, property) with x before and after as CSV")
    _common(p, draws_default=DEFAULT_MAX_DRAWS)
    p.set_defaults(func=_whatif)

    p = sub.add_parser(
        "exploit", help="how far each judge can be gamed on each property",
        description="Per judge and property: the change in the share of pairs response 1 "
        "wins when it wins that property on every pair where it does not today (gain) or "
        "loses it everywhere (loss), with intervals, ranked per judge. " + _NOT_CAUSAL)
    p.add_argument("fit", metavar="FIT")
    p.add_argument("--judge", nargs="+", default=None, metavar="JUDGE",
                   help="only these judges (default: all)")
    p.add_argument("--property", nargs="+", default=None, metavar="PROPERTY",
                   help="only these properties (default: all)")
    p.add_argument("--group", nargs="+", default=None, metavar="GROUP",
                   help="only the pairs of these groups")
    p.add_argument("--top", action="store_true",
                   help="print only each judge's most exploitable property")
    p.add_argument("--value", type=float, default=1.0,
                   help="the comparison value of winning (losing: minus it; default 1)")
    p.add_argument("--everywhere", action="store_true",
                   help="a query-specific property on every pair, not only in its case")
    p.add_argument("--all-draws", action="store_true",
                   help="use every posterior draw (slower; default: at most --max-draws)")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="save the judges x properties heatmap of the gain (png, pdf, svg)")
    _common(p, draws_default=DEFAULT_MAX_DRAWS)
    p.set_defaults(func=_exploit)

    p = sub.add_parser(
        "explain", help="one pair's prediction, property by property",
        description="For one pair: each property's contribution x[i,k] * w[j,g,k] to the "
        "logit (largest first), the bias, the logit and P(response 1 wins), each with its "
        "interval, and the judge's label (observed: 1 = response 1). Columns: judge, term, "
        "x, mean, lower, upper, observed. The terms of the fitted regression, not the "
        "causes of the judge's choice.")
    p.add_argument("fit", metavar="FIT")
    p.add_argument("pair", metavar="PAIR", help="the pair coordinate (the source row)")
    p.add_argument("--judge", nargs="+", default=None, metavar="JUDGE",
                   help="only these judges (default: all)")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="save the waterfall of the first judge (png, pdf, svg)")
    _common(p)
    p.set_defaults(func=_explain)

    p = sub.add_parser(
        "departs", help="where a judge departs from the reference (default human)",
        description="The difference in predicted win probability between each judge and "
        "the reference over the pairs, split exactly into one contribution per property and "
        "the bias (integrated gradients along the straight path from the reference's "
        "weights to the judge's), with intervals. Columns: judge, reference, term, mean, "
        "lower, upper, share. " + _NOT_CAUSAL)
    p.add_argument("fit", metavar="FIT")
    p.add_argument("judge", nargs="*", metavar="JUDGE",
                   help="the judges to compare (default: every judge but the reference)")
    p.add_argument("--reference", default="human", help="the reference judge (default human)")
    p.add_argument("--measure", default="absolute", choices=["absolute", "signed"],
                   help="absolute: mean |P_judge - P_ref| (how much they disagree; default); "
                   "signed: mean P_judge - P_ref (the gap in response 1's win rate)")
    p.add_argument("--group", nargs="+", default=None, metavar="GROUP",
                   help="only the pairs of these groups")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="save the bar chart of the first judge (png, pdf, svg)")
    _common(p)
    p.set_defaults(func=_departs)
