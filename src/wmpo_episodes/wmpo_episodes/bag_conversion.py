"""Episode bags -> dataset arrays: read one bag's topics and align them to control steps.

Kept apart from ``dataset`` so that training reads a converted dataset without rosbags installed
(a GPU cluster needs the dataset folder, not the bags). The alignment rules are in ``dataset``'s
docstring.
"""

import warnings
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from wmpo_common.image_messages import ImageError, from_image_msg
from wmpo_episodes.dataset import DatasetError, EpisodeRecord, write_dataset
from wmpo_episodes.episodes import list_episodes
from wmpo_episodes.typestore import episode_typestore


def _stamp(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def decoded_frames(bag: Path, frames: list, image_size: int | None = None) -> list[tuple[int, np.ndarray]]:
    """(stamp, RGB image) of recorded (stamp, Image message) pairs, in stamp order, decoded by the
    validating decoder and resized to ``image_size`` if given. A malformed frame (or one of another
    size than the episode's first) is skipped with a warning naming the bag and the frame, as if
    the camera had dropped it."""
    import cv2

    good = []
    for index, (stamp, msg) in enumerate(sorted(frames, key=lambda item: item[0])):
        try:
            image = from_image_msg(msg)
            if good and not image_size and image.shape != good[0][1].shape:
                raise ImageError(f"size {image.shape[:2]} differs from the episode's {good[0][1].shape[:2]}")
        except ImageError as error:
            warnings.warn(f"{bag}: skipped camera frame {index} (stamp {stamp}): {error}", stacklevel=2)
            continue
        if image_size and image.shape[:2] != (image_size, image_size):
            image = cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA)
        good.append((stamp, image))
    return good


def read_episode_arrays(bag: Path, image_size: int | None = None, incomplete: bool = False) -> dict:
    """Aligned arrays of one episode bag: frames (T+1, H, W, 3), stamps, actions and commanded (T, 7),
    aligned as ``dataset``'s layout says.
    DatasetError (naming the bag) for a bag that cannot be aligned, among them one without its final
    observation: no camera frame stamped at or after the arm state after the last action. An
    ``incomplete`` episode (cut short by the graph) ends instead at its last step whose executed
    action, resulting arm state and frame of it are all in the bag: the rest is dropped."""
    store = episode_typestore()
    frames, states, executed, commanded, chunks = [], [], {}, {}, []
    try:
        with AnyReader([Path(bag)], default_typestore=store) as reader:
            wanted = {
                "/camera/image_raw",
                "/arm/joint_states",
                "/arm/executed_action",
                "/arm/commanded_action",
                "/policy_server/action_chunk",
            }
            connections = [c for c in reader.connections if c.topic in wanted]
            for connection, _, raw in reader.messages(connections=connections):
                msg = reader.deserialize(raw, connection.msgtype)
                if connection.topic == "/camera/image_raw":
                    frames.append((_stamp(msg.header), msg))
                elif connection.topic == "/arm/joint_states":
                    states.append(_stamp(msg.header))
                elif connection.topic == "/arm/executed_action":
                    executed[msg.step] = np.asarray(msg.action, np.float32)
                elif connection.topic == "/policy_server/action_chunk":
                    chunks.append((_stamp(msg.header), np.asarray(msg.actions, np.float32).reshape(msg.horizon, -1)))
                else:
                    commanded[msg.step] = np.asarray(msg.action, np.float32)
    except DatasetError:
        raise
    except Exception as error:  # noqa: BLE001  rosbags raises several types for corrupt bags
        raise DatasetError(f"cannot read {bag}: {error}") from error
    frames = decoded_frames(bag, frames, image_size)
    steps = len(executed)
    if incomplete:  # cut short: keep the unbroken run of executed steps whose resulting state is in
        steps = min(next((k for k in range(steps + 1) if k not in executed), steps), max(0, len(states) - 1))
    if steps == 0 or sorted(executed)[:steps] != list(range(steps)) or len(states) < steps + 1 or not frames:
        raise DatasetError(f"{bag}: {len(executed)} executed actions, {len(states)} arm states, {len(frames)} frames")
    frame_stamps = np.array([stamp for stamp, _ in frames])
    state_stamps = np.sort(np.array(states))[: steps + 1]
    if incomplete and frame_stamps[-1] < state_stamps[-1]:  # cut short: end at the last state a frame saw
        steps = int(np.searchsorted(state_stamps, frame_stamps[-1], side="right")) - 1
        if steps < 1:
            raise DatasetError(f"{bag}: incomplete, and no camera frame of the state after its first action")
        state_stamps = state_stamps[: steps + 1]
    # frame k: the newest at or before arm state k (never an image of a later state, which could show
    # action k's effect); the final one, after which no action follows: the first at or after it
    chosen = np.searchsorted(frame_stamps, state_stamps, side="right") - 1
    chosen[-1] = np.searchsorted(frame_stamps, state_stamps[-1], side="left")
    if chosen[0] < 0:
        raise DatasetError(f"{bag}: no camera frame before the first arm state")
    if chosen[-1] == len(frames):  # the final frame missed the bag: not the previous one again
        raise DatasetError(
            f"{bag}: no camera frame at or after the last arm state (stamp {state_stamps[-1]}); the newest is "
            f"stamped {frame_stamps[-1]}: the final observation is missing"
        )
    for stamp, actions in sorted(chunks, key=lambda item: item[0]):
        start = int(np.searchsorted(state_stamps, stamp, side="right")) - 1
        for k in range(max(start, 0), min(start + len(actions), steps)):
            commanded[k] = actions[k - start]
    return {
        "frames": np.stack([frames[index][1] for index in chosen]),
        "frame_stamps": frame_stamps[chosen],
        "actions": np.stack([executed[k] for k in range(steps)]),
        "commanded": np.stack([commanded.get(k, executed[k]) for k in range(steps)]),
    }


