"""Run by tests/test_lerobot_dataset.py with LeRobot importable (requirements-lerobot.txt, installed
apart from the project's venv): LeRobot's own code loads a dataset folder, or writes one.

  python lerobot_check.py load ROOT OUT.npz     LeRobotDataset(root=ROOT), every item -> OUT.npz
  python lerobot_check.py create ROOT           LeRobotDataset.create + add_frame + save_episode

Offline: the folder is given as root, HF_HUB_OFFLINE is set by the caller.
"""

import json
import sys

import numpy as np
import torch

# torchvision from PyPI is a CUDA build: its C++ ops do not load beside the project's CPU torch, and
# its import then fails registering fake kernels for two of them. LeRobot's loader uses only
# torchvision.transforms (Python), so declaring the two op schemas is enough to import it.
_torchvision_ops = torch.library.Library("torchvision", "DEF")
_torchvision_ops.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_torchvision_ops.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset  # noqa: E402

CAMERA = "observation.images.front"


def load(root: str, out: str) -> None:
    chunk = [k / 20 for k in range(4)]  # the next 4 actions of every row, as a chunking policy asks
    dataset = LeRobotDataset("wmpo/export", root=root, delta_timestamps={"action": chunk})
    items = [dataset[i] for i in range(len(dataset))]
    episodes = dataset.meta.episodes
    np.savez(
        out,
        codebase_version=CODEBASE_VERSION,
        num_episodes=dataset.num_episodes,
        num_frames=dataset.num_frames,
        fps=dataset.fps,
        video_keys=json.dumps(dataset.meta.video_keys),
        stats_keys=json.dumps(sorted(dataset.meta.stats)),
        image_mean=np.asarray(dataset.meta.stats[CAMERA]["mean"]),
        frames=np.stack([item[CAMERA].numpy() for item in items]),  # (N, 3, H, W) float in [0, 1]
        action=np.stack([item["action"][0].numpy() for item in items]),
        action_chunk=np.stack([item["action"].numpy() for item in items]),
        action_is_pad=np.stack([item["action_is_pad"].numpy() for item in items]),
        executed_action=np.stack([item["executed_action"].numpy() for item in items]),
        next_success=np.array([bool(item["next.success"]) for item in items]),
        next_done=np.array([bool(item["next.done"]) for item in items]),
        episode_index=np.array([int(item["episode_index"]) for item in items]),
        frame_index=np.array([int(item["frame_index"]) for item in items]),
        task=json.dumps([item["task"] for item in items]),
        episode_success=np.array(episodes["success"]),
        episode_outcome=json.dumps(list(episodes["outcome"])),
        episode_length=np.array(episodes["length"]),
    )


def create(root: str) -> None:
    """Two episodes written by LeRobot itself: a 32x32 video camera, a 6-dim state and action."""
    features = {
        "observation.images.top": {"dtype": "video", "shape": (32, 32, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (6,), "names": None},
        "action": {"dtype": "float32", "shape": (6,), "names": None},
    }
    dataset = LeRobotDataset.create("someone/so100_demos", fps=30, features=features, root=root, use_videos=True)
    y, x = np.mgrid[0:32, 0:32]
    for episode, length in enumerate((5, 7)):
        for k in range(length):
            image = np.stack([x * 6 + 10 * k, y * 6, np.full_like(x, 40 * episode + 60)], -1).clip(0, 255)
            value = np.full(6, 10 * episode + k, np.float32)
            frame = {"observation.images.top": image.astype(np.uint8), "observation.state": value, "action": -value}
            dataset.add_frame({**frame, "task": "pick up the cube"})
        dataset.save_episode()
    dataset.finalize()


if __name__ == "__main__":
    {"load": load, "create": create}[sys.argv[1]](*sys.argv[2:])
