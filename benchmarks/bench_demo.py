"""Wall time of the default ``bayesdissect demo`` (fresh process, as a user runs it), with
the phases it prints, plus the machine's load average before and after.

    flock /tmp/bd-bench.lock python3 benchmarks/bench_demo.py [--full] [--out DIR]
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
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bd-demo-")
    out = os.path.join(tmp, "demo")
    cmd = [sys.executable, "-m", "bayesdissect", "demo", "--out", out] + (
        ["--full"] if args.full else [])
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
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        shutil.copytree(out, args.keep)
    shutil.rmtree(tmp, ignore_errors=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
