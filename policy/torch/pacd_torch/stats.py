"""Evaluation statistics: success rates with their Wilson score interval.

Wilson (1927), "Probable inference, the law of succession, and statistical
inference", J. Am. Stat. Assoc. 22(158): for k successes in n trials, the
interval of p where |p_hat - p| <= z sqrt(p (1 - p) / n):

    centre = (p_hat + z^2 / (2n)) / (1 + z^2 / n)
    half   = z / (1 + z^2 / n) * sqrt(p_hat (1 - p_hat) / n + z^2 / (4 n^2))

Unlike the normal ("Wald") interval it stays inside [0, 1] and is not empty
at 0 or n successes, which matters for the small evaluation counts of a
robot cell (e.g. 0/20 gives [0, 0.161], not [0, 0]).
"""

import math

Z95 = 1.959963984540054   # the 97.5% quantile of the standard normal


def wilson(successes, n, z=Z95):
    """(low, high) of the Wilson score interval for successes / n; z = 1.96 gives 95%.
    n must be > 0 and 0 <= successes <= n."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError("successes must lie in [0, n]")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def format_rate(successes, n, z=Z95):
    """'11/20 = 55% [34%, 74%]' (the rate and its Wilson interval)."""
    lo, hi = wilson(successes, n, z)
    return f"{successes}/{n} = {100 * successes / n:.0f}% [{100 * lo:.0f}%, {100 * hi:.0f}%]"


def overlap(a, b):
    """True when two (low, high) intervals overlap."""
    return a[0] <= b[1] and b[0] <= a[1]
