"""The world model: contracts, the context-noise path, determinism, checkpoints, and a tiny model
that learns a toy action-following dynamic through the real training script."""

import json

import numpy as np
import pytest
import torch

from wmpo_common.actions import ActionStats
from wmpo_episodes.dataset import write_dataset
from wmpo_worldmodel.configs import WMConfig
from wmpo_worldmodel.models import ActionConditionedUNet
from wmpo_worldmodel.pipeline import WorldModelError, WorldModelPipeline
from wmpo_worldmodel.schedulers import SAMPLERS, noise_context, training_scheduler
from wmpo_worldmodel.train_world_model import train

torch.set_num_threads(1)
TOY_SIZE = 16
TOY_UNET = {"block_out_channels": [32, 64], "attention_levels": [False, False]}


def tiny_pipeline(frames_per_pass=8, context_noise_level=15, seed=0) -> WorldModelPipeline:
    torch.manual_seed(seed)
    unet = ActionConditionedUNet(sample_size=TOY_SIZE, frames_per_pass=frames_per_pass, **TOY_UNET)
    stats = ActionStats.from_actions(np.random.default_rng(0).uniform(-1, 1, (100, 7)))
    return WorldModelPipeline(
        unet.eval(),
        training_scheduler(),
        context_noise_level=context_noise_level,
        action_stats={"q01": list(stats.q01), "q99": list(stats.q99)},
    )


def context(batch=2, size=TOY_SIZE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, 4, size, size, 3), dtype=np.uint8)


def test_denoiser_contract_and_pipeline_shapes():
    pipeline = tiny_pipeline()
    unet = pipeline.unet
    out = unet(
        torch.zeros(2, 8, 3, 16, 16),
        torch.tensor([5, 500]),
        torch.zeros(2, 4, 3, 16, 16),
        torch.zeros(2, 8, 7),
        torch.tensor([15, 15]),
    )
    assert out.shape == (2, 8, 3, 16, 16)
    with pytest.raises(ValueError, match="expected 4 context and 8 frames"):
        unet(
            torch.zeros(2, 4, 3, 16, 16),
            torch.tensor([5, 5]),
            torch.zeros(2, 4, 3, 16, 16),
            torch.zeros(2, 4, 7),
            torch.tensor([15, 15]),
        )
    frames = pipeline(context(size=32), np.zeros((2, 16, 7)), num_inference_steps=2)  # any input size
    assert frames.shape == (2, 16, 16, 16, 3) and frames.dtype == np.uint8
    with pytest.raises(WorldModelError, match="finite"):
        pipeline(context(), np.full((2, 8, 7), np.nan), num_inference_steps=2)
    with pytest.raises(WorldModelError, match="multiple of 8"):
        pipeline(context(), np.zeros((2, 12, 7)), num_inference_steps=2)
    with pytest.raises(WorldModelError, match="uint8"):
        pipeline(context().astype(np.float32), np.zeros((2, 8, 7)), num_inference_steps=2)


def test_context_noise_is_added_in_training_and_signalled_at_inference():
    scheduler = training_scheduler()
    clean = torch.zeros(4096, 1, 3, 4, 4)
    assert noise_context(scheduler, clean, 0) is clean
    noisy = noise_context(scheduler, clean, 15, torch.Generator().manual_seed(0))
    expected_std = float((1 - scheduler.alphas_cumprod[15]) ** 0.5)  # x_t = sqrt(a) x0 + sqrt(1 - a) eps
    assert noisy.std().item() == pytest.approx(expected_std, rel=0.02)
    # At inference the context is clean but the model is told the level: it changes the output.
    with_level = tiny_pipeline(context_noise_level=15)(
        context(), np.zeros((2, 8, 7)), 2, generator=torch.Generator().manual_seed(0)
    )
    without = tiny_pipeline(context_noise_level=0)(
        context(), np.zeros((2, 8, 7)), 2, generator=torch.Generator().manual_seed(0)
    )
    assert not np.array_equal(with_level, without)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_imagination_is_deterministic_under_a_seed(sampler):
    pipeline = tiny_pipeline()
    run = lambda seed: pipeline(context(), np.zeros((2, 8, 7)), 3, sampler, torch.Generator().manual_seed(seed))  # noqa: E731
    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_checkpoint_round_trip_and_bad_checkpoints(tmp_path):
    pipeline = tiny_pipeline(frames_per_pass=1)
    path = pipeline.save_atomically(tmp_path / "wm")
    loaded = WorldModelPipeline.load(path)
    assert loaded.unet.config.frames_per_pass == 1 and loaded.config.context_noise_level == 15
    run = lambda p: p(context(), np.zeros((2, 2, 7)), 2, generator=torch.Generator().manual_seed(0))  # noqa: E731
    np.testing.assert_array_equal(run(pipeline), run(loaded))
    with pytest.raises(WorldModelError, match="model_index.json is missing"):
        WorldModelPipeline.load(tmp_path)
    (path / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WorldModelError, match="cannot load the world model"):
        WorldModelPipeline.load(path)