def build_dataset(
    episodes_dir: Path,
    output: Path,
    image_size: int | None = None,
    include_incomplete: bool = False,
    progress=None,
    write=write_dataset,
) -> list[EpisodeRecord]:
    """Convert every labelled episode bag of ``episodes_dir`` into one dataset folder ``output``
    (``write``: write_dataset, or lerobot_format.write_lerobot_dataset with its options bound)."""
    if Path(output).exists():
        raise FileExistsError(f"{output} exists already; not overwriting")
    infos = [e for e in list_episodes(episodes_dir) if include_incomplete or e.outcome != "incomplete"]
    if not infos:
        raise DatasetError(f"no usable episode bags in {episodes_dir}")
    return bags_to_dataset([(info.summary, info.path) for info in infos], output, image_size, progress, write)


def bags_to_dataset(
    bags: list[tuple[dict, Path]], output: Path, image_size: int | None = None, progress=None, write=write_dataset
) -> list[EpisodeRecord]:
    """The one way episode bags become a dataset: each (summary, bag path), in order, read and
    aligned (``read_episode_arrays``) and written by ``write`` into ``output``. ``build_dataset``
    (the labelled bags of a folder) and the collectors (a collection's bags, one per goal) use it."""
    episodes = (
        observed(summary, bag, read_episode_arrays(Path(bag), image_size, summary["outcome"] == "incomplete"))
        for summary, bag in (progress(bags) if progress else bags)
    )
    return write(output, episodes)


def observed(summary: dict, bag: Path, arrays: dict) -> tuple[dict, dict]:
    """(summary with the bag's path, arrays); a success step beyond the steps the arrays kept (an
    incomplete episode cut at its last observed state) is unobserved: -1."""
    success_step = summary["success_step"] if summary["success_step"] < len(arrays["actions"]) else -1
    return {**summary, "success_step": success_step, "bag": str(bag)}, arrays
