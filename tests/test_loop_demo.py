"""The main job (make demo) at tiny sizes: from nothing to a WMPO-trained policy through the sim graph."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

pytestmark = pytest.mark.graph

TINY = """
task: Lift
base:
  demos: 2
  bc: {steps: 2, batch_size: 4}
world_model: {steps: 2}
loop:
  budget: 2
  eval_init_states: "1000:1002"
  max_steps: 8
  align_steps: 2
  reward_steps: 4
  wmpo_iterations: 1
  grpo: {group_size: 2, start_states: 2}
  sampler_steps: 2
threads: 1
"""


def test_loop_demo_goes_from_nothing_to_a_deployed_policy_and_a_report(tmp_path, ros_domain):
    (tmp_path / "tiny.yaml").write_text(TINY)
    output = tmp_path / "demo"
    command = [sys.executable, "-m", "wmpo_bringup.cli", "loop-demo", "--config", str(tmp_path / "tiny.yaml")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([*command, "--output", str(output)], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "before WMPO" in run.stdout and "after" in run.stdout
    demos = json.loads((output / "base" / "demos" / "summary.json").read_text())
    assert demos["episodes"] == 2 and demos["successes"] >= 1  # the scripted expert at the task's budget
    assert demos["incomplete"] == sum(r["summary"]["outcome"] == "incomplete" for r in demos["results"])
    summary = json.loads((output / "loop" / "summary.json").read_text())
    assert len(summary["rounds"]) == 1 and len(summary["rounds"][0]["imagined_success_per_iteration"]) == 1
    assert (output / "loop" / "current").resolve().is_dir()
    strips = Image.open(output / "loop" / "round_0" / "strips.png")
    assert strips.width * 2 == strips.height * 9  # rows real and imagined, 9 frames (8 steps + the start) each
    report = (output / "loop" / "report.md").read_text()
    assert "round_0/strips.png" in report and "success.png" in report
