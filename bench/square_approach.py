"""Where a Square policy goes: per evaluation folder of episode bags, the closest approach of the
end-effector to the square nut's handle in the table plane, what the gripper did there, and how
often the nut was lifted (read off /sim/task_state). The handle is 0.062 m from the nut's centre
along its x axis, as in the scripted expert; the fingers close along the gripper's x axis, so a
grasp needs the gripper turned across the handle (yaw error 0, pi-symmetric), its grip site down
at handle height, and the fingers closed there.

  python bench/square_approach.py runs/base/NutAssemblySquare/eval/episodes [more folders]
"""

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from wmpo_episodes.episodes import list_episodes
from wmpo_episodes.typestore import episode_typestore
from wmpo_policy.backends.scripted_expert import SquareExpert, wrap, yaw_of

LIFTED = 0.02  # m above the nut's starting height
NEAR = 0.015  # m from the handle in the table plane: close enough to try a grasp
DOWN = 0.02  # m above the handle: low enough that closing the fingers would catch it
CLOSED = 0.04  # m finger separation: the fingers are (being) closed


def yaw(q) -> float:
    """Heading [rad] of a geometry_msgs Quaternion's x axis in the table plane."""
    return yaw_of([q.x, q.y, q.z, q.w])


@dataclass
class Trace:
    closest: float  # m, closest eef-handle distance in the table plane
    yaw_error: float  # rad, gripper yaw across the handle at the closest approach
    went_down: bool  # the eef was near the handle and down at its height at some step
    closed_there: bool  # ... with the fingers closed
    lifted: bool  # the nut rose LIFTED above its start
    start_yaw: float  # rad, nut yaw at the start


def episode_trace(bag: Path) -> Trace:
    """The grasp attempt of one bag, from its /sim/task_state."""
    rows = []
    with AnyReader([bag], default_typestore=episode_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == "/sim/task_state"]
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            nut = msg.object_poses[list(msg.object_names).index("SquareNut_main")]
            heading = yaw(nut.orientation)
            handle = np.array([nut.position.x, nut.position.y, nut.position.z]) + SquareExpert.HANDLE_OFFSET * np.array(
                [math.cos(heading), math.sin(heading), 0.0]
            )
            eef = msg.eef_pose.position
            rows.append(
                (
                    np.linalg.norm([eef.x - handle[0], eef.y - handle[1]]),
                    wrap(heading + math.pi / 2 - yaw(msg.eef_pose.orientation), math.pi),
                    eef.z - handle[2],
                    msg.gripper_opening,
                    nut.position.z,
                    heading,
                )
            )
    if not rows:
        raise ValueError(f"{bag} has no /sim/task_state")
    distance, yaw_error, height, opening, nut_z, heading = np.array(rows).T
    down = (distance < NEAR) & (height < DOWN)
    closest = int(np.argmin(distance))
    return Trace(
        closest=float(distance[closest]),
        yaw_error=float(yaw_error[closest]),
        went_down=bool(down.any()),
        closed_there=bool((down & (opening < CLOSED)).any()),
        lifted=bool(nut_z.max() - nut_z[0] > LIFTED),
        start_yaw=float(heading[0]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="folders of episode bags")
    for folder in parser.parse_args().folders:
        traces = [episode_trace(episode.path) for episode in list_episodes(Path(folder))]
        closest = np.array([t.closest for t in traces])
        near = [t for t in traces if t.closest < NEAR]
        yaw_errors = np.degrees(np.abs([t.yaw_error for t in near])) if near else np.array([np.nan])
        start_yaw = np.degrees([t.start_yaw for t in traces])
        print(
            f"{folder}: {len(traces)} episodes; closest eef-handle distance median {np.median(closest) * 100:.1f} cm, "
            f"within 1 cm {int(np.sum(closest < 0.01))}, within 2 cm {int(np.sum(closest < 0.02))}; "
            f"within {NEAR * 100:.1f} cm {len(near)} "
            f"(|gripper yaw error| there median {np.median(yaw_errors):.0f} deg), "
            f"went down to the handle {sum(t.went_down for t in traces)}, closed the fingers there "
            f"{sum(t.closed_there for t in traces)}; nut lifted {sum(t.lifted for t in traces)}; "
            f"nut yaw at start {start_yaw.min():.0f} to {start_yaw.max():.0f} deg"
        )


if __name__ == "__main__":
    main()
