"""Cell-wise fits of specs whose posterior factorises over (judge, group) cells (issue 12).

The ``paper`` spec (dataset.md §6: independent Laplace(0, 0.1) weights per judge x group, no
bias, no sharing) is a product of independent logistic regressions, one per cell. One joint
NUTS run over all of them must take the smallest step any cell needs; the paper instead ran
5,280 separate numpyro fits. ``fit_per_cell`` runs the separate fits, each with its own
chains, window adaptation (step size and diagonal mass matrix) and trajectories, but all
together in one vectorised JAX loop:

* **Decoupled NUTS.** Every chain of every cell advances by exactly one leapfrog step per
  pass of the loop, each at its own place in its own trajectory (multinomial NUTS with the
  generalised U-turn criterion, biased progressive sampling between doublings, and numpyro's
  iterative checkpoints for the U-turns inside a subtree, so each chain follows the same
  transition numpyro's NUTS makes). A plain ``jax.vmap`` of a NUTS kernel would wait, at every
  draw, for the longest trajectory in the batch (measured: 40 leapfrog steps a draw against a
  mean of 31 on 16 chains, worse on thousands); here the loop ends when the slowest chain has
  made its ``tune + draws`` transitions.
* **One product per group.** The cells of a group share its design matrix, so one
  ``X_g @ W`` per group serves all its judges, folds and chains; the log-likelihood gradient
  is written by hand (one exp and one log1p per label), with no padding of pairs.
* **Smooth Laplace.** A Laplace prior is sampled through its quantile transform,
  ``w = F_laplace^-1(Phi(u))`` with ``u ~ N(0, 1)`` (``parameterization="auto"``): the same
  posterior over ``w``, without the kink at 0 that forces small steps (measured on Advice:
  step size 0.13 -> 0.50, 31 -> 7 leapfrog steps a draw, posterior means equal within Monte
  Carlo error). ``parameterization="direct"`` samples ``w`` itself, the paper's geometry.
  Normal priors are sampled non-centred, Student-t and Cauchy directly.

Groups are the scenarios and, as extra groups named after them, the query-specific cases
(the pairs of ``case_<name>``, as ``subset_data`` makes a case a group). ``folds=k`` is the
paper's k-fold averaging, exactly as ``benchmarks/paper_pipeline.py`` does it per cell
(shuffle the cell's labelled pairs with NumPy seed 0, fold i drops the block starting at
``int(i / k * n)`` of length ``int(n / k)``): each fold is one more cell problem, and the
paper's estimate, the mean of the fold posterior means, is ``cell_stats["w_mean"]``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from bayesdissect.errors import BayesDissectError
from bayesdissect.model.diagnostics import convergence_arrays
from bayesdissect.model.specs import ModelSpec, load_spec

#: The group sets ``groups=`` names.
GROUP_SETS = ("scenarios+cases", "scenarios", "cases")
PARAMETERIZATIONS = ("auto", "direct")
#: Energy error above which a leapfrog step counts as divergent (numpyro's and Stan's value).
MAX_DELTA_ENERGY = 1000.0
#: Stan's windowed adaptation: initial fast buffer, first slow window, final fast buffer.
_INIT_BUFFER, _FIRST_WINDOW, _TERM_BUFFER = 75, 25, 50
#: Dual averaging constants (Hoffman and Gelman 2014; Stan, numpyro, blackjax defaults).
_DA_GAMMA, _DA_T0, _DA_KAPPA = 0.05, 10.0, 0.75
#: Sampler statistics kept per draw, after the weights, in the draw buffer.
STAT_NAMES = ("acceptance_rate", "energy", "lp", "n_steps", "tree_depth", "diverging")
#: Posterior draws held at once above this many bytes (float32) need ``thin`` (or fewer
#: draws): 528 cells x 4 chains x 2,000 draws x 29 weights is 490 MB.
MAX_DRAW_BYTES = 2_000_000_000


# ----------------------------------------------------------------------------- the problem

class CellDesign(NamedTuple):
    """The cell problems of a dataset: per group its design matrix and labels.

    ``x[g]``: (pairs of group g, K) float32; ``sign[g]``: (pairs of g, J) float32, +1 where
    the judge chose response 1, -1 where response 2, 0 where the judge gave no label.
    """

    groups: list[str]
    kinds: list[str]  # "scenario" or "case" per group
    judges: list[str]
    properties: list[str]
    x: list[np.ndarray]
    sign: list[np.ndarray]
    pairs: list[np.ndarray]  # pair labels of each group

    @property
    def n_pairs(self) -> np.ndarray:
        """Labelled pairs per (judge, group)."""
        return np.stack([(s != 0).sum(0) for s in self.sign], axis=1)


def spec_w_cell_prior(spec: ModelSpec) -> tuple[str, float, float]:
    """(family, scale, nu) of the spec's ``w_cell`` prior; a one-line error unless the spec's
    posterior factorises over cells (only a ``w_cell`` level with a fixed prior is on)."""
    others = sorted(set(spec.levels) - {"w_cell"})
    lv = spec.levels.get("w_cell")
    if others or lv is None or lv.hierarchical or lv.prior is None or lv.scale is None:
        raise BayesDissectError(
            f"fit_per_cell: spec {spec.name!r} does not factorise over (judge, group) cells "
            f"(levels on: {', '.join(sorted(spec.levels)) or 'none'}); expected only a w_cell "
            "level with a fixed prior, like 'paper'")
    return lv.prior, float(lv.scale), float(lv.nu)


def _group_list(data: xr.Dataset, groups: str | Sequence[str]) -> list[tuple[str, str]]:
    """(name, kind) of the groups to fit, scenarios in sorted order, then cases."""
    scen = sorted(set(np.asarray(data["group"].values).astype(str)))
    cases = [str(v)[5:] for v in data.data_vars if str(v).startswith("case_")]
    if isinstance(groups, str) and groups in GROUP_SETS:
        out = [(g, "scenario") for g in scen] if groups != "cases" else []
        if groups != "scenarios":
            out += [(c, "case") for c in cases
                    if np.asarray(data[f"case_{c}"].values).astype(bool).any()]
        if not out:
            raise BayesDissectError(f"groups={groups!r}: this data has no such groups "
                                    f"(scenarios {scen}, cases {cases})")
        return out
    wanted = [groups] if isinstance(groups, str) else list(groups)
    if not wanted:
        raise BayesDissectError(f"groups: expected one of {GROUP_SETS} or a list of group "
                                "names, got an empty list")
    out = []
    for g in (str(v) for v in wanted):
        if g in scen:
            out.append((g, "scenario"))
        elif g in cases and np.asarray(data[f"case_{g}"].values).astype(bool).any():
            out.append((g, "case"))
        else:
            raise BayesDissectError(f"groups: unknown group {g!r}; expected one of "
                                    f"{GROUP_SETS}, or names among the scenarios {scen} and "
                                    f"the cases with pairs {cases}")
    if len(set(out)) != len(out):
        raise BayesDissectError(f"groups: a group is named twice in {wanted}")
    return out


def cell_design(data: xr.Dataset, groups: str | Sequence[str] = "scenarios+cases"
                ) -> CellDesign:
    """The per-group design matrices and labels of ``data`` (a contract dataset)."""
    from bayesdissect.model.build import prepare_data

    prepare_data(data)  # the contract's checks: dims, finite x, labels in {0, 1, NaN}
    chosen = _group_list(data, groups)
    x_all = np.asarray(data["x"].transpose("pair", "property").values, dtype=np.float32)
    y_all = np.asarray(data["y"].transpose("pair", "judge").values, dtype=np.float64)
    sign_all = np.where(np.isnan(y_all), 0.0, 2.0 * np.nan_to_num(y_all) - 1.0)
    group_of = np.asarray(data["group"].values).astype(str)
    pair_ids = np.asarray(data["pair"].values)
    xs, signs, pairs = [], [], []
    for name, kind in chosen:
        keep = (group_of == name) if kind == "scenario" else \
            np.asarray(data[f"case_{name}"].values).astype(bool)
        xs.append(np.ascontiguousarray(x_all[keep]))
        signs.append(np.ascontiguousarray(sign_all[keep].astype(np.float32)))
        pairs.append(pair_ids[keep])
    return CellDesign(groups=[g for g, _ in chosen], kinds=[k for _, k in chosen],
                      judges=[str(j) for j in data["judge"].values],
                      properties=[str(p) for p in data["property"].values],
                      x=xs, sign=signs, pairs=pairs)


def fold_keep(n: int, folds: int) -> np.ndarray:
    """(folds, n) bool: the pairs each fold keeps, in the cell's pair order.

    The paper's scheme (dataset.md §6, ``benchmarks/paper_pipeline.paper_cell``): shuffle
    ``arange(n)`` once with NumPy's legacy seed 0; fold i drops the shuffled positions
    ``int(i / folds * n)`` .. ``+ int(n / folds)``.
    """
    idx = np.arange(n)
    np.random.RandomState(0).shuffle(idx)  # == np.random.seed(0); np.random.shuffle(idx)
    keep = np.ones((folds, n), dtype=bool)
    size = int(n / folds)
    for i in range(folds):
        start = int(i / folds * n)
        keep[i, idx[start:start + size]] = False
    return keep


def _fold_signs(sign: np.ndarray, folds: int) -> np.ndarray:
    """(pairs, J, folds) signs with each fold's held-out pairs set to 0 (no label)."""
    out = np.repeat(sign[:, :, None], folds, axis=2)
    for j in range(sign.shape[1]):
        lab = np.flatnonzero(sign[:, j] != 0)
        keep = fold_keep(lab.size, folds)
        for f in range(folds):
            out[lab[~keep[f]], j, f] = 0.0
    return out