# -- a toy dynamic: a white square moves one pixel per step in the commanded direction ------------
DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}


def square_frame(x: int, y: int) -> np.ndarray:
    frame = np.zeros((TOY_SIZE, TOY_SIZE, 3), np.uint8)
    frame[y - 1 : y + 2, x - 1 : x + 2] = 255
    return frame


def toy_episode(rng, steps=24) -> tuple[dict, dict]:
    x, y = (int(v) for v in rng.integers(3, TOY_SIZE - 3, 2))
    frames, actions = [square_frame(x, y)], []
    for k in range(steps):
        if k % 8 == 0:
            dx, dy = list(DIRECTIONS.values())[rng.integers(4)]
        action = np.zeros(7, np.float32)
        action[:2] = dx, dy
        x, y = int(np.clip(x + dx, 1, TOY_SIZE - 2)), int(np.clip(y + dy, 1, TOY_SIZE - 2))
        frames.append(square_frame(x, y))
        actions.append(action)
    summary = {
        "episode_id": f"toy{rng.integers(1 << 30)}",
        "task": "Toy",
        "instruction": "move",
        "outcome": "success",
        "success_step": steps,
        "policy_id": "toy",
    }
    arrays = {
        "frames": np.stack(frames),
        "frame_stamps": np.arange(steps + 1),
        "actions": np.stack(actions),
        "commanded": np.stack(actions),
    }
    return summary, arrays


def centroid(frame: np.ndarray) -> np.ndarray:
    weight = frame.astype(float).mean(-1)
    ys, xs = np.mgrid[: frame.shape[0], : frame.shape[1]]
    return np.array([(xs * weight).sum(), (ys * weight).sum()]) / max(weight.sum(), 1e-6)


def test_a_tiny_world_model_learns_to_follow_actions(tmp_path):
    rng = np.random.default_rng(0)
    write_dataset(tmp_path / "toy", [toy_episode(rng) for _ in range(40)])
    config = WMConfig(
        datasets=[str(tmp_path / "toy")],
        output=str(tmp_path / "wm"),
        steps=300,
        batch_size=16,
        learning_rate=1e-3,
        image_size=TOY_SIZE,
        sampler_steps=5,
        checkpoint_every=150,
        strip_every=300,
        threads=1,
        **TOY_UNET,
    )
    config.steps = 300
    train(config)
    config.steps = 600
    checkpoint = train(config)  # resumes from step 300
    assert checkpoint.name == "step_600"
    assert json.loads((tmp_path / "wm" / "wm_config.json").read_text())["steps"] == 600
    assert (tmp_path / "wm" / "strips" / "step_600.png").is_file()

    pipeline = WorldModelPipeline.load(checkpoint)
    start = np.stack([square_frame(8, 8)] * 4)[None]
    for name, (dx, dy) in DIRECTIONS.items():
        actions = np.zeros((1, 8, 7))
        actions[..., :2] = dx, dy
        frames = pipeline(start, actions, 10, generator=torch.Generator().manual_seed(0))[0]
        moved = centroid(frames[-1]) - centroid(start[0, -1])
        assert np.dot(moved, (dx, dy)) >= 2.0, f"{name}: the square moved {moved} for 8 steps {name}"


def test_latent_world_model_trains_on_a_project_trained_vae_and_outputs_pixels(tmp_path):
    from wmpo_worldmodel.configs import VAEConfig
    from wmpo_worldmodel.train_vae import train as train_vae

    rng = np.random.default_rng(0)
    write_dataset(tmp_path / "toy", [toy_episode(rng) for _ in range(4)])
    vae = train_vae(
        VAEConfig(
            datasets=[str(tmp_path / "toy")],
            output=str(tmp_path / "vae"),
            steps=5,
            batch_size=4,
            image_size=TOY_SIZE,
            block_out_channels=[32, 32],
            threads=1,
        )
    )
    config = WMConfig(
        datasets=[str(tmp_path / "toy")],
        output=str(tmp_path / "wm"),
        steps=3,
        batch_size=2,
        image_size=TOY_SIZE,
        vae=str(vae),
        sampler_steps=2,
        threads=1,
        **TOY_UNET,
    )
    pipeline = WorldModelPipeline.load(train(config))
    assert pipeline.vae is not None and pipeline.unet.config.channels == 4 and pipeline.unet.config.sample_size == 8
    frames = pipeline(context(), np.zeros((2, 8, 7)), 2, generator=torch.Generator().manual_seed(0))
    assert frames.shape == (2, 8, TOY_SIZE, TOY_SIZE, 3)
