"""Statistical bounds for randomized tests (stdlib only, so no scipy is needed).

Each helper returns a bound that a correct implementation exceeds with probability about
``alpha``; tests use fixed seeds, so a pass is repeatable and a wrong distribution fails.
"""

from __future__ import annotations

import math
from statistics import NormalDist


def chi2_upper_quantile(df: int, alpha: float = 1e-3) -> float:
    """Upper ``1 - alpha`` quantile of chi-square(df), Wilson–Hilferty approximation."""
    z = NormalDist().inv_cdf(1.0 - alpha)
    c = 2.0 / (9.0 * df)
    return df * (1.0 - c + z * math.sqrt(c)) ** 3


def chi2_statistic(observed, expected_probs) -> tuple[float, int]:
    """Pearson statistic and degrees of freedom; cells with expected count < 5 are pooled."""
    n = float(sum(observed))
    cells, pooled_obs, pooled_exp = [], 0.0, 0.0
    for o, p in zip(observed, expected_probs):
        e = n * float(p)
        if e < 5.0:
            pooled_obs += float(o)
            pooled_exp += e
        else:
            cells.append((float(o), e))
    if pooled_exp > 0:
        cells.append((pooled_obs, pooled_exp))
    stat = sum((o - e) ** 2 / e for o, e in cells)
    return stat, max(len(cells) - 1, 1)


def binomial_bounds(n: int, p: float, alpha: float = 1e-4) -> tuple[float, float]:
    """Two-sided normal-approximation bounds on a Binomial(n, p) count."""
    z = NormalDist().inv_cdf(1.0 - alpha / 2)
    sd = math.sqrt(n * p * (1.0 - p))
    return n * p - z * sd, n * p + z * sd