def adaptation_schedule(tune: int) -> tuple[np.ndarray, np.ndarray]:
    """Stan's windowed warm-up as two (tune,) arrays: slow (the mass matrix is being
    estimated in this iteration) and window_end (the estimate is taken after it); the same
    windows as numpyro and blackjax (75 fast, slow windows 25, 50, ..., 50 fast)."""
    slow = np.zeros(tune, dtype=bool)
    end = np.zeros(tune, dtype=bool)
    if tune < 20:
        return slow, end
    init, first, term = _INIT_BUFFER, _FIRST_WINDOW, _TERM_BUFFER
    if init + first + term > tune:
        init, term = int(0.15 * tune), int(0.1 * tune)
        first = tune - init - term
    final_start = tune - term
    size, start = first, init
    while start < final_start:
        cur = size
        if 3 * size <= final_start - start:
            size = 2 * size
        else:
            cur = final_start - start
        slow[start:start + cur] = True
        end[start + cur - 1] = True
        start += cur
    return slow, end


# ----------------------------------------------------------------------------- JAX kernels

def _prior_fns(family: str, scale: float, nu: float, parameterization: str) -> tuple[Any, Any]:
    """(to_w, logprior_grad) for the sampler's coordinates u: w = to_w(u) and the prior's
    log density in u (up to a constant) with its gradient; to_w returns (w, dw/du)."""
    import jax.numpy as jnp
    from jax.scipy.special import log_ndtr

    half_log_2pi = 0.5 * float(np.log(2.0 * np.pi))
    log2 = float(np.log(2.0))

    def std_normal(u):  # noqa: ANN001, ANN202
        return -0.5 * jnp.sum(u * u, axis=-1), -u

    if family == "laplace" and parameterization == "auto":
        def to_w(u):  # noqa: ANN001, ANN202
            a = jnp.abs(u)
            lq = log_ndtr(-a)
            w = -scale * jnp.sign(u) * (log2 + lq)
            return w, scale * jnp.exp(-0.5 * a * a - half_log_2pi - lq)
        return to_w, std_normal
    if family == "normal":
        return (lambda u: (scale * u, jnp.full_like(u, scale))), std_normal

    def ident(u):  # noqa: ANN001, ANN202
        return u, jnp.ones_like(u)

    if family == "laplace":
        def lp_laplace(u):  # noqa: ANN001, ANN202
            return -jnp.sum(jnp.abs(u), axis=-1) / scale, -jnp.sign(u) / scale
        return ident, lp_laplace
    df = 1.0 if family == "cauchy" else nu

    def lp_t(u):  # noqa: ANN001, ANN202
        z = u / scale
        return (-0.5 * (df + 1.0) * jnp.sum(jnp.log1p(z * z / df), axis=-1),
                -(df + 1.0) * z / (scale * (df + z * z)))
    return ident, lp_t


