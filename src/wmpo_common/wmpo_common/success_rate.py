"""Success rates with their 95% interval (Wilson score): every evaluation reports one."""


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def fisher_exact_p(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p-value that two success rates differ (2 x 2 table of counts)."""
    from scipy.stats import fisher_exact

    table = [[successes_a, n_a - successes_a], [successes_b, n_b - successes_b]]
    return float(fisher_exact(table, alternative="two-sided").pvalue)
