"""Commands ``fit`` (fit a model spec to data and save it) and ``check`` (diagnostics).

``check`` is built from sections: each entry of ``CHECK_SECTIONS`` is a function
``(fit, args) -> dict``; the diagnostics section comes first, and more sections (e.g.
posterior predictive checks) are added by appending to the list. JSON output is one object
with the diagnostics' keys at the top level and every other section under its name.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.specs import DEFAULT_MODEL


def _int_arg(text: str | None, flag: str, low: int | None) -> int | None:
    """Parse an integer option here (not in argparse) so a bad value is one clear line."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise BayesDissectError(f"{flag}: expected an integer, got {text!r}") from None
    if low is not None and value < low:
        raise BayesDissectError(f"{flag}: expected an integer >= {low}, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fit`` and ``check``."""
    p = sub.add_parser("fit", help="fit a model to data and save the fit",
                       description="Fit a model spec to DATA with NUTS and save the fit "
                       "(an ArviZ DataTree: posterior, sample_stats, observed_data, "
                       "constant_data; spec and diagnostics as attributes) to one netCDF "
                       "file.")
    p.add_argument("data", metavar="DATA",
                   help="dataset: 'demo', a GAIR parquet/jsonl file, hf:ID, or a tidy table")
    p.add_argument("--out", required=True, metavar="FIT", help="where to write the fit (.nc)")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|PATH",
                   help="built-in spec (hierarchical, hierarchical-pair, paper, pooled, ...) or "
                   f"a spec .toml (default: {DEFAULT_MODEL})")
    p.add_argument("--sampler", default=None,
                   help="nutpie (the default of most specs), pymc, numpyro, blackjax; percell "
                        "(the paper spec's default) fits each judge x group cell separately")
    p.add_argument("--chains", default=None, metavar="N", help="number of chains")
    p.add_argument("--draws", default=None, metavar="N", help="draws per chain after tuning")
    p.add_argument("--tune", default=None, metavar="N", help="tuning steps per chain")
    p.add_argument("--min-draws", default=None, metavar="N",
                   help="nutpie: sample until converged (R-hat <= 1.01, ESS >= 400), checked "
                        "from N draws per chain on, --draws at most (default: from the spec; "
                        "0: exactly --draws)")
    p.add_argument("--seed", default=None, metavar="S", help="random seed (same seed, same "
                   "draws)")
    p.add_argument("--target-accept", default=None, metavar="P",
                   help="NUTS target acceptance rate in (0, 1)")
    p.add_argument("--backend", choices=["numba", "jax"], default=None,
                   help="nutpie compile back end (default: from the spec)")
    p.add_argument("--judges", default=None, metavar="A,B,...", help="fit only these judges")
    p.add_argument("--groups", default=None, metavar="G1,G2,...", help="fit only these groups")
    p.add_argument("--subset", default=None, metavar="CASE",
                   help="fit only the pairs of one case (e.g. w_stances), as one group")
    p.add_argument("--field-map", metavar="JSON", default=None,
                   help="rename fields of a GAIR source, as for `bayesdissect info` (a JSON "
                   "object or .json file, canonical name -> yours; '-name' for an inverted "
                   "0-3 rating)")
    p.add_argument("--init", default=None, metavar="PREVIOUS_FIT",
                   help="warm start: begin every chain at this saved fit's posterior means "
                   "(judges, groups, properties matched by name; new ones start at 0)")
    p.add_argument("--folds", default=None, metavar="K",
                   help="percell only: the paper's K folds of 90%% per cell (e.g. 10)")
    p.add_argument("--cell-groups", choices=["scenarios", "scenarios+cases"],
                   default="scenarios", help="percell only: the groups fitted as cells "
                   "(scenarios+cases adds the 5 query-specific cases, as the paper does)")
    p.add_argument("--thin", default=None, metavar="K",
                   help="save every K-th draw (a smaller file; R-hat and ESS stay those of "
                        "all draws)")
    p.add_argument("--compress", default=None, metavar="LEVEL",
                   help="zlib level 0-9 of the saved file (lossless, ~15%% smaller, slower)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_fit)

    c = sub.add_parser("check", help="diagnostics and posterior predictive checks of a fit",
                       description="Print a saved fit's diagnostics (R-hat, ESS, divergences, "
                       "tree depth, E-BFMI, step size, time per phase) and its posterior "
                       "predictive checks (accuracy, log score, calibration, per-judge/group "
                       "shares, judge-pair agreement, PSIS-LOO). Full tables: 'bayesdissect ppc'.")
    c.add_argument("fit", metavar="FIT", help="a fit written by 'bayesdissect fit'")
    c.add_argument("--format", choices=["table", "json"], default="table")
    c.add_argument("--no-ppc", action="store_true",
                   help="diagnostics only (skip the posterior predictive checks)")
    c.add_argument("--no-loo", action="store_true", help="skip PSIS-LOO")
    c.set_defaults(func=_check)


def _fit(args: argparse.Namespace) -> int:
    import warnings

    from bayesdissect.model.fitted import load_fit
    from bayesdissect.model.sample import fit
    from bayesdissect.model.specs import load_spec

    spec = load_spec(args.model)  # a bad model name fails before the data are read
    init = None
    if args.init is not None:  # a bad --init fails before the data are read, too
        try:
            init = load_fit(args.init)
        except BayesDissectError as exc:
            raise BayesDissectError(f"--init: {exc}") from None
    chains = _int_arg(args.chains, "--chains", 1)
    draws = _int_arg(args.draws, "--draws", 1)
    tune = _int_arg(args.tune, "--tune", 0)
    min_draws = _int_arg(args.min_draws, "--min-draws", 0)
    seed = _int_arg(args.seed, "--seed", 0)
    folds = _int_arg(args.folds, "--folds", 2)
    thin = _int_arg(args.thin, "--thin", 1) or 1
    first_check = spec.sampler.min_draws if min_draws is None else min_draws
    fewest = min(draws or spec.sampler.draws, first_check or sys.maxsize)  # draws kept, at least
    if thin > fewest:  # said before sampling, not after
        raise BayesDissectError(f"--thin: expected at most the {fewest} draws per chain, got "
                                f"{thin}")
    compress = _int_arg(args.compress, "--compress", 0) or 0
    if compress > 9:
        raise BayesDissectError(f"--compress: expected a zlib level 0-9, got {compress}")
    target_accept = None
    if args.target_accept is not None:
        try:
            target_accept = float(args.target_accept)
        except ValueError:
            target_accept = float("nan")
        if not 0 < target_accept < 1:
            raise BayesDissectError(f"--target-accept: expected a number in (0, 1), got "
                                    f"{args.target_accept!r}")
    if args.sampler is not None:
        from bayesdissect.model.sample import _check_sampler
        _check_sampler(args.sampler)
    from bayesdissect.cli.data import data_warnings_on_stderr, parse_field_map
    from bayesdissect.data.loaders import load

    with data_warnings_on_stderr():  # what the loader cannot see, said before sampling
        data = load(args.data, field_map=parse_field_map(args.field_map))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fit(data, model=args.model, sampler=args.sampler, chains=chains,
                         draws=draws, tune=tune, seed=seed, target_accept=target_accept,
                         judges=args.judges, groups=args.groups, subset=args.subset,
                         progressbar=not args.quiet and sys.stderr.isatty(),
                         backend=args.backend, initvals=init, folds=folds,
                         cell_groups=args.cell_groups, min_draws=min_draws)
        except BayesDissectError as exc:
            if str(exc).startswith("initvals:"):  # the library's name for --init
                raise BayesDissectError("--init:" + str(exc)[len("initvals:"):]) from None
            raise
    result.save(args.out, thin=thin, compress=compress)
    from bayesdissect.model.diagnostics import SamplerWarning

    for w in caught:
        message = str(w.message)
        if issubclass(w.category, SamplerWarning) or (
                issubclass(w.category, UserWarning) and ("converged" in message
                                                         or message.startswith("initvals:"))):
            print(f"warning: {message.replace('initvals:', '--init:', 1)}", file=sys.stderr)
    if not args.quiet:
        d = result.diagnostics
        cells = f"{d['n_cells']} cells x " if "n_cells" in d else ""
        print(f"wrote {args.out}: {result.spec.name}, {cells}{d['chains']} chains x "
              f"{d['draws']} draws, "
              f"max R-hat {d['max_rhat']:.3f}, min ESS bulk {d['min_ess_bulk']:.0f}, "
              f"{d['divergences']} divergences, {d['total_seconds']:.0f} s", file=sys.stderr)
    return 0


def diagnostics_section(fit: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The stored convergence diagnostics (plus the fit's settings)."""
    d = dict(fit.diagnostics)
    d["model"] = fit.spec.name
    d["settings"] = fit.settings
    return d


def predictive_section(fit: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Posterior predictive checks in brief (``bayesdissect ppc`` prints the full tables)."""
    if getattr(args, "no_ppc", False):
        return {}
    from bayesdissect.cli.queries import check_warnings
    from bayesdissect.queries.predictive import loo, ppc

    lr = loo(fit)  # once: the checks' leave-one-out calibration and elpd_loo below
    res = ppc(fit, loo_result=lr)
    sc = res.scores.set_index("judge").loc["all"]
    flags = res.flags.set_index("check")
    out: dict[str, Any] = {
        "warnings": check_warnings(res),
        **{f"{c}_p": float(flags.loc[c, "p_value"]) for c in flags.index},
        "draws_used": res.n_draws,
        "accuracy": float(sc.accuracy),
        "log_score": float(sc.log_score),
        "calibration_ece": float(res.calibration.attrs.get("ece", float("nan"))),
        "flagged_judges": [str(j) for j in res.by_judge.judge[res.by_judge.flag]],
        "flagged_groups": [str(g) for g in res.by_group.group[res.by_group.flag]],
        **{f"flagged_{k}": v for k, v in res.flagged().items() if k.startswith("agreement")},
        "worst_agreement": [
            f"{r.judge_a} ~ {r.judge_b}: observed {r.observed:.3f}, replicated "
            f"{r.rep_mean:.3f}, p {r.ppp:.3f}"
            for r in res.worst_agreement(3).itertuples()],
    }
    if not getattr(args, "no_loo", False):
        out.update(elpd_loo=lr.elpd_loo, elpd_loo_se=lr.se, p_loo=lr.p_loo,
                   loo_bad_pareto_k=lr.n_bad_k)
    return out


#: Sections of ``check``; append ``(name, function)`` to add one.
CHECK_SECTIONS: list[tuple[str, Callable[[Any, argparse.Namespace], dict[str, Any]]]] = [
    ("diagnostics", diagnostics_section),
    ("predictive", predictive_section),
]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _check(args: argparse.Namespace) -> int:
    from bayesdissect.model.diagnostics import summary_table
    from bayesdissect.model.fitted import load_fit

    fit = load_fit(args.fit)
    sections = {name: fn(fit, args) for name, fn in CHECK_SECTIONS}
    sections = {name: sec for name, sec in sections.items() if sec}
    diag = sections.pop("diagnostics")
    warns = list(sections.get("predictive", {}).get("warnings") or [])
    if args.format == "json":
        out = {"warnings": warns, **diag, **sections}
        sys.stdout.write(json.dumps(out, indent=1, default=str) + "\n")
        return 0
    lines = [*warns, f"model: {diag['model']}"]  # what the checks flag comes first
    rows = summary_table(diag)
    width = max((len(k) for k, _ in rows), default=0)
    lines += [f"{k:<{width}}  {_fmt(v)}" for k, v in rows]
    for key, title in (("worst_rhat", "largest R-hat"), ("worst_ess_bulk", "smallest bulk ESS"),
                       ("worst_ess_tail", "smallest tail ESS")):
        worst = diag.get(key) or []
        if worst:
            lines.append(f"{title}: " + ", ".join(f"{n} ({_fmt(v)})" for n, v in worst[:3]))
    warns = diag.get("warnings") or []
    lines.append("converged: " + ("yes" if not warns else "NO -- " + "; ".join(warns)))
    notes = diag.get("sampler_warnings") or []
    if notes:  # tree depth, E-BFMI: worth a look, not a failure
        lines.append("sampler: " + "; ".join(notes))
    for name, sec in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k}: {_fmt(v)}" for k, v in sec.items() if k != "warnings"]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
