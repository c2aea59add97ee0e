"""The WMPO loop end to end at tiny sizes through the real sim graph, killed and resumed."""

import contextlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from test_reward_model import toy_episode
from test_vla_model import small_policy
from test_world_model import tiny_pipeline

from wmpo_episodes.dataset import write_dataset
from wmpo_jobs.loop import PHASES, finished_round

pytestmark = pytest.mark.graph


def test_loop_runs_every_phase_and_resumes_after_a_kill(tmp_path, ros_domain):
    policy = small_policy().save_pretrained(tmp_path / "policy")
    world_model = tiny_pipeline().save_atomically(tmp_path / "wm")
    write_dataset(tmp_path / "demos", [toy_episode(i, success=True, steps=12) for i in range(4)])
    output = tmp_path / "loop"
    command = [
        sys.executable,
        "-m",
        "wmpo_bringup.cli",
        "loop",
        "--task",
        "Lift",
        "--policy",
        str(policy),
        "--world-model",
        str(world_model),
        "--demos",
        str(tmp_path / "demos"),
        "--output",
        str(output),
        "--budget",
        "4",
        "--eval-init-states",
        "1000:1002",
        "--max-steps",
        "8",
        "--align-steps",
        "2",
        "--reward-steps",
        "4",
        "--reward-fine-tune.steps",
        "2",
        "--wmpo-iterations",
        "1",
        "--grpo.group-size",
        "2",
        "--grpo.start-states",
        "2",
        "--sampler-steps",
        "2",
        "--threads",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # First run: killed as soon as the base evaluation is recorded (the collect phase is under way).
    first = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while not (output / "base_evaluate.json").is_file():
            assert first.poll() is None, "the loop exited before finishing its base evaluation"
            with contextlib.suppress(subprocess.TimeoutExpired):
                first.wait(timeout=0.5)  # returns early only if the process dies
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    base_record = (output / "base_evaluate.json").read_text()

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert (output / "base_evaluate.json").read_text() == base_record  # finished work was kept, not redone
    stored, phases = finished_round(output, 0)  # what bench/ scripts read back
    assert list(phases) == list(PHASES) and (stored.budget, stored.reward_fine_tune.steps) == (4, 2)
    collected = phases["collect"]
    assert collected["episodes"] == 4
    summary = json.loads((output / "summary.json").read_text())
    assert len(summary["rounds"]) == 1 and 0.0 <= summary["rounds"][0]["eval_success_rate"] <= 1.0
    assert (output / "current").resolve() == (output / "round_0" / "wmpo" / "checkpoints" / "iter_1").resolve()
    assert (output / "success.png").is_file() and "| round 0 |" in (output / "report.md").read_text()
    page = (output / "report.html").read_text()  # the report page, its strips and curves beside it
    assert 'src="round_0/strips.png"' in page and (output / "curves_grpo.png").is_file()
    threshold = json.loads((output / "round_0" / "threshold.json").read_text())
    assert threshold["calibration"] is None or len(threshold["calibration"]["scores"]) >= 4  # the P rollouts
    wmpo = json.loads((output / "round_0" / "wmpo.json").read_text())
    assert wmpo["reward_model"] == threshold["reward_model"]  # GRPO is judged with the refitted threshold
    gaps = summary["rounds"][0]["imagination_gap_before"], summary["rounds"][0]["imagination_gap_after"]
    assert [gap["episodes"] for gap in gaps] == [4, 2]  # the P rollouts before, the evaluation after
    held_out = summary["rounds"][0]["imagination_gap_before_held_out"]  # the base, as the gap after measures
    assert (held_out["episodes"], held_out["temperature"], held_out["real_rate"]) == (
        2,
        0.0,
        summary["base_success_rate"],
    )
    report = (output / "report.md").read_text()
    assert "| round 0 after | 2 |" in report and "| round 0 before, held-out states, greedy | 2 |" in report
    assert "- round 0: GRPO changed imagined success by" in report
    assert np.isfinite(summary["base_success_rate"])
