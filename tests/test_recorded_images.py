"""Recorded frames are decoded by the one validating decoder (wmpo_robot_io.images) everywhere: a
malformed frame in a bag is skipped with a warning naming the bag and the frame, in bag
conversion (wmpo dataset) and in bag replay, instead of aborting with a raw reshape error."""

from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from episode_fakes import malformed_image, record_episode
from sensor_msgs.msg import Image

from wmpo_episodes.bag_conversion import build_dataset, observed, read_episode_arrays
from wmpo_episodes.dataset import DatasetError, EpisodeDataset
from wmpo_robot_io.cameras.bag_replay import BagReplayCamera
from wmpo_robot_io.images import to_image_msg

STEPS = 4


def frames_with(bad: dict[int, Image]) -> list[Image]:
    """STEPS + 1 frames of value 10 * k, with the given frames replaced."""
    good = [to_image_msg(np.full((8, 8, 3), 10 * k, np.uint8), Time(), "cam") for k in range(STEPS + 1)]
    return [bad.get(k, frame) for k, frame in enumerate(good)]


MONO = Image(height=8, width=8, encoding="mono8", step=8, data=bytes(64))
WIDE = to_image_msg(np.zeros((8, 16, 3), np.uint8), Time(), "cam")  # a valid image of another size


@pytest.mark.parametrize("bad", [malformed_image(), MONO, WIDE])
def test_conversion_skips_a_malformed_frame_naming_the_bag_and_the_frame(tmp_path, bad):
    _, bag = record_episode(tmp_path / "episodes", "Lift", {"seed": 0}, steps=STEPS, frames=frames_with({2: bad}))
    with pytest.warns(UserWarning, match=rf"{bag}: skipped camera frame 2 \(stamp \d+\)"):
        arrays = read_episode_arrays(bag)
    # Step 2 sees the newest good frame before it, as when the camera dropped one.
    assert [int(f[0, 0, 0]) for f in arrays["frames"]] == [0, 10, 10, 30, 40]
    with pytest.warns(UserWarning):
        records = build_dataset(tmp_path / "episodes", tmp_path / "data")
    assert len(records) == 1 and EpisodeDataset(tmp_path / "data").episode(0)["frames"].shape == (STEPS + 1, 8, 8, 3)


def test_a_bag_without_a_decodable_frame_is_a_clear_error(tmp_path):
    frames = frames_with({k: malformed_image() for k in range(STEPS + 1)})
    _, bag = record_episode(tmp_path, "Lift", {"seed": 0}, steps=STEPS, frames=frames)
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match=f"{bag}: .*0 frames"):
        read_episode_arrays(bag)


def test_replay_skips_a_malformed_frame_and_plays_the_rest(tmp_path):
    _, bag = record_episode(tmp_path, "Lift", {"seed": 0}, steps=STEPS, frames=frames_with({1: MONO}))
    camera = BagReplayCamera(str(bag), rate=100.0)
    with pytest.warns(UserWarning, match=rf"{bag}: skipped camera frame 1 .*unsupported encoding 'mono8'"):
        camera.connect()
    replayed = [camera.read(timeout=1.0) for _ in range(STEPS)]
    assert [int(frame.image[0, 0, 0]) for frame in replayed] == [0, 20, 30, 40]


def test_a_bag_without_the_final_frame_is_refused_naming_the_bag_and_the_stamps(tmp_path):
    """The camera frame after the last action missed the bag (it came after the recorder closed
    it): the episode's final observation is refused, not taken to be the previous frame again."""
    record_episode(tmp_path, "Lift", {"seed": 0}, steps=STEPS)
    frames = frames_with({})[:STEPS]  # none for the arm state after the last action
    summary, bag = record_episode(tmp_path, "Lift", {"seed": 1}, steps=STEPS, frames=frames)
    last_state = summary["start_time"] + 1_000_000 * STEPS
    message = rf"{bag}: no camera frame at or after the last arm state \(stamp {last_state}\)"
    with pytest.raises(DatasetError, match=rf"{message}; the newest is stamped {last_state - 1_000_000}"):
        read_episode_arrays(bag)
    with pytest.raises(DatasetError, match=message):  # converting a folder of bags names the bad one
        build_dataset(tmp_path, tmp_path / "data")


def test_the_final_frame_is_the_image_of_the_final_state_that_came_after_it(tmp_path):
    """A real camera stamps its image of the arm's final state a little after that state (the
    frame the recorder waits for): it is the final observation, not the image before it again."""
    delay = 300_000  # ns, states are 1 ms apart
    summary, bag = record_episode(
        tmp_path, "Lift", {"seed": 0}, steps=STEPS, frames=frames_with({}), final_frame_delay_ns=delay
    )
    arrays = read_episode_arrays(bag)
    assert [int(frame[0, 0, 0]) for frame in arrays["frames"]] == [10 * k for k in range(STEPS + 1)]
    states = summary["start_time"] + 1_000_000 * np.arange(STEPS + 1)
    assert list(arrays["frame_stamps"]) == [*states[:STEPS], states[STEPS] + delay]


def test_an_incomplete_episode_without_its_final_frames_converts_up_to_its_last_observed_state(tmp_path):
    """An episode cut short by the graph (labelled incomplete) whose last frames missed the bag is
    converted, with include_incomplete, without its unobserved last steps: T - 2 actions, T - 1
    frames; a success step among the dropped steps is unobserved (-1)."""
    frames = frames_with({})[: STEPS - 1]  # none for the arm states after the last two actions
    record_episode(tmp_path, "Lift", {"seed": 1}, outcome="incomplete", steps=STEPS, frames=frames)
    with pytest.raises(DatasetError, match="no usable episode bags"):  # incomplete ones are left out by default
        build_dataset(tmp_path, tmp_path / "data")
    build_dataset(tmp_path, tmp_path / "data", include_incomplete=True)
    episode = EpisodeDataset(tmp_path / "data").episode(0)
    assert episode["record"].num_steps == STEPS - 2 and len(episode["actions"]) == STEPS - 2
    assert [int(frame[0, 0, 0]) for frame in episode["frames"]] == [int(f.data[0]) for f in frames]
    np.testing.assert_allclose(episode["actions"][:, 0], [0.1 * k for k in range(STEPS - 2)])
    kept = {"actions": episode["actions"]}
    assert observed({"success_step": STEPS - 2}, Path("bag"), kept)[0]["success_step"] == -1
    assert observed({"success_step": STEPS - 3}, Path("bag"), kept)[0] == {"success_step": STEPS - 3, "bag": "bag"}
