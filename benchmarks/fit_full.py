"""Full-size fit benchmark: the bundled paper-sized demo data, one spec, one sampler setup.

Reports compile / tune / draw wall time, gradient evaluations per second (and the cost of
one log-density gradient on one core), min bulk ESS, ESS per second, max R-hat,
divergences and peak memory, as one JSON line (appended to --json if given).

Run it alone (the machine has 2 cores):

    python3 benchmarks/fit_full.py --model hierarchical
    python3 benchmarks/fit_full.py --model paper
    python3 benchmarks/fit_full.py --device gpu      # JAX on the GPU (pip install -e ".[gpu]")

Variants for the record: --param centered|noncentered (every hierarchical level),
--backend numba|jax, --adaptation diag|draw_diag|low_rank, --chains/--draws/--tune, --cores,
--min-draws N (sample until converged from N draws; 0: exactly --draws).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import warnings

import numpy as np


def gradient_ms(spec, data, backend: str, n: int, float32: bool = True,  # noqa: ANN001
                likelihood: str = "potential") -> float:
    """Median ms of one log-density + gradient evaluation (PyTensor function compiled with
    the back end nutpie uses; outputs copied to numpy so JAX's async dispatch is waited for)."""
    import pytensor

    from bayesdissect.model.build import build_model

    if backend == "jax":
        import jax
        import pytensor.link.jax.dispatch  # noqa: F401  (its import sets x64 from floatX)
        jax.config.update("jax_enable_x64", True)
    with pytensor.config.change_flags(floatX="float32" if float32 else "float64"):
        from pymc.model.transform.optimization import freeze_dims_and_data

        # as nutpie does: constant shapes (JAX cannot trace ZeroSumNormal's split otherwise)
        m = freeze_dims_and_data(build_model(spec, data, likelihood=likelihood))
        values = m.value_vars
        start = m.initial_point()
        inputs = [np.asarray(start[v.name]) for v in values]
        if backend == "jax":  # as nutpie's gradient_backend="jax": jax.value_and_grad
            # importing pymc.sampling.jax sets XLA_FLAGS to 100 host devices unless JAX is
            # already initialised (then the flag comes too late): initialise it first, so the
            # fit below runs on the one CPU device a user's fit gets
            jax.devices()
            from pymc.sampling.jax import get_jaxified_logp

            logp_fn = get_jaxified_logp(m, negative_logp=False)
            vg = jax.jit(jax.value_and_grad(lambda xs: logp_fn(xs)))

            def fn(*xs):  # noqa: ANN002, ANN202
                value, grads = vg(list(xs))
                return [value, *grads]
        else:
            logp = m.logp()
            fn = pytensor.function(values, [logp, *pytensor.grad(logp, values)],
                                   mode="NUMBA", trust_input=True)
    for _ in range(5):
        [np.asarray(o) for o in fn(*inputs)]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        [np.asarray(o) for o in fn(*inputs)]
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hierarchical")
    ap.add_argument("--data", default="demo", help="dataset to fit (default: the bundled demo)")
    ap.add_argument("--sampler", default=None)
    ap.add_argument("--backend", default=None, choices=["numba", "jax"])
    ap.add_argument("--adaptation", default=None, choices=["diag", "draw_diag", "low_rank"])
    ap.add_argument("--param", default=None, choices=["centered", "noncentered", "radial"],
                    help="override the parameterization of every hierarchical level")
    ap.add_argument("--cell-param", default=None, choices=["centered", "noncentered", "radial"])
    ap.add_argument("--float32", default=None, choices=["on", "off"])
    ap.add_argument("--likelihood", default="potential", choices=["potential", "observed"])
    ap.add_argument("--chains", type=int, default=None)
    ap.add_argument("--draws", type=int, default=None)
    ap.add_argument("--tune", type=int, default=None)
    ap.add_argument("--min-draws", type=int, default=None,
                    help="sample until converged from this many draws (0: exactly --draws)")
    ap.add_argument("--target-accept", type=float, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cores", type=int, default=None,
                    help="chains run at once (nutpie's cores; default: min(chains, CPUs), 2 here)")
    ap.add_argument("--grad-evals", type=int, default=300,
                    help="gradient evaluations for the one-core gradient timing (0: skip)")
    ap.add_argument("--json", default=None, help="append the result line to this file")
    ap.add_argument("--label", default="")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                    help="where JAX runs (sets JAX_PLATFORMS before JAX is imported)")
    ap.add_argument("--save", default=None, help="also save the fit here (after timing)")
    args = ap.parse_args()
    os.environ["JAX_PLATFORMS"] = "cuda" if args.device == "gpu" else "cpu"

    import bayesdissect as bd
    from bayesdissect.model.specs import HIERARCHICAL_LEVELS, load_spec

    t0 = time.perf_counter()
    data = bd.load(args.data)
    load_s = time.perf_counter() - t0
    spec = load_spec(args.model)
    for lv in HIERARCHICAL_LEVELS:
        p = args.cell_param if (lv == "cell" and args.cell_param) else args.param
        if p and spec.has(lv):
            spec = spec.replace_level(lv, parameterization=p)

    grad_ms = None
    if args.grad_evals:
        grad_ms = gradient_ms(spec, data, args.backend or spec.sampler.backend, args.grad_evals,
                              float32=spec.sampler.float32 if args.float32 is None
                              else args.float32 == "on", likelihood=args.likelihood)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = bd.fit(data, spec, sampler=args.sampler, chains=args.chains, draws=args.draws,
                   tune=args.tune, seed=args.seed, target_accept=args.target_accept,
                   cores=args.cores,
                   backend=args.backend, adaptation=args.adaptation, progressbar=False,
                   float32=None if args.float32 is None else args.float32 == "on",
                   likelihood=args.likelihood, min_draws=args.min_draws)
    d = f.diagnostics
    if args.save:
        f.save(args.save)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "label": args.label,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "model": spec.name,
        "levels": {k: v.parameterization for k, v in spec.levels.items() if v.hierarchical},
        "settings": f.settings,
        "pairs": int(data.sizes["pair"]), "judges": int(data.sizes["judge"]),
        "n_parameters": d["n_parameters"],
        "load_s": round(load_s, 2),
        "grad_ms_1core": None if grad_ms is None else round(grad_ms, 3),
        **{k: (round(d[k], 4) if isinstance(d.get(k), float) else d.get(k)) for k in (
            "compile_seconds", "tune_seconds", "draw_seconds", "sampling_seconds",
            "total_seconds", "grad_evals_tune", "grad_evals_draw", "grad_evals_per_second",
            "draws", "mean_steps_per_draw", "step_size", "max_treedepth_hits", "max_rhat",
            "min_ess_bulk", "min_ess_tail", "min_ess_bulk_per_second", "divergences",
            "diagnostics_seconds")},
        "worst_ess_bulk": d["worst_ess_bulk"][:3],
        "worst_rhat": d["worst_rhat"][:3],
        "converged": bool(d["max_rhat"] <= 1.01 and d["min_ess_bulk"] >= 400
                          and d["min_ess_tail"] >= 400 and d["divergences"] == 0),
        "peak_mib": round(peak_mib),
        "loadavg": os.getloadavg(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": sys.version.split()[0],
        "device": args.device,
        "jax_devices": _jax_devices(),
    }
    line = json.dumps(out)
    print(line)
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(line + "\n")
    return 0


def _jax_devices() -> list[str]:
    """The devices JAX ran on (an empty list where JAX was not imported)."""
    if "jax" not in sys.modules:
        return []
    import jax

    return [str(d) for d in jax.devices()]


if __name__ == "__main__":
    sys.exit(main())
