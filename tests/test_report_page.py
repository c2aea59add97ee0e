"""The loop's report page: built by `wmpo report` from a fake run folder (summary.json as the loop
writes it, success.png from the loop's own report code, strips, tiny TensorBoard event files),
then opened in headless Chromium (Debian's, `make env` installs it): every image loads, every link
is relative, and a screenshot is taken."""

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torch.utils.tensorboard import SummaryWriter

from wmpo_jobs.imagination_gap import gap_from_counts
from wmpo_jobs.loop import write_report
from wmpo_worldmodel.fidelity import write_strips

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CURVES = ["curves_bc.png", "curves_world_model.png", "curves_reward_model.png", "curves_grpo.png"]
# Written into a copy of the page: what each <img> loaded, once the page's load event fired.
PROBE = """<script>window.addEventListener("load", () => {
  const images = Array.from(document.images, (i) => [i.getAttribute("src"), i.complete, i.naturalWidth]);
  document.documentElement.setAttribute("data-images", JSON.stringify(images));
});</script>"""


def gap(imagined: int, real: int, n: int) -> dict:
    result = gap_from_counts(np.arange(n) < imagined, np.arange(n) < real, bound=0.15)
    return {**result.to_dict(), "message": result.warning() or "within the bound"}


def scalars(folder: Path, tags: list[str], steps: int) -> None:
    writer = SummaryWriter(str(folder))
    for step in range(1, steps + 1):
        for k, tag in enumerate(tags):
            writer.add_scalar(tag, 1.0 / (step + k), step)
    writer.close()


def fake_run(root: Path) -> Path:
    """A two-round loop run as `wmpo loop-demo` leaves it, moved from runs/demo to ``root``: the
    base policy and the pretrained world model beside the loop folder, where loop_config.json says."""
    run = root / "loop"
    rounds = []
    for r in range(2):
        strips = np.random.default_rng(r).integers(0, 255, (2, 12, 32, 32, 3), dtype=np.uint8)
        (run / f"round_{r}").mkdir(parents=True)
        write_strips(run / f"round_{r}" / "strips.png", [("real", strips[0]), ("imagined", strips[1])])
        scalars(run / f"round_{r}" / "wm" / "tb", ["wm/loss", "wm/grad_norm"], 5)
        scalars(run / f"round_{r}" / "reward" / "tb", ["reward/loss", "reward/clip_accuracy"], 5)
        scalars(run / f"round_{r}" / "wmpo" / "tb", ["wmpo/loss", "wmpo/imagined_success_rate"], 2)
        rounds.append(
            {
                "round": r,
                "collected_success_rate": 0.5,
                "imagined_success_rate": 0.7,
                "imagined_success_per_iteration": [0.6, 0.8],
                "eval_success_rate": 0.5 + 0.1 * r,
                "eval_success_rate_95ci": [0.3, 0.8],
                "reward_threshold": 0.5,
                "imagination_gap_before": gap(6, 4, 8),  # +0.25: beyond the bound
                "imagination_gap_after": gap(4, 4, 8),
                "policy": f"runs/demo/loop/round_{r}/wmpo/checkpoints/iter_2",
                "deployed": True,
                "greedy_flipped": 0.01,
            }
        )
    summary = {
        "task": "Lift",
        "budget_per_round": 8,
        "gap_bound": 0.15,
        "base_success_rate": 0.5,
        "base_success_rate_95ci": [0.25, 0.75],
        "rounds": rounds,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    write_report(run, summary)  # the loop's report.md and success.png
    config = {
        "task": "Lift",
        "policy": "runs/demo/base/bc/checkpoints/step_20",
        "world_model": "runs/demo/world_model/checkpoints/step_10",
        "output": "runs/demo/loop",
    }
    (run / "loop_config.json").write_text(json.dumps(config))
    scalars(root / "base" / "bc" / "tb", ["bc/loss", "bc/token_accuracy", "perf/steps_per_second"], 20)
    scalars(root / "world_model" / "tb", ["wm/loss", "wm/grad_norm"], 10)
    return run


def chromium(*args: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": "/tmp"})


@pytest.mark.skipif(  # in CI make env has installed it: a missing browser fails there
    CHROMIUM is None and not os.environ.get("CI"), reason="chromium is not installed (make env installs it)"
)
def test_the_report_page_renders_with_all_its_images_in_chromium(tmp_path):
    run = fake_run(tmp_path / "moved_demo")
    built = subprocess.run(
        [sys.executable, "-m", "wmpo_bringup.cli", "report", str(run)], capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stderr[-3000:]
    page = run / "report.html"
    assert built.stdout.strip().endswith(str(page)) and all((run / name).is_file() for name in CURVES)
    text = page.read_text()
    sources = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert sorted(sources) == sorted(["success.png", "round_0/strips.png", "round_1/strips.png", *CURVES])
    links = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert all(not link.startswith(("/", "file:", "http")) for link in links), links  # all relative
    assert "IMAGINATION GAP +0.25 beyond 0.15" in text and text.count('class="beyond"') == 2  # round 0 and 1
    assert "base policy" in text and "pretrained" in text  # found beside the moved loop folder

    probe = run / "probe.html"  # the page with a script that records what each image loaded
    probe.write_text(text.replace("</body>", PROBE + "</body>"))
    dumped = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'data-images="([^"]*)"', dumped.stdout)
    assert found, dumped.stderr[-3000:]
    loaded = json.loads(html.unescape(found.group(1)))
    assert sorted(src for src, _, _ in loaded) == sorted(sources)
    assert all(complete and width > 0 for _, complete, width in loaded), loaded

    screenshot = run / "report_screenshot.png"
    shot = chromium("--window-size=1400,3400", f"--screenshot={screenshot}", page.as_uri())
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000, shot.stderr[-3000:]
