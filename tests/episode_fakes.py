"""Small, real episode bags written without a graph, as the recorder would leave them."""

import itertools
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState

from wmpo_episodes.bag_writer import EpisodeBagWriter
from wmpo_episodes.summary import TIME_FIELDS
from wmpo_interfaces.msg import ArmAction, EpisodeSummary
from wmpo_robot_io.images import to_image_msg

_episode_numbers = itertools.count()


def stamp(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def summary_message(summary: dict) -> EpisodeSummary:
    """The EpisodeSummary message of a summary dict (what the episode manager would answer)."""
    msg = EpisodeSummary()
    for name, value in summary.items():
        if name in TIME_FIELDS:
            setattr(msg, name, stamp(int(value)))
        elif name in msg.get_fields_and_field_types():
            setattr(msg, name, value)
    return msg


def record_episode(
    folder: Path,
    task: str,
    goal: dict,
    outcome: str = "success",
    steps: int = 3,
    frames: list | None = None,
    actions: np.ndarray | None = None,
    commanded: np.ndarray | None = None,
    final_frame_delay_ns: int = 0,
) -> tuple[dict, Path]:
    """Write one labelled episode bag for ``goal`` into ``folder``: steps + 1 frames (or the given
    Image messages) and arm states, ``steps`` executed actions (0.1 k each, or the given (steps, 7)
    ``actions``) and, if given, the (steps, 7) ``commanded`` ones; frame k stamped as arm state k, the
    final one ``final_frame_delay_ns`` after it (a real camera's image of it). Returns (summary, bag path)."""
    number = next(_episode_numbers)
    start = 1_000_000_000 * (number + 1)
    summary = {
        "episode_id": f"ep{number:04d}",
        "task": task,
        "instruction": "lift the cube",
        "seed": goal.get("seed", -1),
        "init_state_id": goal.get("init_state_id", -1),
        "outcome": outcome,
        "num_steps": steps,
        "num_chunks": 1,
        "max_steps": goal.get("max_steps") or 10,
        "success_step": steps - 1 if outcome == "success" else -1,
        "safety_interventions": 0,
        "policy_id": "fake",
        "start_time": start,
        "end_time": start + 1_000_000 * (steps + 1),
    }
    writer = EpisodeBagWriter(folder, summary["episode_id"], {**summary, "outcome": ""})
    frames = frames or [
        to_image_msg(np.full((8, 8, 3), 10 * k + number % 10, np.uint8), Time(), "cam") for k in range(steps + 1)
    ]
    for k, image in enumerate(frames):
        t = start + 1_000_000 * k + (final_frame_delay_ns if k == steps else 0)
        image.header.stamp = stamp(t)
        writer.write("/camera/image_raw", t, serialize_message(image))
    for k in range(steps + 1):
        t = start + 1_000_000 * k
        state = JointState(name=["j1", "j2"], position=[0.0, 0.0], velocity=[0.0, 0.0], effort=[0.0, 0.0])
        state.header.stamp = stamp(t)
        writer.write("/arm/joint_states", t, serialize_message(state))
        if k < steps:
            values = [0.1 * k] * 7 if actions is None else [float(v) for v in actions[k]]
            action = ArmAction(step=k, action=values)
            action.header.stamp = stamp(t)
            writer.write("/arm/executed_action", t, serialize_message(action))
            if commanded is not None:
                asked = ArmAction(step=k, action=[float(v) for v in commanded[k]])
                asked.header.stamp = stamp(t)
                writer.write("/arm/commanded_action", t, serialize_message(asked))
    path = writer.close(summary, summary["end_time"])
    return summary, path


def malformed_image(height: int = 8, width: int = 8) -> Image:
    """An rgb8 Image whose data is one byte short of step * height."""
    return Image(height=height, width=width, encoding="rgb8", step=width * 3, data=bytes(width * 3 * height - 1))
