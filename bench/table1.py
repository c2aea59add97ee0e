"""The paper's Table 1 at small scale (wmpo_jobs.table1): base policy vs online GRPO vs DPO vs WMPO
at the same budget P of real episodes, per task, pooled over seeds with 95% Wilson intervals.

  python bench/table1.py --tasks Lift NutAssemblySquare --budget 32 --seeds 0 1 --eval-episodes 100

Options: the fields of wmpo_jobs.table1.Table1Config (``--help``); ``--config FILE.yaml`` sets them
first. Runs outside CI: hours on a CPU, far less on a GPU (--threads, --device).
"""

import sys

from wmpo_bringup.config_cli import parse_config
from wmpo_bringup.sim_episodes import run_sim_episodes
from wmpo_jobs.table1 import Table1Config, run_table1


def main(argv: list[str] | None = None) -> None:
    config = parse_config(Table1Config, sys.argv[1:] if argv is None else argv, "bench/table1.py")
    try:
        run_table1(config, run_sim_episodes)
    except ValueError as error:  # a bad --checkpoint TASK=PATH, before anything ran
        raise SystemExit(f"bench/table1.py: {error}") from None


if __name__ == "__main__":
    main()
