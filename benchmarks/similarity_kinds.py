"""Benchmark: the similarity kinds and clusters on a saved fit, as the report computes them.

The report before 2026-12-02 computed the paper kind and clustered on it; now it computes
the default kind (agreement) once for its table and its clusters, and the paper kind beside
it. This times each piece on a real fit and prints one line each (wall s, peak RSS so far).

Run: ``python3 benchmarks/similarity_kinds.py FIT.nc``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fit")
    args = ap.parse_args()

    import numpy as np

    import bayesdissect as bd
    from bayesdissect.queries.clusters import cluster_matrices
    from bayesdissect.queries.similarity import pair_table, similarity_matrices

    t0 = time.perf_counter()
    fit = bd.load_fit(args.fit)
    post = fit.posterior
    print(f"python {platform.python_version()}, bayesdissect {bd.__version__}; "
          f"{post.sizes['chain']} x {post.sizes['draw']} draws, {post.sizes['judge']} judges; "
          f"load {time.perf_counter() - t0:.1f} s")

    def timed(name: str, fn):  # noqa: ANN202
        t = time.perf_counter()
        out = fn()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"{name:<52s} {time.perf_counter() - t:7.1f} s   peak RSS {rss:5.2f} GiB",
              flush=True)
        return out

    timed("similarity kind=paper (table)", lambda: bd.similarity(fit, kind="paper"))
    timed("clusters kind=paper", lambda: bd.clusters(fit, kind="paper"))
    mats = timed("similarity_matrices kind=agreement", lambda: similarity_matrices(
        fit, "agreement"))
    timed("  its table", lambda: pair_table(*mats))
    cl = timed("  clusters on the same matrices", lambda: cluster_matrices(
        *mats, kind="agreement"))
    paper = bd.similarity(fit, kind="paper").set_index(["judge_a", "judge_b"])
    agr = pair_table(*mats).set_index(["judge_a", "judge_b"])
    r = float(np.corrcoef(paper["mean"], agr["mean"])[0, 1])
    print(f"clusters on agreement: K = {cl.k}; r(paper mean, agreement mean) over "
          f"{len(agr)} pairs = {r:.3f}; agreement interval width median "
          f"{float((agr.upper - agr.lower).median()):.3f}, paper "
          f"{float((paper.upper - paper.lower).median()):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
