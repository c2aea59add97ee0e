"""Where a Square policy goes: per evaluation folder of episode bags, the closest approach of the
end-effector to the square nut's handle in the table plane, and how often the nut was lifted
(read off /sim/task_state). The handle is 0.062 m from the nut's centre along its x axis, as in the
scripted expert.

  python bench/square_approach.py runs/base/NutAssemblySquare/eval/episodes [more folders]
"""

import argparse
import math
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from wmpo_episodes.episodes import list_episodes
from wmpo_episodes.typestore import episode_typestore
from wmpo_policy.backends.scripted_expert import SquareExpert

LIFTED = 0.02  # m above the nut's starting height


def yaw(q) -> float:
    return math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))


def episode_trace(bag: Path) -> tuple[float, bool, float]:
    """(closest eef-handle distance [m], nut lifted, nut yaw at the start [rad]) of one bag."""
    distances, heights, yaws = [], [], []
    with AnyReader([bag], default_typestore=episode_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == "/sim/task_state"]
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            nut = msg.object_poses[list(msg.object_names).index("SquareNut_main")]
            heading = yaw(nut.orientation)
            handle = np.array([nut.position.x, nut.position.y]) + SquareExpert.HANDLE_OFFSET * np.array(
                [math.cos(heading), math.sin(heading)]
            )
            distances.append(np.linalg.norm([msg.eef_pose.position.x, msg.eef_pose.position.y] - handle))
            heights.append(nut.position.z)
            yaws.append(heading)
    if not distances:
        raise ValueError(f"{bag} has no /sim/task_state")
    return min(distances), max(heights) - heights[0] > LIFTED, yaws[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="folders of episode bags")
    for folder in parser.parse_args().folders:
        traces = [episode_trace(episode.path) for episode in list_episodes(Path(folder))]
        closest = np.array([t[0] for t in traces])
        start_yaw = np.degrees([t[2] for t in traces])
        print(
            f"{folder}: {len(traces)} episodes; closest eef-handle distance median {np.median(closest) * 100:.1f} cm, "
            f"within 1 cm {int(np.sum(closest < 0.01))}, within 2 cm {int(np.sum(closest < 0.02))}; "
            f"nut lifted {sum(t[1] for t in traces)}; "
            f"nut yaw at start {start_yaw.min():.0f} to {start_yaw.max():.0f} deg"
        )


if __name__ == "__main__":
    main()
