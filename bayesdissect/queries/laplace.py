"""The Laplace approximation behind add-judge's fast path.

For every posterior draw of the population terms, a new judge's own parameters (judge
offset, cell offsets, bias) have a conditional posterior that is a logistic regression with
a Gaussian prior. ``laplace_new_judge`` finds its mode by Newton's method (in the
non-centred coordinates z = offset / sigma) and draws once from the Gaussian at that mode;
``NewJudgeProblem`` holds one chunk of draws' log posterior, gradient and curvature. Pure
numpy: no xarray, no fit; ``queries.addjudge`` prepares the arrays and writes the draws back.
"""

from __future__ import annotations

import numpy as np


class NewJudgeProblem:
    """The new judge's conditional log posterior in z coordinates, for a chunk of draws.

    logit_i = bias_scale * zb + x_i . (m[s, g(i)] + sj[s] * za + sc[s] * zc[g(i)])
    + offset[s, i], z ~ N(0, 1) (offset: the pair effects of the population draw, or None).
    Holds the pieces that do not change while the mode is searched.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, groups: list[slice],
                 xx: np.ndarray, m: np.ndarray, sj: np.ndarray | None,
                 sc: np.ndarray | None, bias_scale: float | None,
                 offset: np.ndarray | None = None) -> None:
        self.x, self.y, self.groups, self.xx, self.m = x, y, groups, xx, m
        self.offset = offset  # (d, N) fixed logit terms, or None
        self.xt = [np.ascontiguousarray(x[idx].T) for idx in groups]  # (K, pairs of g)
        self.sj, self.sc, self.bs = sj, sc, bias_scale
        self.d, self.k, self.g = m.shape[0], x.shape[1], len(groups)
        self.pg = (1 if bias_scale is not None else 0) + (self.k if sj is not None else 0)

    def eta(self, z: dict[str, np.ndarray]) -> np.ndarray:
        """Logits (d, N): one (draws x K) @ (K x pairs of g) product per group."""
        v = self.m.copy()  # (d, G, K): the judge's full weight in every group
        if self.sj is not None:
            v += (z["a"] * self.sj)[:, None, :]
        if self.sc is not None:
            v += z["c"] * self.sc[:, None, :]
        val = np.empty((self.d, self.x.shape[0]))
        for g, idx in enumerate(self.groups):
            val[:, idx] = np.ascontiguousarray(v[:, g, :]) @ self.xt[g]
        if self.bs is not None:
            val += (self.bs * z["b"])[:, None]
        if self.offset is not None:
            val += self.offset
        return val

    def logpost(self, e: np.ndarray, z: dict[str, np.ndarray]) -> np.ndarray:
        ll = (self.y * e - np.logaddexp(0.0, e)).sum(axis=1)
        return ll - 0.5 * sum((v.reshape(self.d, -1) ** 2).sum(1) for v in z.values())

    def gradient(self, e: np.ndarray, z: dict[str, np.ndarray]):
        """(grad of the global block (d, pg), grad of the cell blocks (d, G, K) or None)."""
        r = self.y - 1.0 / (1.0 + np.exp(-e))
        parts = []
        if self.bs is not None:
            parts.append((self.bs * r.sum(1) - z["b"])[:, None])
        if self.sj is not None:
            parts.append(self.sj * (r @ self.x) - z["a"])
        grad_u = np.concatenate(parts, axis=1) if parts else np.zeros((self.d, 0))
        grad_c = None
        if self.sc is not None:
            qg = np.stack([r[:, idx] @ self.x[idx] for idx in self.groups], axis=1)
            grad_c = self.sc[:, None, :] * qg - z["c"]
        return grad_u, grad_c

    def curvature(self, e: np.ndarray | None, w_ref: np.ndarray | None = None):
        """Per-group sums S_g = X'WX, t_g = X'W1, r_g = sum W at logits e (d, N), or
        shared ones from reference weights w_ref (N,) broadcast to every draw."""
        k = self.k
        if w_ref is not None:
            sg = np.stack([(w_ref[idx] @ self.xx[idx]).reshape(k, k) for idx in self.groups])
            tg = np.stack([w_ref[idx] @ self.x[idx] for idx in self.groups])
            rg = np.asarray([w_ref[idx].sum() for idx in self.groups])
            return (np.broadcast_to(sg, (self.d,) + sg.shape),
                    np.broadcast_to(tg, (self.d,) + tg.shape),
                    np.broadcast_to(rg, (self.d,) + rg.shape))
        p = 1.0 / (1.0 + np.exp(-e))
        w = p * (1.0 - p)
        d = self.d
        sg = np.stack([(w[:, idx] @ self.xx[idx]).reshape(d, k, k) for idx in self.groups], 1)
        tg = np.stack([w[:, idx] @ self.x[idx] for idx in self.groups], axis=1)
        rg = np.stack([w[:, idx].sum(1) for idx in self.groups], axis=1)
        return sg, tg, rg

    def factor(self, sg: np.ndarray, tg: np.ndarray, rg: np.ndarray) -> dict[str, np.ndarray]:
        """Precision in z coordinates, with the cell blocks eliminated (Schur complement)."""
        d, k, gc, pg, bs, sj, sc = self.d, self.k, self.g, self.pg, self.bs, self.sj, self.sc
        h_uu = np.zeros((d, pg, pg))
        c_gu = np.zeros((d, gc, pg, k))
        pos = 0
        if bs is not None:
            h_uu[:, 0, 0] = bs**2 * rg.sum(1) + 1.0
            if sj is not None:
                h_uu[:, 0, 1:] = bs * sj * tg.sum(1)
                h_uu[:, 1:, 0] = h_uu[:, 0, 1:]
            if sc is not None:
                c_gu[:, :, 0, :] = bs * sc[:, None, :] * tg
            pos = 1
        if sj is not None:
            h_uu[:, pos:, pos:] = sj[:, :, None] * sg.sum(1) * sj[:, None, :] + np.eye(k)
            if sc is not None:
                c_gu[:, :, pos:, :] = sj[:, None, :, None] * sg * sc[:, None, None, :]
        parts: dict[str, np.ndarray] = {}
        if sc is not None:
            l_g = sc[:, None, :, None] * sg * sc[:, None, None, :] + np.eye(k)
            l_inv = np.linalg.inv(l_g)
            linv_ct = l_inv @ np.swapaxes(c_gu, -1, -2)  # (d, G, K, pg)
            schur = h_uu - np.einsum("dgpk,dgkq->dpq", c_gu, linv_ct)
            parts.update(l_g=l_g, l_inv=l_inv, linv_ct=linv_ct, c_gu=c_gu)
        else:
            schur = h_uu
        parts["schur"] = schur
        parts["schur_inv"] = np.linalg.inv(schur) if pg else np.zeros((d, 0, 0))
        return parts

    def direction(self, parts: dict[str, np.ndarray], grad_u: np.ndarray,
                  grad_c: np.ndarray | None):
        """Newton direction H^{-1} grad, using the Schur factors."""
        if grad_c is not None:
            linv_gc = np.einsum("dgkl,dgl->dgk", parts["l_inv"], grad_c)
            rhs = grad_u - np.einsum("dgpk,dgk->dp", parts["c_gu"], linv_gc)
        else:
            rhs = grad_u
        du = np.einsum("dpq,dq->dp", parts["schur_inv"], rhs)
        dc = None
        if grad_c is not None:
            dc = linv_gc - np.einsum("dgkp,dp->dgk", parts["linv_ct"], du)
        return du, dc

    def step(self, z: dict[str, np.ndarray], du: np.ndarray, dc: np.ndarray | None,
             alpha: np.ndarray) -> dict[str, np.ndarray]:
        out = dict(z)
        pos = 0
        if self.bs is not None:
            out["b"] = z["b"] + alpha * du[:, 0]
            pos = 1
        if self.sj is not None:
            out["a"] = z["a"] + alpha[:, None] * du[:, pos:]
        if dc is not None:
            out["c"] = z["c"] + alpha[:, None, None] * dc
        return out

    def mode(self, z: dict[str, np.ndarray], parts: dict[str, np.ndarray] | None,
             *, max_iter: int, tol: float) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
        """Maximise the log posterior from z. With ``parts`` given, that fixed precision is
        the preconditioner (chord method: cheap steps, linear convergence); without, a full
        Newton step each iteration. Step halving keeps every step uphill."""
        e = self.eta(z)
        lp = self.logpost(e, z)
        for it in range(max_iter):
            grad_u, grad_c = self.gradient(e, z)
            fac = parts if parts is not None else self.factor(*self.curvature(e))
            du, dc = self.direction(fac, grad_u, grad_c)
            size = np.abs(du).max(axis=1) if self.pg else np.zeros(self.d)
            if dc is not None:
                size = np.maximum(size, np.abs(dc).max(axis=(1, 2)))
            if size.max() < tol:
                return z, e, it
            alpha = np.ones(self.d)
            for _ in range(40):
                z_new = self.step(z, du, dc, alpha)
                e_new = self.eta(z_new)
                lp_new = self.logpost(e_new, z_new)
                ok = lp_new >= lp - 1e-9 * np.abs(lp)
                if ok.all():
                    break
                alpha = np.where(ok, alpha, 0.5 * alpha)
            z, e, lp = z_new, e_new, lp_new
        return z, e, max_iter


def laplace_new_judge(
    x: np.ndarray,
    gidx: np.ndarray,
    y: np.ndarray,
    m: np.ndarray,
    sigma_judge: np.ndarray | None,
    sigma_cell: np.ndarray | None,
    bias_scale: float | None,
    rng: np.random.Generator,
    *,
    offset: np.ndarray | None = None,
    chunk: int = 500,
    max_iter: int = 100,
    tol: float = 1e-7,
) -> dict[str, np.ndarray]:
    """Draw the new judge's own parameters, one draw per population draw (the fast path).

    Model for labelled pairs i (group g(i)) and population draw s:
        logit_i = bias + x_i . (m[s, g(i)] + a + c[g(i)]) + offset[s, i],
        a = sigma_judge[s] * za, c[g] = sigma_cell[s] * zc[g], bias = bias_scale * zb,
        za, zc, zb ~ N(0, 1).
    For each s: the mode of the conditional posterior in z (chord iterations preconditioned
    by the curvature at a reference mode -- the one for the posterior-mean population --
    then, only if those stall, full Newton steps), and one draw from the Gaussian whose
    precision is the exact Hessian at that mode. The cell blocks are eliminated by a Schur
    complement, so a draw
    costs K x K work per group plus one (1 + K) system, and the curvature sums are matrix
    products over the labelled pairs.

    Shapes: x (N, K); gidx (N,) int in [0, G); y (N,) 0/1; m (S, G, K); sigma_* (S, K) or
    None when the level is off; offset (S, N) or None: fixed terms of each draw's logits
    (a pair level's effects u[s, i], which every judge shares). Returns judge_offset
    (S, K), cell_offset (S, G, K) and bias (S,) for the levels that are on, and
    diagnostics ``chord_iters``, ``newton_iters`` (max over draws), ``max_grad`` (largest
    |gradient| left at a mode, z units).
    """
    order = np.argsort(np.asarray(gidx), kind="stable")  # groups become contiguous slices
    x = np.ascontiguousarray(np.asarray(x, dtype=float)[order])
    if offset is not None:
        offset = np.asarray(offset)[:, order]
    y = np.asarray(y, dtype=float)[order]
    gidx = np.asarray(gidx)[order]
    n, k = x.shape
    s_total, g_count, _ = m.shape
    bounds = np.searchsorted(gidx, np.arange(g_count + 1))
    groups = [slice(int(bounds[g]), int(bounds[g + 1])) for g in range(g_count)]
    xx = (x[:, :, None] * x[:, None, :]).reshape(n, k * k)
    has_a, has_c, has_b = sigma_judge is not None, sigma_cell is not None, bias_scale is not None

    def problem(m_: np.ndarray, sj_: np.ndarray | None, sc_: np.ndarray | None,
                off_: np.ndarray | None) -> NewJudgeProblem:
        return NewJudgeProblem(x, y, groups, xx, np.asarray(m_, dtype=float), sj_, sc_,
                               bias_scale, None if off_ is None else
                               np.asarray(off_, dtype=float))

    def zeros(d: int) -> dict[str, np.ndarray]:
        z: dict[str, np.ndarray] = {}
        if has_b:
            z["b"] = np.zeros(d)
        if has_a:
            z["a"] = np.zeros((d, k))
        if has_c:
            z["c"] = np.zeros((d, g_count, k))
        return z

    # Reference: the mode for the posterior-mean population, by full Newton.
    sj_all = None if sigma_judge is None else np.asarray(sigma_judge, dtype=float)
    sc_all = None if sigma_cell is None else np.asarray(sigma_cell, dtype=float)
    ref = problem(m.mean(0, keepdims=True),
                  None if sj_all is None else sj_all.mean(0, keepdims=True),
                  None if sc_all is None else sc_all.mean(0, keepdims=True),
                  None if offset is None else offset.mean(0, keepdims=True, dtype=float))
    z_ref, e_ref, _ = ref.mode(zeros(1), None, max_iter=max_iter, tol=tol)
    p_ref = 1.0 / (1.0 + np.exp(-e_ref[0]))
    w_ref = p_ref * (1.0 - p_ref)
    # the reference mode on the natural scale, to start every draw from
    a_ref = z_ref["a"][0] * ref.sj[0] if has_a else None  # type: ignore[index]
    c_ref = z_ref["c"][0] * ref.sc[0] if has_c else None  # type: ignore[index]

    out = {"judge_offset": np.zeros((s_total, k)), "cell_offset": np.zeros((s_total, g_count, k)),
           "bias": np.zeros(s_total)}
    chord_iters = newton_iters = 0
    max_grad = 0.0
    for start in range(0, s_total, chunk):
        sl = slice(start, min(start + chunk, s_total))
        prob = problem(m[sl], None if sj_all is None else sj_all[sl],
                       None if sc_all is None else sc_all[sl],
                       None if offset is None else offset[sl])
        d = prob.d
        z = zeros(d)
        if has_b:
            z["b"] = np.full(d, z_ref["b"][0])
        if has_a:
            z["a"] = a_ref / prob.sj  # type: ignore[operator]
        if has_c:
            z["c"] = c_ref / prob.sc[:, None, :]  # type: ignore[index]
        fixed = prob.factor(*prob.curvature(None, w_ref=w_ref))
        z, e, it1 = prob.mode(z, fixed, max_iter=max_iter, tol=tol)
        it2 = 0
        if it1 >= max_iter:  # the chord method stalled: finish with full Newton steps
            z, e, it2 = prob.mode(z, None, max_iter=max_iter, tol=tol)
        chord_iters, newton_iters = max(chord_iters, it1), max(newton_iters, it2)
        grad_u, grad_c = prob.gradient(e, z)
        max_grad = max(max_grad, float(np.abs(grad_u).max(initial=0.0)),
                       float(np.abs(grad_c).max(initial=0.0)) if grad_c is not None else 0.0)
        parts = prob.factor(*prob.curvature(e))
        # one draw from N(mode, H^{-1}): global block from its Schur marginal, then the
        # cell blocks from their conditional given the global block
        pos = 0
        if prob.pg:
            u_dev = _chol_solve_t(np.linalg.cholesky(parts["schur"]),
                                  rng.standard_normal((d, prob.pg)))
        if has_b:
            out["bias"][sl] = bias_scale * (z["b"] + u_dev[:, 0])
            pos = 1
        if has_a:
            out["judge_offset"][sl] = prob.sj * (z["a"] + u_dev[:, pos:])
        if has_c:
            c_dev = _chol_solve_t(np.linalg.cholesky(parts["l_g"]),
                                  rng.standard_normal((d, g_count, k)))
            if prob.pg:
                c_dev -= np.einsum("dgkp,dp->dgk", parts["linv_ct"], u_dev)
            out["cell_offset"][sl] = prob.sc[:, None, :] * (z["c"] + c_dev)
    result = {name: arr for name, arr, on in (("judge_offset", out["judge_offset"], has_a),
                                              ("cell_offset", out["cell_offset"], has_c),
                                              ("bias", out["bias"], has_b)) if on}
    result.update(chord_iters=np.asarray(chord_iters), newton_iters=np.asarray(newton_iters),
                  max_grad=np.asarray(max_grad))
    return result


def _chol_solve_t(chol: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """L^{-T} eps for batched lower-triangular L (precision L L^T), eps (..., n): a draw
    with covariance (L L^T)^{-1}."""
    return np.linalg.solve(np.swapaxes(chol, -1, -2), eps[..., None])[..., 0]

