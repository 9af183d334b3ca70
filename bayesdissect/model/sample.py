"""Fit a model spec to a dataset with NUTS (model.md §4): ``fit(data, model, ...)``.

``fit`` checks the settings (the spec's ``[sampler]`` table fills what is not given),
subsets the data, builds the PyMC model, warm-starts it if asked, samples it with one of the
adapters below (nutpie, or PyMC's own / numpyro / blackjax NUTS through ``pm.sample``),
computes the diagnostics and returns a ``Fit`` (model/fitted.py). Each adapter returns the
sampler's DataTree (with warm-up groups) and its compile / sampling times.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
import warnings
from typing import Any

import numpy as np
import xarray as xr

from bayesdissect.data.subset import name_list, subset_data
from bayesdissect.errors import BayesDissectError
from bayesdissect.model.build import INTERNAL_PREFIXES, build_model
from bayesdissect.model.diagnostics import (
    chain_draw_arrays,
    compute_diagnostics,
    failing_elements,
    standard_stats,
    warn_if_unconverged,
)
from bayesdissect.model.fitted import Fit, load_fit, narrow_floats, netcdf_safe
from bayesdissect.model.specs import DEFAULT_MODEL, SAMPLERS, ModelSpec, load_spec
from bayesdissect.model.warmstart import warm_start

log = logging.getLogger("bayesdissect")
#: sampling until converged: the growth of the draws between two checks (each costs a copy
#: of the trace), the seconds between polls of the chains' progress, and the wait before
#: copying again when the trace lags the progress count
CHECK_GROWTH = 1.25
POLL_SECONDS = 0.5
LAG_SECONDS = 2.0


def _check_sampler(name: str) -> None:
    """A known sampler whose package (its module has the sampler's name) is installed."""
    if name not in SAMPLERS:
        raise BayesDissectError(f"--sampler: unknown sampler {name!r}; expected one of "
                                f"{SAMPLERS}")
    if name == "percell":  # our own JAX loop (model/percell.py); jax is a core dependency
        return
    if importlib.util.find_spec(name) is None or (
            name in ("numpyro", "blackjax") and importlib.util.find_spec("jax") is None):
        raise BayesDissectError(f"--sampler: sampler {name!r} is not installed; install it "
                                "(e.g. pip install 'bayesdissect[jax]') or pick another of "
                                f"{SAMPLERS}")


def _keep_vars(model: Any) -> list[str]:
    """The model's posterior-contract variables (its sampled ``z_*`` helpers left out)."""
    names = [v.name for v in model.free_RVs + model.deterministics]
    return [n for n in names if not n.startswith(INTERNAL_PREFIXES)]


def _sample_nutpie(model: Any, *, draws: int, tune: int, chains: int, seed: int,
                   target_accept: float, progressbar: bool, backend: str, adaptation: str,
                   cores: int | None, start: tuple[dict[str, np.ndarray], list[str]] | None = None,
                   min_draws: int | None = None) -> tuple[xr.DataTree, dict[str, float]]:
    import nutpie

    t0 = time.perf_counter()
    kw: dict[str, Any] = {}
    if backend == "jax":
        import jax
        import pytensor.link.jax.dispatch  # noqa: F401  (its import sets x64 from floatX)

        # float64 sums of float32 terms need x64 (PyTensor only turns it on for float64)
        jax.config.update("jax_enable_x64", True)
        kw = {"backend": "jax", "gradient_backend": "jax"}
    if start is not None:
        # start at the given point: no jitter, except for variables left at the default
        point, unset = start
        if unset and backend == "jax":  # freeze here, so jitter_rvs are the model's RVs
            from pymc.model.transform.optimization import freeze_dims_and_data

            model = freeze_dims_and_data(model)
            kw["freeze_model"] = False
        kw.update(initial_points=point,
                  jitter_rvs={rv for rv in model.free_RVs if rv.name in unset})
    keep = _keep_vars(model)
    compiled = nutpie.compile_pymc_model(model, var_names=keep, **kw)
    t1 = time.perf_counter()
    args = dict(draws=draws, tune=tune, chains=chains, seed=seed, cores=cores,
                target_accept=target_accept, progress_bar=progressbar, adaptation=adaptation,
                save_warmup=True)
    if min_draws is None:
        tree = nutpie.sample(compiled, **args)
    else:
        # every chain at once: nutpie runs ``cores`` chains at a time, each to its end, so
        # with fewer cores than chains the first ones would always draw all ``draws``
        args["cores"] = cores or chains
        done = [0] * chains  # draws after tuning per chain, from nutpie's progress thread

        def progress(chain_progress: list[Any]) -> None:
            for i, c in enumerate(chain_progress):
                done[i] = max(0, int(c.finished_draws) - tune)

        run = nutpie.sample(compiled, blocking=False, progress_callback=progress, **args)
        tree = _until_converged(run, done, min_draws, keep)
    t2 = time.perf_counter()
    return tree, {"compile_seconds": t1 - t0, "sampling_seconds": t2 - t1}


def _common_draws(tree: xr.DataTree, upto: int | None = None) -> xr.DataTree:
    """``tree`` with its posterior and sample_stats cut to the draws every chain has (a
    stopped nutpie run pads the chains behind with NaN), and to ``upto`` at most."""
    lp = np.asarray(tree["sample_stats"]["logp"].values, float)
    n = int(np.isfinite(lp).sum(axis=1).min())
    n = n if upto is None else min(n, upto)
    groups = {path: node.to_dataset() for path, node in tree.subtree_with_keys}
    for g in ("posterior", "sample_stats"):
        groups[g] = groups[g].isel(draw=slice(0, n))
    return xr.DataTree.from_dict({k: v for k, v in groups.items() if k != "."})


def _arrow_draws(draw_batches: list[Any], stat_batches: list[Any], keep: list[str],
                 upto: int) -> dict[str, np.ndarray] | None:
    """The first ``upto`` draws after tuning of each variable in ``keep`` as a (chain, draw,
    ...) array, read from nutpie's arrow trace (one record batch per chain, warm-up rows
    first); None while a chain has fewer. Only these columns and rows are converted."""
    import pyarrow as pa

    starts = []
    for d, st in zip(draw_batches, stat_batches, strict=True):
        n_tune = int(np.asarray(pa.array(st.column("tuning"))).sum())
        if d.num_rows - n_tune < upto:
            return None
        starts.append(n_tune)
    out: dict[str, np.ndarray] = {}
    for name in keep:
        if name not in draw_batches[0].column_names:
            continue
        chains = []
        for d, start in zip(draw_batches, starts, strict=True):
            col = pa.array(d.column(name)).slice(start, upto)
            if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
                col = col.flatten()
            chains.append(col.to_numpy(zero_copy_only=False).reshape(upto, -1))
        out[name] = np.stack(chains)
    return out


def _draws_so_far(run: Any, keep: list[str], upto: int) -> dict[str, np.ndarray] | None:
    """``_arrow_draws`` of a running nutpie sampler's trace so far. nutpie's public
    ``inspect()`` converts the whole trace (warm-up, statistics, sampled helpers) into a
    DataTree, most of a check's cost at full size and a second copy of the trace; this
    reads its raw arrow copy, falling back to ``inspect()`` where a nutpie lacks it."""
    try:
        batches = run._sampler.inspect().get_arrow_trace()
    except AttributeError:
        post = _common_draws(run.inspect(), upto=upto)["posterior"].to_dataset()
        if post.sizes["draw"] < upto:
            return None
        return chain_draw_arrays(post[[v for v in keep if v in post]])
    return _arrow_draws(*batches, keep, upto)


def _until_converged(run: Any, done: list[int], min_draws: int, keep: list[str]
                     ) -> xr.DataTree:
    """Wait for nutpie's background ``run``; once every chain has ``min_draws`` draws, and
    each time the draws have grown by ``CHECK_GROWTH`` after that, check the draws so far
    of the saved variables ``keep`` against the convergence bar and stop at the first check
    they meet. A check first looks only at the elements that failed the last full one. The
    checks fall at fixed draw counts (``min_draws``, then x1.25) and the fit keeps exactly
    the checked draws, so the same seed stops at the same point and the fit meets the bar
    it was checked against. Without a passing check the run ends at its ``draws``, as a
    fixed-length one. (The sampled helpers are not judged: a signed radial size is
    two-signed by design, so its R-hat says nothing.)"""

    def finished() -> bool:  # nutpie's is_finished raises TimeoutError while it runs
        try:
            return bool(run.is_finished)
        except TimeoutError:
            return False

    next_check, failed = min_draws, None
    while not finished():
        time.sleep(POLL_SECONDS)
        if min(done) < next_check:
            continue
        t0 = time.perf_counter()
        draws = _draws_so_far(run, keep, next_check)
        if draws is None:  # the trace lags the progress count: wait before copying again
            time.sleep(LAG_SECONDS)
            continue
        if failed:  # what failed the last check, first: while any of it fails, enough
            failed = failing_elements(draws, only=failed)
        if not failed:
            failed = failing_elements(draws)
        del draws
        log.info("convergence check at %d draws per chain (%.1f s): %d elements short of "
                 "the bar", next_check, time.perf_counter() - t0,
                 sum(map(len, failed.values())))
        if not failed:  # keep exactly the checked draws: the fit is what was checked
            return _common_draws(run.abort(), upto=next_check)
        next_check = max(next_check + 1, int(np.ceil(CHECK_GROWTH * next_check)))
    return _common_draws(run.wait())


def _jax_x64_enabled() -> bool:
    """Whether JAX (if already imported) runs with 64-bit floats."""
    import sys

    jax = sys.modules.get("jax")
    return bool(jax is not None and jax.config.read("jax_enable_x64"))


def _sample_pymc(model: Any, sampler: str, *, draws: int, tune: int, chains: int, seed: int,
                 target_accept: float, progressbar: bool, cores: int | None,
                 start: tuple[dict[str, np.ndarray], list[str]] | None = None,
                 ) -> tuple[xr.DataTree, dict[str, float]]:
    import pymc as pm

    t0 = time.perf_counter()
    kw: dict[str, Any] = {}
    if start is not None:
        point, unset = start
        kw["initvals"] = point
        if not unset:  # start exactly there (with defaults left, keep the sampler's jitter)
            kw.update({"init": "adapt_diag"} if sampler == "pymc" else {"nuts": {"jitter": False}})
    with model:
        tree = pm.sample(draws=draws, tune=tune, chains=chains, random_seed=seed,
                         nuts_sampler=sampler, target_accept=target_accept,
                         progressbar=progressbar, cores=cores or min(chains, os.cpu_count() or 1),
                         var_names=_keep_vars(model), compute_convergence_checks=False,
                         discard_tuned_samples=False, **kw)
    t1 = time.perf_counter()
    post = tree["posterior"].to_dataset()
    sampling = float(post.attrs.get("sampling_time", t1 - t0))
    return tree, {"compile_seconds": max(0.0, (t1 - t0) - sampling), "sampling_seconds": sampling}


def as_float32(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its float64 variables cast to float32, the others as they are."""
    return narrow_floats(ds, np.float32)


def _fit_per_cell(data: xr.Dataset, spec: ModelSpec, *, chains: int, draws: int, tune: int,
                  seed: int, target_accept: float, folds: int | None, cell_groups: str,
                  progressbar: bool, log_likelihood: bool, initvals: Any,
                  settings: dict[str, Any]) -> Fit:
    """``fit`` with ``sampler="percell"``: the cell-wise loop, and what ``fit`` records."""
    from bayesdissect.model.percell import fit_per_cell

    if initvals is not None:
        raise BayesDissectError("initvals: sampler 'percell' adapts every cell from its own "
                                "start; a warm start is not supported there")
    if cell_groups not in ("scenarios", "scenarios+cases"):
        raise BayesDissectError(f"cell_groups: expected 'scenarios' or 'scenarios+cases', "
                                f"got {cell_groups!r}")
    if log_likelihood and cell_groups != "scenarios":  # said before the fit, not after it
        raise BayesDissectError("log_likelihood: a fit with the cases as groups has no "
                                "per-label likelihood of the data's groups")
    progress = None
    if progressbar:
        t0 = time.perf_counter()

        def progress(passes: int, slowest: int, total: int, active: int) -> None:
            print(f"\rpercell: {time.perf_counter() - t0:6.0f} s, slowest chain at "
                  f"{slowest}/{total} transitions, {active} chains running", end="",
                  flush=True)

    result = fit_per_cell(data, spec, chains=chains, draws=draws, tune=tune, seed=seed,
                          folds=folds, groups=cell_groups, target_accept=target_accept,
                          progress=progress)
    if progressbar:
        print()
    result.settings.update({"sampler": "percell", "cell_groups": cell_groups, **settings,
                            "warm_start": False, "keep_warmup": False, "float32": True})
    if log_likelihood:
        from bayesdissect.queries.predictive import add_log_likelihood

        add_log_likelihood(result)
    return result


def fit(
    data: xr.Dataset | str | os.PathLike[str],
    model: str | os.PathLike[str] | ModelSpec = DEFAULT_MODEL,
    sampler: str | None = None,
    chains: int | None = None,
    draws: int | None = None,
    tune: int | None = None,
    seed: int | None = None,
    target_accept: float | None = None,
    judges: Any = None,
    groups: Any = None,
    subset: str | None = None,
    progressbar: bool = True,
    *,
    backend: str | None = None,
    adaptation: str | None = None,
    cores: int | None = None,
    log_likelihood: bool = False,
    keep_warmup: bool = False,
    float32: bool | None = None,
    likelihood: str = "potential",
    warn: bool = True,
    initvals: Fit | dict[str, Any] | str | os.PathLike[str] | None = None,
    folds: int | None = None,
    cell_groups: str = "scenarios",
    min_draws: int | None = None,
) -> Fit:
    """Fit ``model`` (a spec name, a spec TOML path or a ModelSpec) to ``data``.

    ``data`` is a contract dataset or anything ``bayesdissect.load`` reads. Unset sampler
    settings come from the spec's ``[sampler]`` table. ``judges`` / ``groups`` (lists or
    comma-separated strings) and ``subset`` (a case name) select what is fitted. The same
    ``seed`` gives the same draws; without one a seed is drawn and recorded in
    ``fit.settings``. ``backend`` (``numba``/``jax``) and ``adaptation``
    (``diag``/``draw_diag``/``low_rank``) tune nutpie. ``log_likelihood=True`` adds the
    pointwise log-likelihood group (``bd.add_log_likelihood``: draws x labelled entries
    float32, large at full size). ``keep_warmup=True`` keeps the warm-up draws and
    statistics (groups ``warmup_posterior``, ``warmup_sample_stats``). ``float32``
    (default: the spec's ``sampler.float32``) evaluates the log density in single precision
    with float64 sums (about 2.5x faster gradients in JAX). ``likelihood``: ``"potential"``
    (one masked log-sigmoid sum per group, fastest) or ``"observed"`` (an observed ``y``
    variable over the observed labels, for PyMC's own predictive tools).

    ``min_draws`` (default: the spec's ``sampler.min_draws``; nutpie only): sample until
    converged. Once every chain has ``min_draws`` draws, and each time the draws have
    grown by a quarter after that, the draws so far are checked against the convergence
    bar (R-hat <= 1.01, bulk and tail ESS >= 400 on every saved parameter) and sampling
    stops at the first check they meet; ``draws`` is then the most per chain.
    ``min_draws`` of 0, or at least ``draws``, draws exactly ``draws``. Each check costs a
    copy of the trace (5-48 s at full size). Stopping at the first passing check makes the
    diagnostics slightly optimistic (a noisy R-hat is caught on a low), so the bar should
    be read as met, not exceeded with margin.

    ``initvals`` (a previous ``Fit``, the path of a saved one, or a dict {posterior
    variable: array or DataArray}) warm-starts every chain at that point (a Fit: its
    posterior means), without jitter; see ``initial_point_from``. Judges, groups and
    properties are matched by name; new ones start at offset 0. ``tune`` is not shortened:
    the step size and mass matrix must still be adapted. ``fit.settings["warm_start"]``
    records whether a start was given.

    ``sampler="percell"`` (the ``paper`` spec's default) fits a spec whose posterior
    factorises over (judge, group) cells as one NUTS run per cell, all cells in one
    vectorised loop (``bayesdissect.model.percell.fit_per_cell``): per-cell step sizes, mass
    matrices, R-hat and ESS (``fit.idata["cell_stats"]``). Only there: ``folds=k``, the
    paper's k folds of 90% per cell (the posterior's chains are folds x chains, so its mean
    is the mean of the fold means, the paper's estimate), and ``cell_groups``
    (``"scenarios"``; ``"scenarios+cases"`` adds the query-specific cases as extra groups,
    as the paper fits them; such a fit's groups no longer match the data's, so it serves the
    weight queries, not the predictive ones).
    """
    t_start = time.perf_counter()
    spec = load_spec(model)
    if isinstance(initvals, str | os.PathLike):
        initvals = load_fit(initvals)
    if not isinstance(data, xr.Dataset):
        from bayesdissect.data.loaders import load

        data = load(data)
    sampler = sampler or spec.sampler.name
    _check_sampler(sampler)
    chains = int(chains if chains is not None else spec.sampler.chains)
    draws = int(draws if draws is not None else spec.sampler.draws)
    tune = int(tune if tune is not None else spec.sampler.tune)
    target_accept = float(target_accept if target_accept is not None
                          else spec.sampler.target_accept)
    min_draws = int(min_draws if min_draws is not None else spec.sampler.min_draws or 0)
    for name, val, lo in (("chains", chains, 1), ("draws", draws, 1), ("tune", tune, 0),
                          ("min-draws", min_draws, 0)):
        if val < lo:
            raise BayesDissectError(f"--{name}: expected an integer >= {lo}, got {val}")
    until = min_draws if sampler == "nutpie" and 0 < min_draws < draws else None
    if not 0 < target_accept < 1:
        raise BayesDissectError(f"--target-accept: expected a number in (0, 1), got "
                                f"{target_accept}")
    backend = backend or spec.sampler.backend
    adaptation = adaptation or spec.sampler.adaptation
    if backend not in ("numba", "jax"):
        raise BayesDissectError(f"backend: expected 'numba' or 'jax', got {backend!r}")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    seed = int(seed)
    data = subset_data(data, judges=judges, groups=groups, subset=subset)
    if sampler == "percell":
        cells = _fit_per_cell(data, spec, chains=chains, draws=draws, tune=tune, seed=seed,
                              target_accept=target_accept, folds=folds,
                              cell_groups=cell_groups, progressbar=progressbar,
                              log_likelihood=log_likelihood, initvals=initvals,
                              settings={"judges": name_list(judges),
                                        "groups": name_list(groups), "subset": subset})
        if warn:
            warn_if_unconverged(cells.diagnostics)
        return cells
    if folds is not None or cell_groups != "scenarios":
        raise BayesDissectError(f"--folds / --cell-groups: only sampler 'percell' fits cells "
                                f"separately; got sampler {sampler!r}")
    if likelihood not in ("potential", "observed"):
        raise BayesDissectError(f"likelihood: expected 'potential' or 'observed', got "
                                f"{likelihood!r}")
    float32 = spec.sampler.float32 if float32 is None else bool(float32)
    if float32 and sampler in ("numpyro", "blackjax") and _jax_x64_enabled():
        # Under JAX x64 (switched on by any earlier nutpie-JAX fit in this process) the
        # JAX samplers' NUTS state is float64 while float32 parameters stay float32, and
        # their tree building fails on the mixed dtypes: sample in float64 instead.
        float32 = False
    import pytensor

    with pytensor.config.change_flags(floatX="float32" if float32 else "float64"):
        pm_model = build_model(spec, data, likelihood=likelihood)
        start = None
        if initvals is not None:
            start = warm_start(pm_model, initvals)
            if start[1]:
                warnings.warn(f"initvals: could not set {start[1]} from the given values; "
                              "they start at the model's default (jittered)", UserWarning,
                              stacklevel=2)
        t_built = time.perf_counter()
        if sampler == "nutpie":
            tree, timings = _sample_nutpie(pm_model, draws=draws, tune=tune, chains=chains,
                                           seed=seed, target_accept=target_accept,
                                           progressbar=progressbar, backend=backend,
                                           adaptation=adaptation, cores=cores, start=start,
                                           min_draws=until)
        else:
            tree, timings = _sample_pymc(pm_model, sampler, draws=draws, tune=tune,
                                         chains=chains, seed=seed,
                                         target_accept=target_accept,
                                         progressbar=progressbar, cores=cores, start=start)
    timings["build_seconds"] = t_built - t_start
    keep = _keep_vars(pm_model)

    def draws_of(group: str) -> xr.Dataset:
        ds = tree[group].to_dataset()
        ds = netcdf_safe(ds[[v for v in keep if v in ds]])
        # the log density was single precision: float32 draws lose nothing and halve the
        # file (a full-size default fit: ~0.3 instead of ~0.6 GB)
        return as_float32(ds) if float32 else ds

    post = draws_of("posterior")
    stats = standard_stats(netcdf_safe(tree["sample_stats"].to_dataset()))
    warm = (standard_stats(netcdf_safe(tree["warmup_sample_stats"].to_dataset()))
            if "warmup_sample_stats" in tree.children else None)
    t_diag = time.perf_counter()
    timings["total_seconds"] = t_diag - t_start  # fit wall time, before diagnostics
    diag = compute_diagnostics(post, stats, timings, warmup_stats=warm)
    diag["diagnostics_seconds"] = time.perf_counter() - t_diag
    out = {"posterior": post, "sample_stats": stats}
    if keep_warmup and warm is not None and "warmup_posterior" in tree.children:
        out.update(warmup_posterior=draws_of("warmup_posterior"), warmup_sample_stats=warm)
    settings = {"sampler": sampler, "chains": chains, "draws": draws, "tune": tune,
                "min_draws": until,
                "seed": seed, "target_accept": target_accept, "backend": backend,
                "float32": float32, "likelihood": likelihood,
                "adaptation": adaptation, "judges": name_list(judges),
                "groups": name_list(groups), "subset": subset,
                "warm_start": start is not None, "keep_warmup": bool(keep_warmup)}
    result = Fit(netcdf_safe(data), spec, xr.DataTree.from_dict(out), diag, settings)
    if log_likelihood:
        from bayesdissect.queries.predictive import add_log_likelihood

        add_log_likelihood(result)
    if warn:
        warn_if_unconverged(diag)
    return result
