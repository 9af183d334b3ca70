"""Wall time of the default ``bayesdissect demo`` (fresh process, as a user runs it), with
the phases it prints, the convergence of its fit and any convergence warning it printed,
plus the machine's load average before and after.

    python3 benchmarks/bench_demo.py [--full] [--keep DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--keep", default=None, help="copy the report folder here")
    ap.add_argument("--seed", type=int, default=None, help="the demo's --seed (default its own)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bd-demo-")
    out = os.path.join(tmp, "demo")
    cmd = [sys.executable, "-m", "bayesdissect", "demo", "--out", out] + (
        ["--full"] if args.full else []) + (
        ["--seed", str(args.seed)] if args.seed is not None else [])
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    print(proc.stdout)
    print(proc.stderr[-3000:], file=sys.stderr)
    print(f"command: {' '.join(cmd[1:])}")
    print(f"exit code {proc.returncode}; wall {wall:.1f} s; load average before "
          f"{load0[0]:.2f}, after {load1[0]:.2f} (1 min); {os.cpu_count()} CPUs; "
          f"Python {platform.python_version()}")
    warned = [ln for ln in proc.stderr.splitlines() if "may not have converged" in ln]
    print(f"convergence warnings printed: {len(warned)}")
    if os.path.exists(os.path.join(out, "fit.nc")):
        from bayesdissect import load_fit

        d = load_fit(os.path.join(out, "fit.nc")).diagnostics
        print(f"fit: max R-hat {d['max_rhat']:.4f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
              f"min tail ESS {d['min_ess_tail']:.0f}, divergences {d['divergences']}, "
              f"{d['chains']} chains x {d['draws']} draws, {d['n_parameters']} parameters")
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        shutil.copytree(out, args.keep)
    shutil.rmtree(tmp, ignore_errors=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