def _loglik_grad(w, xs, signs, blocks):  # noqa: ANN001, ANN202
    """Log-likelihood (C,) and its gradient (C, K) for chains laid out in group blocks:
    block g is rows blocks[g] of ``w`` and uses xs[g] with signs[g] (pairs, block size)."""
    import jax.numpy as jnp

    lps, grads = [], []
    for g, (a, b) in enumerate(blocks):
        z = signs[g] * (xs[g] @ w[a:b].T)  # (pairs, chains of the block)
        e = jnp.exp(-jnp.abs(z))
        lps.append(jnp.sum(jnp.minimum(z, 0.0) - jnp.log1p(e), axis=0))
        r = signs[g] * (jnp.where(z > 0, e, 1.0) / (1.0 + e))  # s * sigmoid(-z)
        grads.append(r.T @ xs[g])
    return jnp.concatenate(lps), jnp.concatenate(grads, axis=0)


class _State(NamedTuple):
    ql: Any  # left end of the trajectory: position, momentum, gradient (C, D)
    pl: Any
    gl: Any
    qr: Any  # right end
    pr: Any
    gr: Any
    qp: Any  # the trajectory's proposal: position, gradient, log density, energy
    gp: Any
    lpp: Any
    hp: Any
    qs: Any  # the subtree's proposal
    gs: Any
    lps: Any
    hs: Any
    h0: Any  # energy at the start of the trajectory
    logw_tree: Any
    logw_sub: Any
    rsum_tree: Any
    rsum_sub: Any
    ck_r: Any  # (C, M + 1, D) momentum checkpoints of the subtree (numpyro's iterative
    ck_rs: Any  # U-turn), momentum-sum checkpoints; row M takes the writes of odd leaves
    ck_s: Any  # (C, M + 1, 2): v.rsum and v.r of each checkpoint (v = inv_m * r)
    depth: Any  # doublings done in this trajectory
    leaf: Any  # leaves built in the current subtree
    right: Any  # the current subtree extends to the right
    it: Any  # transitions done (warm-up and draws)
    sum_acc: Any
    n_prop: Any
    eps: Any  # step size (C,)
    log_eps: Any
    log_eps_bar: Any
    hbar: Any
    mu_da: Any
    t_da: Any
    inv_m: Any  # diagonal inverse mass matrix (C, D)
    wf_n: Any  # Welford count, mean, sum of squares of the current slow window
    wf_mean: Any
    wf_m2: Any
    buf: Any  # (C, S + 1, K + len(STAT_NAMES)) kept draws and their statistics; row S
    #          takes the writes of chains that keep nothing this pass
    sum_w: Any  # (C, K) sum of w over every post-warm-up draw (exact means when thinned)
    n_div: Any  # divergent post-warm-up transitions
    n_maxdepth: Any
    grad_tune: Any
    grad_draw: Any
    step: Any  # scalar: loop passes so far


