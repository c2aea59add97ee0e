"""LeRobot v3 datasets: episode bags exported with `wmpo dataset --format lerobot` are read by
LeRobot's own LeRobotDataset offline (actions, labels, frames within video encoding loss), a LeRobot
dataset imports back into the training format, and `wmpo train-bc` learns from it.

LeRobot is not in the project's venv (requirements-lerobot.txt says why): the ``lerobot_env``
fixture installs it with --no-deps into build/lerobot-<hash>/ once (about 30 MB from PyPI) and the
checks run LeRobot in a subprocess (tests/lerobot_check.py).
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from episode_fakes import record_episode

from wmpo_bringup import cli
from wmpo_episodes.dataset import DatasetError, EpisodeDataset
from wmpo_robot_io.images import to_image_msg

ROOT = Path(__file__).resolve().parents[1]
CAMERA = "observation.images.front"
SIZE = 64
# (outcome, steps) of the recorded episodes
EPISODES = [("success", 9), ("failure", 6), ("success", 11)]
# PSNR of the AV1 video (crf 30, yuv420p, LeRobot's settings) against the recorded frames, over all
# frames of the three episodes: measured 38.6 dB decoded by LeRobot (torchcodec) and by our importer
# (PyAV). The floor leaves room for encoder versions.
PSNR_FLOOR = 36.0


def scene(rng: np.random.Generator, steps: int) -> list[np.ndarray]:
    """steps + 1 smooth frames like a camera's: a lit gradient and a red blob that moves."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    base = rng.uniform(40, 120, 3)
    start, velocity = rng.uniform(16, 48, 2), rng.uniform(-2, 2, 2)
    frames = []
    for k in range(steps + 1):
        image = np.stack([base[0] + 1.5 * x, base[1] + 1.2 * y, base[2] + 0.6 * (x - y) + 40], -1)
        cx, cy = start + k * velocity
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 50.0)[..., None]
        frames.append(np.clip(image * (1 - blob) + np.array([220.0, 40.0, 40.0]) * blob, 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Three labelled episode bags (random actions, commanded ones that differ) and their sources."""
    folder = tmp_path_factory.mktemp("bags")
    rng = np.random.default_rng(7)
    sources = []
    for outcome, steps in EPISODES:
        frames = scene(rng, steps)
        actions = rng.uniform(-1, 1, (steps, 7)).astype(np.float32)
        commanded = (actions + rng.normal(0, 0.1, actions.shape)).astype(np.float32)
        messages = [to_image_msg(f, Time(), "cam") for f in frames]
        summary, _ = record_episode(
            folder, "Lift", {"seed": len(sources)}, outcome, steps, messages, actions, commanded
        )
        sources.append({"summary": summary, "frames": np.stack(frames), "actions": actions, "commanded": commanded})
    return folder, sources


@pytest.fixture(scope="module")
def exported(recorded, tmp_path_factory):
    folder, _ = recorded
    output = tmp_path_factory.mktemp("lerobot") / "lift"
    assert cli.main(["dataset", str(folder), str(output), "--format", "lerobot"]) == 0
    return output


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_the_export_leaves_the_process_scheduling_as_it_was(recorded, tmp_path):
    """SVT-AV1, LeRobot's AV1 encoder, puts the encoding thread on real-time SCHED_FIFO when it
    runs as root (as in CI): a process left there starves a 2-core machine once it busy-waits,
    and every process it starts (a graph's nodes) inherits it. The export puts it back."""
    import os

    folder, _ = recorded
    before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
    assert cli.main(["dataset", str(folder), str(tmp_path / "lift"), "--format", "lerobot"]) == 0
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before


def test_export_is_lerobot_v3_layout(exported, recorded):
    import pandas as pd
    import pyarrow.parquet as pq

    _, sources = recorded
    rows = sum(steps + 1 for _, steps in EPISODES)
    files = {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()}
    assert files == {
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "data/chunk-000/file-000.parquet",
        f"videos/{CAMERA}/chunk-000/file-000.mp4",
    }
    info = json.loads((exported / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 20
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, rows, 1)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    camera = info["features"][CAMERA]
    assert camera["dtype"] == "video" and camera["shape"] == [SIZE, SIZE, 3]
    assert camera["info"]["video.codec"] == "av1" and camera["info"]["video.pix_fmt"] == "yuv420p"
    assert list(info["features"])[-5:] == ["timestamp", "frame_index", "episode_index", "index", "task_index"]
    episodes = pq.read_table(exported / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["success"] for e in episodes] == [o == "success" for o, _ in EPISODES]
    assert [e["episode_id"] for e in episodes] == [s["summary"]["episode_id"] for s in sources]
    assert [e["length"] for e in episodes] == [steps + 1 for _, steps in EPISODES]
    assert [e[f"videos/{CAMERA}/from_timestamp"] for e in episodes] == [0.0, 0.5, 0.85]
    assert episodes[2]["stats/action/count"] == [12] and len(episodes[2]["stats/action/q99"]) == 7
    tasks = pd.read_parquet(exported / "meta/tasks.parquet")  # as LeRobot's load_tasks reads it
    assert list(tasks.index) == ["lift the cube"] and list(tasks.task_index) == [0]
    stats = json.loads((exported / "meta/stats.json").read_text())
    assert np.array(stats[CAMERA]["mean"]).shape == (3, 1, 1) and stats["action"]["count"] == [rows]
    actions = np.concatenate([np.concatenate([s["commanded"], s["commanded"][-1:]]) for s in sources])
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), atol=1e-6)


def test_export_imports_back_and_trains_bc(exported, recorded, tmp_path):
    _, sources = recorded
    assert cli.main(["dataset", str(exported), str(tmp_path / "data")]) == 0
    data = EpisodeDataset(tmp_path / "data")
    assert len(data) == len(sources)
    decoded, originals = [], []
    for i, source in enumerate(sources):
        episode = data.episode(i)
        record, summary = episode["record"], source["summary"]
        assert (record.episode_id, record.task, record.instruction) == (summary["episode_id"], "Lift", "lift the cube")
        assert (record.outcome, record.success_step, record.seed) == (summary["outcome"], summary["success_step"], i)
        np.testing.assert_array_equal(episode["actions"], source["actions"])
        np.testing.assert_array_equal(episode["commanded"], source["commanded"])
        assert episode["frames"].shape == source["frames"].shape
        decoded.append(episode["frames"])
        originals.append(source["frames"])
    measured = psnr(np.concatenate(decoded), np.concatenate(originals))
    assert measured > PSNR_FLOOR, f"PSNR {measured:.1f} dB"
    print(f"PSNR of the frames the import decodes: {measured:.2f} dB")

    tiny = ["--vision-tower", "siglip", "--image-size", "32", "--vision-layers", "1", "--text-layers", "1"]
    tiny += [
        "--model-overrides",
        "{vision_config: {hidden_size: 32, intermediate_size: 64}, projector_hidden_size: 32}",
    ]
    bc = ["train-bc", "--datasets", str(tmp_path / "data"), "--output", str(tmp_path / "bc"), "--steps", "2"]
    assert cli.main([*bc, "--batch-size", "2", "--threads", "1", *tiny]) == 0
    assert (tmp_path / "bc/checkpoints/step_2").is_dir()


def test_export_refuses_odd_sizes_and_leaves_nothing(tmp_path):
    from wmpo_episodes.lerobot_format import write_lerobot_dataset

    summary = {"episode_id": "e0", "task": "Lift", "instruction": "i", "outcome": "success", "success_step": 1}
    arrays = {"frames": np.zeros((3, 9, 8, 3), np.uint8), "actions": np.zeros((2, 7)), "commanded": np.zeros((2, 7))}
    with pytest.raises(DatasetError, match="even height and width"):
        write_lerobot_dataset(tmp_path / "out", [(summary, arrays)])
    assert list(tmp_path.iterdir()) == []


def test_import_refuses_other_lerobot_versions(exported, tmp_path):
    import shutil

    old = tmp_path / "v21"
    shutil.copytree(exported, old)
    info = json.loads((old / "meta/info.json").read_text())
    (old / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match="only v3.x is read"):
        cli.main(["dataset", str(old), str(tmp_path / "data")])
    assert not (tmp_path / "data").exists()
    with pytest.raises(SystemExit, match="is a LeRobot dataset already"):
        cli.main(["dataset", str(exported), str(tmp_path / "again"), "--format", "lerobot"])
    with pytest.raises(DatasetError, match="import it first with `wmpo dataset"):  # train-bc reads datasets only
        EpisodeDataset(exported)


# -- LeRobot's own code -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lerobot_env(tmp_path_factory):
    """Environment variables under which tests/lerobot_check.py imports LeRobot: its packages
    (requirements-lerobot.txt, installed once into build/lerobot-<hash>/) first on PYTHONPATH,
    PyAV's bundled FFmpeg libraries under the sonames torchcodec loads, the hub offline."""
    import av

    requirements = ROOT / "requirements-lerobot.txt"
    folder = ROOT / "build" / f"lerobot-{hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]}"
    site, ffmpeg = folder / "site-packages", folder / "ffmpeg"  # dill pickles modules elsewhere by value
    if not site.exists():  # installed into a temporary sibling, renamed into place when complete
        partial = folder / f"partial-{os.getpid()}"
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
        result = subprocess.run(
            [*pip, "--target", str(partial), "-r", str(requirements)], capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"installing LeRobot failed:\n{result.stderr[-3000:]}"
        partial.rename(site)
    ffmpeg.mkdir(exist_ok=True)
    for library in (Path(av.__file__).parent.parent / "av.libs").glob("lib*.so*"):
        name = library.name.split("-")[0]  # libavcodec-7ee0753d.so.61.19.101 -> libavcodec.so.61
        if name.startswith(("libav", "libsw")):
            link = ffmpeg / f"{name}.so.{library.name.split('.so.')[1].split('.')[0]}"
            if not link.exists():
                link.symlink_to(library)
    home = tmp_path_factory.mktemp("hf_home")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "LD_LIBRARY_PATH": os.pathsep.join([str(ffmpeg), *filter(None, [os.environ.get("LD_LIBRARY_PATH")])]),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(home),
        "HF_LEROBOT_HOME": str(home / "lerobot"),
    }


def run_lerobot(env: dict, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "lerobot_check.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def test_lerobot_loads_the_export(exported, recorded, lerobot_env, tmp_path):
    """LeRobotDataset(root=...) offline: episodes, frames, actions (and 4-step chunks past the end
    padded), labels, and the video frames within encoding loss (measured PSNR 38.6 dB)."""
    _, sources = recorded
    run_lerobot(lerobot_env, "load", str(exported), str(tmp_path / "loaded.npz"))
    loaded = np.load(tmp_path / "loaded.npz")
    assert str(loaded["codebase_version"]) == "v3.0" and int(loaded["fps"]) == 20
    assert int(loaded["num_episodes"]) == 3 and int(loaded["num_frames"]) == sum(s + 1 for _, s in EPISODES)
    assert json.loads(str(loaded["video_keys"])) == [CAMERA]
    assert set(json.loads(str(loaded["stats_keys"]))) >= {CAMERA, "action", "next.success"}
    assert np.asarray(loaded["image_mean"]).shape == (3, 1, 1)
    episode_index = loaded["episode_index"]
    for i, source in enumerate(sources):
        rows = episode_index == i
        steps = len(source["actions"])
        np.testing.assert_array_equal(loaded["frame_index"][rows], np.arange(steps + 1))
        np.testing.assert_array_equal(loaded["action"][rows][:steps], source["commanded"])
        np.testing.assert_array_equal(loaded["executed_action"][rows][:steps], source["actions"])
        chunks, pads = loaded["action_chunk"][rows], loaded["action_is_pad"][rows]
        np.testing.assert_array_equal(chunks[0], source["commanded"][:4])
        assert pads[-1].tolist() == [False, True, True, True]  # past the last row: padding
        success_step = source["summary"]["success_step"]
        expected = [success_step >= 0 and k >= success_step for k in range(steps + 1)]
        assert loaded["next_success"][rows].tolist() == expected
        assert loaded["next_done"][rows].tolist() == [False] * steps + [True]
    assert loaded["episode_success"].tolist() == [o == "success" for o, _ in EPISODES]
    assert json.loads(str(loaded["episode_outcome"])) == [o for o, _ in EPISODES]
    assert set(json.loads(str(loaded["task"]))) == {"lift the cube"}
    frames = np.round(loaded["frames"].transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    originals = np.concatenate([s["frames"] for s in sources])
    assert frames.shape == originals.shape
    measured = psnr(frames, originals)
    assert measured > PSNR_FLOOR, f"PSNR {measured:.1f} dB"
    print(f"PSNR of the frames LeRobot decodes: {measured:.2f} dB")


def test_a_dataset_lerobot_wrote_imports_as_demonstrations(lerobot_env, tmp_path):
    """LeRobot's own writer (create, add_frame, save_episode): no labels, so its episodes are
    successful demonstrations; N rows give N frames and N - 1 actions."""
    run_lerobot(lerobot_env, "create", str(tmp_path / "so100"))
    assert cli.main(["dataset", str(tmp_path / "so100"), str(tmp_path / "data")]) == 0
    data = EpisodeDataset(tmp_path / "data")
    assert [r.num_steps for r in data.records] == [4, 6]
    assert {(r.outcome, r.instruction, r.success_step) for r in data.records[:1]} == {
        ("success", "pick up the cube", 3)
    }
    second = data.episode(1)
    np.testing.assert_array_equal(second["actions"][:, 0], -(10.0 + np.arange(6)))
    assert second["frames"].shape == (7, 32, 32, 3)
    y, x = np.mgrid[0:32, 0:32]
    first_frame = np.stack([x * 6, y * 6, np.full_like(x, 100)], -1).clip(0, 255)
    assert psnr(second["frames"][0], first_frame) > 30.0
