"""Time the data layer on paper-sized inputs (5,240 pairs, 33 judges).

Measures: load("demo") in a fresh process (imports included), load of the demo parquet
and of a 5,240-row messy JSON-lines file in this process, features alone, and the
simulator. Run:  python3 benchmarks/bench_load.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    cold = subprocess.run(
        [sys.executable, "-c", "import time; t=time.perf_counter(); import bayesdissect as b; "
         "d=b.load('demo'); print(time.perf_counter()-t)"],
        capture_output=True, text=True, check=True)
    print(f"fresh process: import + load('demo'): {float(cold.stdout):.2f} s")

    from bayesdissect import load
    from bayesdissect.data.features import gair_table
    from bayesdissect.data.simulate import simulate

    print(f"load('demo') (warm): {best(lambda: load('demo')):.2f} s")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        sim = simulate(Path(d) / "paper.jsonl", seed=1)  # 5,240 pairs, 33 judges, messy
        print(f"simulate 5,240 pairs x 33 judges -> JSON lines: {time.perf_counter() - t0:.2f} s")
        size = (Path(d) / "paper.jsonl").stat().st_size / 1e6
        print(f"load(5,240-row JSON lines, {size:.1f} MB): "
              f"{best(lambda: load(Path(d) / 'paper.jsonl')):.2f} s")
        print(f"gair_table(rows) alone (features + labels): "
              f"{best(lambda: gair_table(sim.rows)):.2f} s")


if __name__ == "__main__":
    main()
