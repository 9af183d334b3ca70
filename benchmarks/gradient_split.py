"""Where one log-density gradient of the default model goes (issue 12, item 1).

Times jax.value_and_grad of, on the bundled full-size data in float32 (as nutpie's JAX
path runs it): the whole model's log density; its prior terms only; its likelihood term
only; a linear functional of the offsets (what building them from the sampled
coordinates costs, forward and backward: all levels, then each alone); the same likelihood
written directly in JAX (jax.nn.log_sigmoid per group block); and that JAX likelihood with
the log-sigmoid replaced by a square (what the 11 group matrix products and the sums cost
without the transcendental functions). The variants are interleaved over --rounds rounds, each the
median of --n calls, so a machine whose speed drifts shows as spread, not as a difference.

    python3 benchmarks/gradient_split.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hierarchical-pair")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    import jax
    import jax.numpy as jnp
    import pytensor
    import pytensor.link.jax.dispatch  # noqa: F401  (registers PyTensor's JAX back end)

    jax.devices()  # initialise JAX before pymc.sampling.jax sets XLA_FLAGS (one CPU device)
    jax.config.update("jax_enable_x64", True)
    from pymc.model.transform.optimization import freeze_dims_and_data
    from pymc.sampling.jax import get_jaxified_graph

    import bayesdissect as bd
    from bayesdissect.model.build import build_model, prepare_data
    from bayesdissect.model.specs import load_spec

    data = bd.load("demo")
    md = prepare_data(data)
    fns: dict[str, tuple] = {}
    with pytensor.config.change_flags(floatX="float32"):
        import pytensor.tensor as pt

        m = freeze_dims_and_data(build_model(load_spec(args.model), data,
                                             likelihood="potential"))
        start = m.initial_point()
        xs = [np.asarray(start[v.name]) for v in m.value_vars]

        def model_grad(out):  # noqa: ANN001, ANN202
            """jax value_and_grad of a scalar graph of the model, over its value vars."""
            f = get_jaxified_graph(inputs=m.value_vars,
                                   outputs=m.replace_rvs_by_values([out]))
            return jax.jit(jax.value_and_grad(lambda a: f(*a)[0])), (xs,)

        fns["model: whole log density"] = model_grad(m.logp())
        fns["model: prior terms only"] = model_grad(m.logp(vars=m.free_RVs))
        fns["model: likelihood only"] = model_grad(m.logp(vars=list(m.potentials)))
        # fixed linear functionals of the offsets: the cost of building them from the
        # sampled coordinates (zero-sum and radial transforms) and of its backward pass
        rng_c = np.random.default_rng(1)
        per_level = {d.name: pt.sum(pt.constant(rng_c.normal(size=tuple(d.shape.eval()))
                                                .astype("float32")) * d)
                     for d in m.deterministics if d.name.endswith(("offset", "effect"))}
        fns["model: offsets from coordinates only"] = model_grad(sum(per_level.values()))
        for name, one in per_level.items():  # each level's offsets alone
            fns[f"model: {name} only"] = model_grad(one)

    n_j, n_g, n_k = len(md.judges), len(md.groups), len(md.properties)
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(0, 0.1, (n_j, n_g, n_k)).astype("float32"))
    b = jnp.asarray(rng.normal(0, 0.1, n_j).astype("float32"))
    u = jnp.asarray(rng.normal(0, 0.1, md.x.shape[0]).astype("float32"))
    blocks = []
    for a, c in md.bounds:
        y = md.y[a:c]
        sign = np.where(np.isnan(y), 0.0, 2.0 * np.nan_to_num(y) - 1.0).astype("float32")
        blocks.append((a, c, jnp.asarray(md.x[a:c].astype("float32")), jnp.asarray(sign)))

    def jax_lik(term):  # noqa: ANN001, ANN202
        def lik(w, b, u):  # noqa: ANN001, ANN202
            total = 0.0
            for g, (a, c, x, s) in enumerate(blocks):
                z = s * (x @ w[:, g, :].T + b[None, :] + u[a:c, None])
                total = total + jnp.sum(term(z) * (s != 0), dtype=jnp.float64)
            return total
        return jax.jit(jax.value_and_grad(lik, argnums=(0, 1, 2)))

    fns["JAX: likelihood, log_sigmoid"] = (jax_lik(jax.nn.log_sigmoid), (w, b, u))
    fns["JAX: likelihood, square (no exp/log)"] = (jax_lik(jnp.square), (w, b, u))

    times: dict[str, list[float]] = {k: [] for k in fns}
    for f, a in fns.values():
        for _ in range(5):
            jax.block_until_ready(f(*a))
    for _ in range(args.rounds):
        for label, (f, a) in fns.items():
            t = []
            for _ in range(args.n):
                t0 = time.perf_counter()
                jax.block_until_ready(f(*a))
                t.append(time.perf_counter() - t0)
            times[label].append(float(np.median(t)) * 1e3)
    print(f"{len(md.judges)} judges x {md.x.shape[0]} pairs x {n_k} properties, "
          f"{n_g} groups; median ms per call, each of {args.rounds} rounds:")
    for label, ts in times.items():
        print(f"  {label:40s} " + " ".join(f"{t:6.2f}" for t in ts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
