"""Make the bundled demo dataset once: bayesdissect/data/demo.parquet + demo_truth.nc.

The demo is SIMULATED (bayesdissect.simulate with a fixed seed): the paper's 33 judges,
5,240 pairs in the 11 scenario sizes and 5 case sizes of dataset.md §4, GAIR row schema.
Run from the repository root:  python3 benchmarks/make_demo_data.py
"""

from __future__ import annotations

import time
from pathlib import Path

from bayesdissect.data.loaders import load
from bayesdissect.data.simulate import make_demo

OUT = Path(__file__).resolve().parents[1] / "bayesdissect" / "data"

if __name__ == "__main__":
    t0 = time.perf_counter()
    sim = make_demo(OUT)
    t1 = time.perf_counter()
    data = load("demo")
    t2 = time.perf_counter()
    assert (data["x"].values == sim.data["x"].values).all()
    for f in ("demo.parquet", "demo_truth.nc"):
        print(f"{f}: {(OUT / f).stat().st_size / 1e6:.2f} MB")
    print(f"simulate {t1 - t0:.1f} s; load('demo') {t2 - t1:.2f} s; "
          f"{data.sizes['pair']} pairs kept, {data.attrs['n_dropped']} dropped")
