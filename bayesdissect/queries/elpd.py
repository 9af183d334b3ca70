"""The PSIS-LOO result: arviz_stats' ELPD data object with our per-judge breakdown.

A separate module so that ``import bayesdissect`` does not import arviz_stats (about a
second); ``ppc.loo`` imports it when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from arviz_stats import ELPDDataLOO


@dataclass(kw_only=True, repr=False)
class LOOResult(ELPDDataLOO):
    """PSIS-LOO of a fit as ``arviz_stats.ELPDDataLOO`` (``arviz_stats.compare`` and
    ``arviz_plots.plot_khat`` take it): ``elpd``, ``se``, ``p``, ``n_samples``,
    ``n_data_points``, ``good_k``, and ``elpd_i`` / ``pareto_k`` as DataArrays on the
    observation dim ``obs`` (coordinates ``pair`` and ``judge``; the order of a saved fit's
    observed_data). Added: ``name``, ``by_judge`` (one row per judge), ``n_bad_k``, the
    labels ``observed`` (obs order; ``compare_models`` checks fits are of the same
    labels), and the names ``elpd_loo``, ``p_loo``, ``n_obs``, ``n_draws``,
    ``k_threshold``, ``pointwise`` (elpd_i as an array).
    """

    name: str = "model"
    by_judge: pd.DataFrame | None = None
    n_bad_k: int = 0
    observed: np.ndarray | None = None

    @property
    def elpd_loo(self) -> float:
        return float(self.elpd)

    @property
    def p_loo(self) -> float:
        return float(self.p)

    @property
    def n_obs(self) -> int:
        return int(self.n_data_points)

    @property
    def n_draws(self) -> int:
        return int(self.n_samples)

    @property
    def k_threshold(self) -> float:
        return float(self.good_k)

    @property
    def pointwise(self) -> np.ndarray:
        """elpd_loo of each labelled entry, in obs order."""
        return np.asarray(self.elpd_i.values)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"model": self.name, "elpd_loo": self.elpd_loo, "se": self.se,
                              "p_loo": self.p_loo, "n_obs": self.n_obs,
                              "n_draws": self.n_draws, "n_bad_k": self.n_bad_k}])
