"""Table 1's statistics against hand-computed values: pooled counts over seeds, Wilson intervals,
Fisher exact p of WMPO against each method; its command line is its config dataclass."""

from math import comb

import pytest

from wmpo_common.success_rate import fisher_exact_p, wilson_interval
from wmpo_jobs import table1


def test_fisher_exact_p_matches_the_hypergeometric_sum():
    # 0/100 against 5/100: the table is symmetric, so p = P(X = 0) + P(X = 5), X ~ Hypergeom(200, 5, 100)
    by_hand = 2 * comb(100, 5) / comb(200, 5)
    assert fisher_exact_p(0, 100, 5, 100) == pytest.approx(by_hand) and by_hand == pytest.approx(0.0594, abs=1e-4)
    assert fisher_exact_p(30, 100, 30, 100) == pytest.approx(1.0)


def test_cells_pool_over_seeds_and_wmpo_is_tested_against_each_method():
    table = {
        "Lift": {
            "base": [{"successes": 20, "episodes": 100}, {"successes": 20, "episodes": 100}],
            "WMPO": [{"successes": 35, "episodes": 100}, {"successes": 45, "episodes": 100}],
        }
    }
    rate, low, high, n = table1.pooled(table["Lift"]["WMPO"])
    assert (rate, n) == (0.40, 200) and (low, high) == pytest.approx(wilson_interval(80, 200))
    assert table1.wmpo_against(table["Lift"]) == {"base": pytest.approx(fisher_exact_p(80, 200, 40, 200))}
    lines = table1.table_lines(table, budget=32)
    assert (
        lines[2].startswith("| base | 0.20") and "seeds 0.20, 0.20" in lines[2] and "WMPO vs this p = 0.000" in lines[2]
    )
    assert "seeds 0.35, 0.45" in lines[3] and "p =" not in lines[3]


def test_the_command_line_is_the_config_dataclass(tmp_path):
    """bench/table1.py's options are Table1Config's fields (tyro); what it sets of the loop defaults to the loop's."""
    from wmpo_bringup.config_cli import parse_config
    from wmpo_jobs.configs import LoopConfig
    from wmpo_trainer.configs import GRPOConfig

    config = parse_config(table1.Table1Config, [], "table1.py")
    assert config == table1.Table1Config()
    assert (config.align_steps, config.wmpo_iterations, config.grpo) == (
        LoopConfig.align_steps,
        LoopConfig.wmpo_iterations,
        GRPOConfig(),
    )
    args = ["--tasks", "Lift", "--seeds", "0", "1", "--grpo.group-size", "4", "--methods", "WMPO", "online GRPO"]
    config = parse_config(table1.Table1Config, args, "table1.py")
    assert (config.tasks, config.seeds, config.grpo.group_size) == (["Lift"], [0, 1], 4)
    assert config.methods == ["WMPO", "online GRPO"]
    (tmp_path / "policy").mkdir()
    checkpoint = f"Lift={tmp_path / 'policy'}"
    assert table1.Table1Config(checkpoint=[checkpoint]).checkpoints() == {"Lift": str(tmp_path / "policy")}
    with pytest.raises(ValueError, match="TASK=PATH"):
        table1.Table1Config(checkpoint=["Lift"]).checkpoints()


def test_every_cell_is_evaluated_greedy_and_sampled_once_and_a_rerun_resumes(tmp_path):
    """The base policy's cells under both protocols: greedy at temperature 0, sampled at the RL
    temperature, stored once and shared by the seeds; a re-run collects nothing."""
    import json

    from wmpo_trainer.configs import GRPOConfig

    base = tmp_path / "base"
    base.mkdir()
    (base / "report.json").write_text(json.dumps({"Lift": {"checkpoint": "ckpt"}}))
    calls = []

    def collect(task, checkpoint, goals, output, temperature):
        calls.append((task, checkpoint, temperature, [g["init_state_id"] for g in goals]))
        return {"successes": 1 if temperature else 2, "episodes": len(goals), "results": [{"bag": "b"}]}

    config = table1.Table1Config(
        tasks=["Lift"], seeds=[0, 1], methods=[], base=str(base), output=str(tmp_path / "t"), eval_episodes=3
    )
    cells = table1.run_task("Lift", config, collect)
    states = [1000, 1001, 1002]
    assert calls == [("Lift", "ckpt", 0.0, states), ("Lift", "ckpt", GRPOConfig().temperature, states)]
    assert cells["greedy"]["base"] == [{"successes": 2, "episodes": 3}] * 2  # one per seed, "results" not kept
    assert cells["sampled"]["base"] == [{"successes": 1, "episodes": 3}] * 2
    calls.clear()
    assert table1.run_task("Lift", config, collect) == cells and calls == []
    text = table1.write_table(tmp_path / "t", {"Lift": cells}, budget=32)
    greedy, sampled = text.split("\n\nsampled:\n\n")
    assert greedy.startswith("greedy:") and "| base | 0.67" in greedy and "| base | 0.33" in sampled
    assert (tmp_path / "t" / "table1.png").stat().st_size > 0
