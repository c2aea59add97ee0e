"""Table 1's statistics against hand-computed values: pooled counts over seeds, Wilson intervals,
Fisher exact p of WMPO against each method."""

import importlib.util
from math import comb
from pathlib import Path

import pytest

from wmpo_common.success_rate import fisher_exact_p, wilson_interval

BENCH = Path(__file__).resolve().parents[1] / "bench" / "table1.py"


def table1():
    spec = importlib.util.spec_from_file_location("table1_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fisher_exact_p_matches_the_hypergeometric_sum():
    # 0/100 against 5/100: the table is symmetric, so p = P(X = 0) + P(X = 5), X ~ Hypergeom(200, 5, 100)
    by_hand = 2 * comb(100, 5) / comb(200, 5)
    assert fisher_exact_p(0, 100, 5, 100) == pytest.approx(by_hand) and by_hand == pytest.approx(0.0594, abs=1e-4)
    assert fisher_exact_p(30, 100, 30, 100) == pytest.approx(1.0)


def test_cells_pool_over_seeds_and_wmpo_is_tested_against_each_method():
    bench = table1()
    table = {
        "Lift": {
            "base": [{"successes": 20, "episodes": 100}, {"successes": 20, "episodes": 100}],
            "WMPO": [{"successes": 35, "episodes": 100}, {"successes": 45, "episodes": 100}],
        }
    }
    rate, low, high, n = bench.pooled(table["Lift"]["WMPO"])
    assert (rate, n) == (0.40, 200) and (low, high) == pytest.approx(wilson_interval(80, 200))
    assert bench.wmpo_against(table["Lift"]) == {"base": pytest.approx(fisher_exact_p(80, 200, 40, 200))}
    lines = bench.table_lines(table, budget=32)
    assert (
        lines[2].startswith("| base | 0.20") and "seeds 0.20, 0.20" in lines[2] and "WMPO vs this p = 0.000" in lines[2]
    )
    assert "seeds 0.35, 0.45" in lines[3] and "p =" not in lines[3]