def _make_runner(to_w, logprior, blocks, n_chains, dim, tune, draws, thin, target,
                 max_depth):  # noqa: ANN001, ANN202
    """The jitted pieces: init(key, u0, xs, signs) -> state; run(state, key, xs, signs,
    limit) -> state after at most ``limit`` more loop passes (or when every chain is done)."""
    import jax
    import jax.numpy as jnp

    f32, i32 = jnp.float32, jnp.int32
    total = tune + draws
    n_keep = -(-draws // thin)
    slow_np, end_np = adaptation_schedule(tune)
    slow_tab = jnp.asarray(np.r_[slow_np, False])
    end_tab = jnp.asarray(np.r_[end_np, False])

    def logdens(u, xs, signs):  # noqa: ANN001, ANN202
        w, dw = to_w(u)
        ll, gw = _loglik_grad(w, xs, signs, blocks)
        lp0, g0 = logprior(u)
        return ll + lp0, gw * dw + g0

    def kinetic(inv_m, p):  # noqa: ANN001, ANN202
        return 0.5 * jnp.sum(inv_m * p * p, axis=-1)

    def init(key, u0, xs, signs):  # noqa: ANN001, ANN202
        lp, g = logdens(u0, xs, signs)
        inv_m = jnp.ones((n_chains, dim), f32)
        p = jax.random.normal(key, (n_chains, dim), f32)
        h0 = -lp + kinetic(inv_m, p)
        zc = jnp.zeros((n_chains,), f32)
        zi = jnp.zeros((n_chains,), i32)
        zd = jnp.zeros((n_chains, dim), f32)
        eps0 = jnp.ones((n_chains,), f32)
        right = jax.random.bernoulli(jax.random.fold_in(key, 1), 0.5, (n_chains,))
        return _State(
            ql=u0, pl=p, gl=g, qr=u0, pr=p, gr=g, qp=u0, gp=g, lpp=lp, hp=h0,
            qs=u0, gs=g, lps=lp, hs=h0, h0=h0, logw_tree=zc, logw_sub=zc - jnp.inf,
            rsum_tree=p, rsum_sub=zd, ck_r=jnp.zeros((n_chains, max_depth + 1, dim), f32),
            ck_rs=jnp.zeros((n_chains, max_depth + 1, dim), f32),
            ck_s=jnp.zeros((n_chains, max_depth + 1, 2), f32), depth=zi, leaf=zi,
            right=right, it=zi, sum_acc=zc, n_prop=zi, eps=eps0, log_eps=zc,
            log_eps_bar=zc, hbar=zc, mu_da=zc + jnp.log(10.0), t_da=zi, inv_m=inv_m,
            wf_n=zi, wf_mean=zd, wf_m2=zd,
            buf=jnp.zeros((n_chains, n_keep + 1, dim + len(STAT_NAMES)), f32),
            sum_w=zd, n_div=zi, n_maxdepth=zi, grad_tune=zi, grad_draw=zi,
            step=jnp.zeros((), i32))

    pool = max(1, n_chains // 4)

    def _fresh_normals(k, need):  # noqa: ANN001, ANN202
        # Only the chains starting a trajectory (about 1 in 7 a pass) need a momentum:
        # draw a pool of C/4 vectors and hand them out in order; all C when more need one.
        # (Drawing C x D normals every pass took 2 of 8 ms a pass at full size.)
        def few(_):  # noqa: ANN001, ANN202
            rank = jnp.clip(jnp.cumsum(need) - 1, 0, pool - 1)
            return jax.random.normal(k, (pool, dim), f32)[rank]

        def every(_):  # noqa: ANN001, ANN202
            return jax.random.normal(k, (n_chains, dim), f32)

        return jax.lax.cond(jnp.sum(need) <= pool, few, every, None)

    def one_step(st: _State, key, xs, signs) -> _State:  # noqa: ANN001
        k1, k2 = jax.random.split(jax.random.fold_in(key, st.step))
        uu = jax.random.uniform(k2, (n_chains, 3), f32)
        rc = st.right[:, None]
        q0 = jnp.where(rc, st.qr, st.ql)
        p0 = jnp.where(rc, st.pr, st.pl)
        g0 = jnp.where(rc, st.gr, st.gl)
        e = jnp.where(st.right, st.eps, -st.eps)[:, None]
        ph = p0 + 0.5 * e * g0
        q1 = q0 + e * st.inv_m * ph
        lp1, g1 = logdens(q1, xs, signs)
        p1 = ph + 0.5 * e * g1
        h1 = -lp1 + kinetic(st.inv_m, p1)
        delta = h1 - st.h0
        delta = jnp.where(jnp.isnan(delta), jnp.inf, delta)
        div = delta > MAX_DELTA_ENERGY
        lw = -delta
        acc = jnp.exp(jnp.minimum(lw, 0.0))
        ql = jnp.where(rc, st.ql, q1)
        pl = jnp.where(rc, st.pl, p1)
        gl = jnp.where(rc, st.gl, g1)
        qr = jnp.where(rc, q1, st.qr)
        pr = jnp.where(rc, p1, st.pr)
        gr = jnp.where(rc, g1, st.gr)
        # progressive uniform (multinomial) sampling inside the subtree
        lws = jnp.logaddexp(st.logw_sub, lw)
        take = (st.leaf == 0) | (uu[:, 0] < jnp.exp(lw - lws))
        tc = take[:, None]
        qs = jnp.where(tc, q1, st.qs)
        gs = jnp.where(tc, g1, st.gs)
        lps = jnp.where(take, lp1, st.lps)
        hs = jnp.where(take, h1, st.hs)
        rss = st.rsum_sub + p1
        # U-turns inside the subtree: numpyro's checkpoints (_leaf_idx_to_ckpt_idxs); its
        # test v_i.rs <= 0 or v.rs <= 0 for rs = rss - ck_rs_i + (ck_r_i - p1) / 2 is
        # expanded into dot products, so only three passes over the checkpoints are made
        n = st.leaf
        idx_max = jax.lax.population_count(n >> 1)
        idx_min = idx_max - (jax.lax.population_count(n ^ (n + 1)) - 1) + 1
        vp = st.inv_m * p1
        slot_ck = jnp.where((n & 1) == 0, idx_max, max_depth)
        rows = jnp.arange(n_chains)
        ck_r = st.ck_r.at[rows, slot_ck].set(p1)
        ck_rs = st.ck_rs.at[rows, slot_ck].set(rss)
        ck_s = st.ck_s.at[rows, slot_ck].set(
            jnp.stack([jnp.sum(vp * rss, -1), jnp.sum(vp * p1, -1)], axis=-1))
        a_ = jnp.sum(ck_r * (st.inv_m * rss)[:, None, :], -1)  # v_i . rss
        b_ = jnp.sum(ck_r * vp[:, None, :], -1)  # v_i . p1 = v . r_i
        c_ = jnp.sum(ck_rs * vp[:, None, :], -1)  # v . rsum_i
        left_i = a_ - ck_s[:, :, 0] + 0.5 * ck_s[:, :, 1] - 0.5 * b_
        right_i = (jnp.sum(vp * rss, -1)[:, None] - c_ + 0.5 * b_
                   - 0.5 * jnp.sum(vp * p1, -1)[:, None])
        m1 = jnp.arange(max_depth + 1, dtype=i32)[None, :]
        live = (m1 >= idx_min[:, None]) & (m1 <= idx_max[:, None])
        sub_turn = jnp.any(((left_i <= 0) | (right_i <= 0)) & live, axis=-1)
        sum_acc = st.sum_acc + acc
        n_prop = st.n_prop + 1
        leaf = n + 1
        sub_done = sub_turn | div | (leaf >= jnp.left_shift(1, st.depth))
        # the finished subtree joins the trajectory (biased progressive sampling)
        ok = sub_done & ~sub_turn & ~div
        trans = ok & (uu[:, 1] < jnp.exp(jnp.minimum(lws - st.logw_tree, 0.0)))
        tr = trans[:, None]
        qp = jnp.where(tr, qs, st.qp)
        gp = jnp.where(tr, gs, st.gp)
        lpp = jnp.where(trans, lps, st.lpp)
        hp = jnp.where(trans, hs, st.hp)
        logw_tree = jnp.where(ok, jnp.logaddexp(st.logw_tree, lws), st.logw_tree)
        rsum_tree = jnp.where(ok[:, None], st.rsum_tree + rss, st.rsum_tree)
        rt = rsum_tree - 0.5 * (pl + pr)
        tree_turn = (jnp.sum(st.inv_m * pl * rt, -1) <= 0) | (jnp.sum(st.inv_m * pr * rt, -1) <= 0)
        depth = jnp.where(sub_done, st.depth + 1, st.depth)
        hit_max = sub_done & ~(sub_turn | div | tree_turn) & (depth >= max_depth)
        done = sub_done & (sub_turn | div | tree_turn | (depth >= max_depth))
        # ---- a transition is complete: adapt (warm-up) or keep the draw
        it = st.it
        in_tune = it < tune
        warm = done & in_tune
        sampling = done & ~in_tune & (it < total)
        acc_mean = sum_acc / n_prop
        t_da = jnp.where(warm, st.t_da + 1, st.t_da)
        tf = jnp.maximum(t_da, 1).astype(f32)
        hbar = jnp.where(warm, (1.0 - 1.0 / (tf + _DA_T0)) * st.hbar
                         + (target - acc_mean) / (tf + _DA_T0), st.hbar)
        log_eps = jnp.where(warm, st.mu_da - jnp.sqrt(tf) / _DA_GAMMA * hbar, st.log_eps)
        eta = tf ** (-_DA_KAPPA)
        log_eps_bar = jnp.where(warm, eta * log_eps + (1.0 - eta) * st.log_eps_bar,
                                st.log_eps_bar)
        itc = jnp.minimum(it, tune)
        is_slow = warm & slow_tab[itc]
        wf_n = jnp.where(is_slow, st.wf_n + 1, st.wf_n)
        dq = qp - st.wf_mean
        wf_mean = jnp.where(is_slow[:, None], st.wf_mean + dq / jnp.maximum(wf_n, 1)[:, None]
                            .astype(f32), st.wf_mean)
        wf_m2 = jnp.where(is_slow[:, None], st.wf_m2 + dq * (qp - wf_mean), st.wf_m2)
        is_end = warm & end_tab[itc]
        nf = wf_n.astype(f32)[:, None]
        var = wf_m2 / jnp.maximum(nf - 1.0, 1.0)
        new_inv = (nf / (nf + 5.0)) * var + 1e-3 * (5.0 / (nf + 5.0))
        inv_m = jnp.where(is_end[:, None], new_inv, st.inv_m)
        wf_n = jnp.where(is_end, 0, wf_n)
        wf_mean = jnp.where(is_end[:, None], 0.0, wf_mean)
        wf_m2 = jnp.where(is_end[:, None], 0.0, wf_m2)
        # a new mass matrix restarts the dual averaging from the current step size
        mu_da = jnp.where(is_end, jnp.log(10.0) + log_eps, st.mu_da)
        t_da = jnp.where(is_end, 0, t_da)
        hbar = jnp.where(is_end, 0.0, hbar)
        log_eps_bar = jnp.where(is_end, 0.0, log_eps_bar)
        last_warm = warm & (it == tune - 1)
        eps = jnp.where(warm, jnp.exp(log_eps), st.eps)
        eps = jnp.where(last_warm, jnp.exp(log_eps_bar), eps)
        w, _ = to_w(qp)
        keep = sampling & ((it - tune) % thin == 0)
        slot = jnp.clip((it - tune) // thin, 0, n_keep - 1)
        stats = jnp.stack([acc_mean, hp, lpp, n_prop.astype(f32), depth.astype(f32),
                           div.astype(f32)], axis=-1)
        buf = st.buf.at[rows, jnp.where(keep, slot, n_keep)].set(
            jnp.concatenate([w, stats], axis=-1))
        sum_w = st.sum_w + jnp.where(sampling[:, None], w, 0.0)
        n_div = st.n_div + (sampling & div)
        n_maxdepth = st.n_maxdepth + (sampling & hit_max)
        active = it < total
        grad_tune = st.grad_tune + (active & in_tune)
        grad_draw = st.grad_draw + (active & ~in_tune)
        it = jnp.where(done & active, it + 1, it)
        # ---- the next trajectory starts at the new draw, with a fresh momentum
        dc = done[:, None]
        pnew = _fresh_normals(k1, done) / jnp.sqrt(inv_m)
        h0n = -lpp + kinetic(inv_m, pnew)
        fresh = done | (sub_done & ~done)
        return _State(
            ql=jnp.where(dc, qp, ql), pl=jnp.where(dc, pnew, pl), gl=jnp.where(dc, gp, gl),
            qr=jnp.where(dc, qp, qr), pr=jnp.where(dc, pnew, pr), gr=jnp.where(dc, gp, gr),
            qp=qp, gp=gp, lpp=lpp, hp=jnp.where(done, h0n, hp),
            qs=qs, gs=gs, lps=lps, hs=hs, h0=jnp.where(done, h0n, st.h0),
            logw_tree=jnp.where(done, 0.0, logw_tree),
            logw_sub=jnp.where(fresh, -jnp.inf, lws),
            rsum_tree=jnp.where(dc, pnew, rsum_tree),
            rsum_sub=jnp.where(fresh[:, None], 0.0, rss),
            ck_r=ck_r, ck_rs=ck_rs, ck_s=ck_s,
            depth=jnp.where(done, 0, depth), leaf=jnp.where(fresh, 0, leaf),
            right=jnp.where(fresh, uu[:, 2] < 0.5, st.right), it=it,
            sum_acc=jnp.where(done, 0.0, sum_acc), n_prop=jnp.where(done, 0, n_prop),
            eps=eps, log_eps=log_eps, log_eps_bar=log_eps_bar, hbar=hbar, mu_da=mu_da,
            t_da=t_da, inv_m=inv_m, wf_n=wf_n, wf_mean=wf_mean, wf_m2=wf_m2, buf=buf,
            sum_w=sum_w, n_div=n_div, n_maxdepth=n_maxdepth, grad_tune=grad_tune,
            grad_draw=grad_draw, step=st.step + 1)

    def run(st: _State, key, xs, signs, limit):  # noqa: ANN001, ANN202
        stop = st.step + limit

        def cond(s):  # noqa: ANN001, ANN202
            return (s.step < stop) & (jnp.min(s.it) < total)

        return jax.lax.while_loop(cond, lambda s: one_step(s, key, xs, signs), st)

    return jax.jit(init), jax.jit(run, donate_argnums=(0,))


# ----------------------------------------------------------------------------- diagnostics

def _cell_summary(cs: xr.Dataset, timings: dict[str, float], settings: dict[str, Any]
                  ) -> dict[str, Any]:
    """The fit-level diagnostics dict (the keys ``compute_diagnostics`` gives) from the
    per-cell statistics."""
    from bayesdissect.model.diagnostics import (
        _worst,
        convergence_messages,
        sampler_messages,
    )

    def ext(name: str, fn) -> float:  # noqa: ANN001
        v = np.asarray(cs[name].values, float)
        return float(fn(v)) if np.isfinite(v).any() else float("nan")

    stat = {n: xr.Dataset({"w_cell": cs[n]}) for n in ("rhat", "ess_bulk", "ess_tail")}
    d: dict[str, Any] = {
        "max_rhat": ext("rhat", np.nanmax),
        "min_ess_bulk": ext("ess_bulk", np.nanmin),
        "min_ess_tail": ext("ess_tail", np.nanmin),
        "divergences": int(cs["divergences"].values.sum()),
        "n_parameters": int(cs["rhat"].size),
        "n_cells": int(cs["divergences"].size),
        "chains": int(settings["chains"]),
        "draws": int(-(-settings["draws"] // settings["thin"])),
        "worst_rhat": [list(r) for r in _worst(stat["rhat"], largest=True)],
        "worst_ess_bulk": [list(r) for r in _worst(stat["ess_bulk"], largest=False)],
        "worst_ess_tail": [list(r) for r in _worst(stat["ess_tail"], largest=False)],
        "max_treedepth_hits": int(cs["max_treedepth_hits"].values.sum()),
        "bfmi": [], "min_bfmi": float("nan"),
        "mean_tree_depth": float(cs["mean_tree_depth"].mean()),
        "step_size": float(cs["step_size"].mean()),
        "mean_steps_per_draw": float(cs["mean_steps_per_draw"].mean()),
        "grad_evals_draw": int(cs["grad_evals_draw"].values.sum()),
        "grad_evals_tune": int(cs["grad_evals_tune"].values.sum()),
    }
    d.update({k: float(v) for k, v in timings.items()})
    # every chain pays for the slowest: the loop's passes against the work it needed
    d["warnings"] = convergence_messages(d)
    d["sampler_warnings"] = sampler_messages(d)
    return d


# ----------------------------------------------------------------------------- the fit

#: Outputs gathered from the loop state per chain.
_OUT_FIELDS = ("buf", "sum_w", "n_div", "n_maxdepth", "grad_tune", "grad_draw", "eps")


def _sample_cells(xs: list[np.ndarray], signs: list[np.ndarray], per_block: int, to_w: Any,
                  logprior: Any, *, dim: int, tune: int, draws: int, thin: int, target: float,
                  max_depth: int, seed: int, chunk: int, progress: Any
                  ) -> tuple[dict[str, np.ndarray], int, float, float | None, int]:
    """Run every chain (group-major: chains g * per_block .. of group g) to tune + draws
    transitions. Returns the per-chain outputs (``_OUT_FIELDS``), loop passes, the time
    sampling started, the time the slowest chain left warm-up, and the compactions made.

    Every pass costs the same for all chains in the loop, finished or not, and the last
    few per cent of chains take a third of the passes (measured: 90% of chains done at pass
    20k, the last at 28k). So after each ``chunk`` passes, once at most half the chains in
    the loop are unfinished, the loop continues with those only (one more compile).
    """
    import jax
    import jax.numpy as jnp

    n_g = len(xs)
    n_chains = n_g * per_block
    total = tune + draws
    n_keep = -(-draws // thin)
    group_of = np.repeat(np.arange(n_g), per_block)
    col_of = np.tile(np.arange(per_block), n_g)
    host = {"buf": np.zeros((n_chains, n_keep, dim + len(STAT_NAMES)), np.float32)}
    xj = [jnp.asarray(x, jnp.float32) for x in xs]

    def runner(active: np.ndarray) -> tuple[Any, Any, list[Any], list[Any]]:
        blocks, xg, sg, a = [], [], [], 0
        for g in range(n_g):
            cols = col_of[active][group_of[active] == g]
            if cols.size:
                blocks.append((a, a + cols.size))
                a += cols.size
                xg.append(xj[g])
                sg.append(jnp.asarray(signs[g][:, cols], jnp.float32))
        init, run = _make_runner(to_w, logprior, tuple(blocks), int(active.size), dim, tune,
                                 draws, thin, target, max_depth)
        return init, run, xg, sg

    def keep_rows(state: _State, pos: np.ndarray, active: np.ndarray) -> None:
        """Copy the outputs of chains at loop positions ``pos`` to the host arrays."""
        idx = jnp.asarray(pos)
        for name in _OUT_FIELDS:
            val = np.asarray(getattr(state, name)[idx])
            if name == "buf":
                host["buf"][active[pos]] = val[:, :n_keep]
            else:
                host.setdefault(name, np.zeros((n_chains,) + val.shape[1:], val.dtype))
                host[name][active[pos]] = val

    active = np.arange(n_chains)
    init, run, xg, sg = runner(active)
    key = jax.random.key(seed)
    k_init, k_mom, k_run = jax.random.split(key, 3)
    u0 = jax.random.uniform(k_init, (n_chains, dim), jnp.float32, -2.0, 2.0)
    state = init(k_mom, u0, xg, sg)
    jax.block_until_ready(state)
    t_init = time.perf_counter()
    t_tuned = None
    n_compact = 0
    while True:
        state = run(state, k_run, xg, sg, jnp.int32(chunk))
        it = np.asarray(state.it)
        if t_tuned is None and it.min() >= tune:
            t_tuned = time.perf_counter()
        if progress is not None:
            progress(int(state.step), int(it.min()), total, int(active.size))
        left = np.flatnonzero(it < total)
        if left.size == 0:
            break
        if 2 * left.size <= active.size:
            keep_rows(state, np.flatnonzero(it >= total), active)
            idx = jnp.asarray(left)
            state = _State(*[v if v.ndim == 0 else v[idx] for v in state])
            active = active[left]
            init, run, xg, sg = runner(active)
            n_compact += 1
    keep_rows(state, np.arange(active.size), active)
    return host, int(state.step), t_init, t_tuned, n_compact


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise BayesDissectError(f"fit_per_cell: {name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise BayesDissectError(f"fit_per_cell: {name} must be {rng}, got {value}")
    return int(value)


def fit_per_cell(
    data: xr.Dataset | str | os.PathLike[str],
    spec: str | os.PathLike[str] | ModelSpec = "paper",
    chains: int = 4,
    draws: int = 2000,
    tune: int = 500,
    seed: int = 0,
    folds: int | None = None,
    groups: str | Sequence[str] = "scenarios+cases",
    *,
    judges: Any = None,
    thin: int = 1,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    parameterization: str = "auto",
    chunk: int = 1000,
    progress: Any = None,
) -> Any:
    """Fit every (judge, group) cell of ``data`` separately, all cells together in one
    vectorised NUTS loop, and return a ``bayesdissect.model.fit.Fit``.

    ``spec`` must factorise over cells (only a ``w_cell`` level with a fixed prior, like
    ``paper``). The paper's settings are the defaults: 4 chains x (500 warm-up + 2,000
    draws) per cell, NUTS at target acceptance 0.8 with window adaptation of the step size
    and diagonal mass matrix, maximum tree depth 10. ``groups``: ``"scenarios+cases"``
    (the 11 scenarios and the 5 query-specific cases as extra groups: 16 x 33 = 528 cells at
    full size), ``"scenarios"``, ``"cases"`` or a list of names; ``judges`` selects judges
    (as ``fit(judges=...)``). ``folds=k`` (k >= 2) fits the paper's k folds of each cell.
    ``thin`` keeps every thin-th draw (the means in ``cell_stats`` use every draw).
    ``progress``: a callable given (loop passes, transitions done by the slowest chain,
    transitions wanted, chains still in the loop) after every ``chunk`` passes.

    The Fit: ``posterior`` holds ``w_cell`` (chain, draw, judge, group, property) float32
    (with folds: chain = fold x chains, fold-major, and a ``fold`` coordinate on chain, so
    its mean over all draws is the mean of the fold means); ``sample_stats`` the NUTS
    statistics (chain, draw, judge, group); ``fit.idata["cell_stats"]`` per cell: ``w_mean``
    (the posterior mean from every draw; with folds the mean of the fold means, the paper's
    estimate), ``w_fold_mean`` (folds only), R-hat, bulk and tail ESS per weight (with folds
    per fold: dims fold, judge, group, property), divergences, tree-depth hits, step size,
    mean leapfrog steps, labelled pairs; ``fit.diagnostics`` the fit-level summary (worst
    cells named as ``w_cell[judge, group, property]``); ``fit.settings`` the call.
    """
    t_start = time.perf_counter()
    spec = load_spec(spec)
    family, scale, nu = spec_w_cell_prior(spec)
    chains = _check_int("chains", chains, 1)
    draws = _check_int("draws", draws, 1)
    tune = _check_int("tune", tune, 0)
    seed = _check_int("seed", seed, 0)
    thin = _check_int("thin", thin, 1, draws)
    max_tree_depth = _check_int("max_tree_depth", max_tree_depth, 1, 20)
    chunk = _check_int("chunk", chunk, 1)
    n_folds = 1 if folds is None else _check_int("folds", folds, 1)
    if not isinstance(target_accept, int | float) or not 0.0 < float(target_accept) < 1.0:
        raise BayesDissectError(f"fit_per_cell: target_accept must be a number in (0, 1), "
                                f"got {target_accept!r}")
    if parameterization not in PARAMETERIZATIONS:
        raise BayesDissectError(f"fit_per_cell: parameterization must be one of "
                                f"{PARAMETERIZATIONS}, got {parameterization!r}")
    if not isinstance(data, xr.Dataset):
        from bayesdissect.data.loaders import load

        data = load(data)
    from bayesdissect.data.subset import name_list, subset_data
    from bayesdissect.model.fitted import Fit

    data = subset_data(data, judges=judges)
    design = cell_design(data, groups)
    n_g, n_j, dim = len(design.groups), len(design.judges), len(design.properties)
    if n_folds > 1:
        small = int(design.n_pairs.min())
        if small < n_folds:
            j, g = np.unravel_index(int(design.n_pairs.argmin()), design.n_pairs.shape)
            raise BayesDissectError(f"fit_per_cell: folds={n_folds} needs at least {n_folds} "
                                    f"labelled pairs per cell; {design.judges[j]!r} in "
                                    f"{design.groups[g]!r} has {small}")
    per_block = n_j * n_folds * chains
    n_chains = n_g * per_block
    n_keep = -(-draws // thin)
    nbytes = n_chains * n_keep * (dim + len(STAT_NAMES)) * 4
    if nbytes > MAX_DRAW_BYTES:
        raise BayesDissectError(
            f"fit_per_cell: {n_chains} chains x {n_keep} kept draws would hold "
            f"{nbytes / 1e9:.1f} GB of draws; pass thin >= "
            f"{int(np.ceil(nbytes * thin / MAX_DRAW_BYTES))} (or fewer draws)")
    t_prep = time.perf_counter()

    import jax

    # chain layout inside group block g: (judge, fold, chain); signs replicated to match
    signs = []
    for s in design.sign:
        sf = _fold_signs(s, n_folds) if n_folds > 1 else s[:, :, None]
        signs.append(np.repeat(sf[:, :, :, None], chains, axis=3).reshape(s.shape[0], -1))
    to_w, logprior = _prior_fns(family, scale, nu, parameterization)
    out, passes, t_init, t_tuned, n_compact = _sample_cells(
        design.x, signs, per_block, to_w, logprior, dim=dim, tune=tune, draws=draws,
        thin=thin, target=float(target_accept), max_depth=max_tree_depth, seed=seed,
        chunk=chunk, progress=progress)
    t_run = time.perf_counter()
    # (G, J, F, C, S, .) -> (chain = F x C, draw, judge, group, .)
    buf = out["buf"][:, :n_keep].reshape(n_g, n_j, n_folds, chains, n_keep, -1)
    w = buf[..., :dim]
    per_cell = (n_g, n_j, n_folds, chains)

    def cells(a: np.ndarray) -> np.ndarray:  # (G, J, F, C) -> (F, C, J, G)
        return np.transpose(a.reshape(per_cell), (2, 3, 1, 0))

    # one group at a time: (J, F, C, S, K) -> (chain, draw, fold, judge, property)
    parts = [convergence_arrays(np.transpose(w[g], (2, 3, 1, 0, 4))) for g in range(n_g)]
    conv = {k: np.stack([p[k] for p in parts], axis=2) for k in parts[0]}  # (F, J, G, K)
    t_conv = time.perf_counter()
    fold_mean = np.transpose(out["sum_w"].reshape(per_cell + (dim,)).sum(3) / (chains * draws),
                             (2, 1, 0, 3))  # (F, J, G, K)
    stats = buf[..., dim:]
    dims_c = ("fold", "judge", "group")
    coords = {"judge": design.judges, "group": design.groups, "property": design.properties}
    cs = xr.Dataset(
        {"w_mean": (("judge", "group", "property"), fold_mean.mean(0)),
         "rhat": (dims_c + ("property",), conv["rhat"]),
         "ess_bulk": (dims_c + ("property",), conv["ess_bulk"]),
         "ess_tail": (dims_c + ("property",), conv["ess_tail"]),
         "divergences": (dims_c, cells(out["n_div"]).sum(1)),
         "max_treedepth_hits": (dims_c, cells(out["n_maxdepth"]).sum(1)),
         "step_size": (dims_c, cells(out["eps"]).mean(1)),
         "mean_steps_per_draw": (dims_c, np.transpose(stats[..., 3].mean((3, 4)), (2, 1, 0))),
         "mean_tree_depth": (dims_c, np.transpose(stats[..., 4].mean((3, 4)), (2, 1, 0))),
         "grad_evals_tune": (dims_c, cells(out["grad_tune"]).sum(1)),
         "grad_evals_draw": (dims_c, cells(out["grad_draw"]).sum(1)),
         "n_pairs": (dims_c, _fold_pairs(design, n_folds))},
        coords={**coords, "fold": np.arange(n_folds)},
        attrs={"group_kind": [f"{g}={k}" for g, k in zip(design.groups, design.kinds,
                                                          strict=True)]})
    if n_folds > 1:
        cs["w_fold_mean"] = (("fold", "judge", "group", "property"), fold_mean)
    else:
        cs = cs.squeeze("fold", drop=True)
    chain_coord = np.arange(n_folds * chains)
    post_w = np.transpose(w, (2, 3, 4, 1, 0, 5)).reshape((n_folds * chains, n_keep, n_j, n_g,
                                                          dim))
    pcoords = {"chain": chain_coord, "draw": np.arange(n_keep) * thin, **coords}
    posterior = xr.Dataset({"w_cell": (("chain", "draw", "judge", "group", "property"),
                                       post_w)}, coords=pcoords)
    if n_folds > 1:
        posterior = posterior.assign_coords(fold=("chain", np.repeat(np.arange(n_folds),
                                                                     chains)))
    st_arr = np.transpose(stats, (2, 3, 4, 1, 0, 5)).reshape((n_folds * chains, n_keep, n_j,
                                                             n_g, len(STAT_NAMES)))
    sdims = ("chain", "draw", "judge", "group")
    sample_stats = xr.Dataset(
        {"acceptance_rate": (sdims, st_arr[..., 0]), "energy": (sdims, st_arr[..., 1]),
         "lp": (sdims, st_arr[..., 2]), "n_steps": (sdims, st_arr[..., 3].astype(np.int32)),
         "tree_depth": (sdims, st_arr[..., 4].astype(np.int32)),
         "diverging": (sdims, st_arr[..., 5] > 0.5)},
        coords={k: v for k, v in pcoords.items() if k != "property"})
    t_end = time.perf_counter()
    timings = {"prepare_seconds": t_prep - t_start, "compile_seconds": t_init - t_prep,
               "tune_seconds": (t_tuned or t_run) - t_init,
               "draw_seconds": t_run - (t_tuned or t_run),
               "sampling_seconds": t_run - t_init,
               "diagnostics_seconds": t_conv - t_run,
               "total_seconds": t_end - t_start}
    settings = {"method": "per_cell", "chains": chains, "draws": draws, "tune": tune,
                "seed": seed, "folds": folds, "groups": groups if isinstance(groups, str)
                else list(groups), "judges": name_list(judges), "thin": thin,
                "target_accept": float(target_accept), "max_tree_depth": max_tree_depth,
                "parameterization": parameterization, "prior": family, "prior_scale": scale,
                "loop_passes": passes, "n_chains_total": n_chains, "compactions": n_compact,
                "jax": jax.__version__, "jax_platform": jax.devices()[0].platform}
    diag = _cell_summary(cs, timings, settings)
    # every chain runs until the slowest is done: passes x chains against the work done
    work = diag["grad_evals_tune"] + diag["grad_evals_draw"]
    diag["loop_efficiency"] = float(work / max(1, passes * n_chains))
    tree = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": sample_stats,
                                  "cell_stats": cs})
    return Fit(data, spec, tree, diag, settings)


def _fold_pairs(design: CellDesign, folds: int) -> np.ndarray:
    """(F, J, G) labelled pairs each fold of each cell is fitted on."""
    n = design.n_pairs  # (J, G)
    if folds == 1:
        return n[None]
    return np.stack([n - (n // folds)] * folds)
