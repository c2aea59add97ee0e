"""The VLA: action tokens, normalisation, tokenizer, log-probs, checkpoints, learning."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from wmpo_common.actions import ActionStats
from wmpo_policy.vla.action_tokens import (
    BIN_WIDTH,
    N_BINS,
    actions_to_bins,
    bins_to_actions,
    bins_to_token_ids,
    token_ids_to_bins,
)
from wmpo_policy.vla.configuration import VLAConfig
from wmpo_policy.vla.modeling import VLAForActionPrediction
from wmpo_policy.vla.policy import CheckpointError, VLAPolicy
from wmpo_policy.vla.tokenization import build_tokenizer, prompt

torch.set_num_threads(1)
INSTRUCTIONS = ["pick up the red cube", "insert the square into the stick"]
SMALL = {
    "vision_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "image_size": 64},
    "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2},
    "projector_hidden_size": 64,
}


def small_policy(decoding="parallel", seed=0, instruction_encoder="tokens") -> VLAPolicy:
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(INSTRUCTIONS, vocab_size=300)
    config = VLAConfig(text_vocab_size=300, decoding=decoding, instruction_encoder=instruction_encoder, **SMALL)
    model = VLAForActionPrediction(config).eval()
    stats = ActionStats.from_actions(np.random.default_rng(0).uniform(-1, 1, (200, 7)))
    return VLAPolicy(model, tokenizer, stats)


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_action_tokens_round_trip_within_half_a_bin_and_stay_in_bounds():
    values = np.linspace(-1.2, 1.2, 1001)
    bins = actions_to_bins(values)
    assert bins.min() == 0 and bins.max() == N_BINS - 1
    inside = np.abs(values) <= 1
    assert np.max(np.abs(bins_to_actions(bins)[inside] - values[inside])) <= BIN_WIDTH / 2 + 1e-12
    ids = bins_to_token_ids(bins, vocab_size=556)
    assert ids.min() == 300 and ids.max() == 555  # the last 256 ids of the vocabulary
    np.testing.assert_array_equal(token_ids_to_bins(ids, 556), bins)
    with pytest.raises(ValueError, match="action tokens"):
        token_ids_to_bins(np.array([299]), 556)
    with pytest.raises(ValueError):
        bins_to_actions(np.array([256]))


def test_normalisation_uses_q01_q99_and_handles_constant_dimensions(tmp_path):
    rng = np.random.default_rng(0)
    actions = np.stack([rng.uniform(-0.5, 0.5, 1000), np.zeros(1000), rng.normal(0, 2, 1000)], axis=1)
    stats = ActionStats.from_actions(actions)
    np.testing.assert_allclose(stats.q01, np.quantile(actions, 0.01, axis=0))
    normalized = stats.normalize(actions)
    assert normalized.min() >= -1 and normalized.max() <= 1 and np.all(normalized[:, 1] == 0)
    middle = np.abs(normalized[:, 0]) < 0.99
    np.testing.assert_allclose(stats.denormalize(normalized)[middle, 0], actions[middle, 0], atol=1e-9)
    assert np.all(stats.denormalize(normalized)[:, 1] == 0)
    stats.save(tmp_path / "s.json")
    assert ActionStats.load(tmp_path / "s.json") == stats and stats.id.startswith("q01q99-")
    (tmp_path / "s.json").write_text((tmp_path / "s.json").read_text().replace(str(stats.q99[0])[:6], "9.9"))
    with pytest.raises(ValueError, match="does not match"):
        ActionStats.load(tmp_path / "s.json")
    with pytest.raises(ValueError):
        ActionStats.from_actions(np.array([[np.nan, 0.0]]))


def test_tokenizer_encodes_prompts_and_unseen_words_round_trip():
    tokenizer = build_tokenizer(INSTRUCTIONS, vocab_size=300)
    assert len(tokenizer) <= 300
    for text in [*INSTRUCTIONS, "stack the zebra-striped blocks!"]:
        ids = tokenizer(prompt(text))["input_ids"]
        assert max(ids) < len(tokenizer)
        assert tokenizer.decode(ids) == prompt(text)


@pytest.mark.parametrize("decoding", ["parallel", "autoregressive"])
def test_log_probs_equal_a_reference_computation(decoding):
    policy = small_policy(decoding)
    inputs = policy.encode(images(3), [INSTRUCTIONS[0]] * 3)
    generator = torch.Generator().manual_seed(1)
    actions, bins, logps = policy.predict(images(3), [INSTRUCTIONS[0]] * 3, temperature=1.6, generator=generator)
    assert actions.shape == (3, 8, 7) and bins.shape == (3, 56)
    # Reference: full logits by hand, softmax at T, gather.
    logits = policy.model.action_logits(**inputs, action_bins=bins)
    reference = torch.log_softmax(logits / 1.6, dim=-1).gather(-1, bins.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(logps, reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(policy.model.token_log_probs(**inputs, action_bins=bins, temperature=1.6), reference)


def test_sampling_is_deterministic_under_a_seed_and_greedy_is_argmax():
    policy = small_policy()
    first = policy.predict(images(2), INSTRUCTIONS, 1.6, torch.Generator().manual_seed(5))[1]
    second = policy.predict(images(2), INSTRUCTIONS, 1.6, torch.Generator().manual_seed(5))[1]
    torch.testing.assert_close(first, second)
    _, greedy, _ = policy.predict(images(2), INSTRUCTIONS)
    logits = policy.model.action_logits(**policy.encode(images(2), INSTRUCTIONS))
    torch.testing.assert_close(greedy, logits.argmax(-1))


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    policy = small_policy()
    path = policy.save_pretrained(tmp_path / "ckpt")
    assert (path / "model.safetensors").is_file() and not list(tmp_path.glob(".ckpt*"))
    loaded = VLAPolicy.from_pretrained(path)
    a, bins_a, logp_a = policy.predict(images(2), INSTRUCTIONS)
    b, bins_b, logp_b = loaded.predict(images(2), INSTRUCTIONS)
    np.testing.assert_array_equal(a, b)
    torch.testing.assert_close(logp_a, logp_b, atol=0, rtol=0)
    assert loaded.stats.id == policy.stats.id


def test_a_vla_builds_from_pretrained_siglip_and_llama_folders(tmp_path):
    """How a user starts from a pretrained VLM on a GPU machine: its SigLIP vision tower, its
    Llama LM and tokenizer, each a local save_pretrained folder (written here by the test)."""
    from transformers import LlamaConfig, LlamaForCausalLM, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    vision = SiglipVisionModel(SiglipVisionConfig(**SMALL["vision_config"], num_attention_heads=2))
    language = LlamaForCausalLM(LlamaConfig(**SMALL["text_config"], num_attention_heads=2, vocab_size=300))
    vision.save_pretrained(tmp_path / "siglip")
    language.save_pretrained(tmp_path / "llama")
    build_tokenizer(INSTRUCTIONS, vocab_size=300).save_pretrained(tmp_path / "llama")
    stats = ActionStats.from_actions(np.random.default_rng(0).uniform(-1, 1, (200, 7)))

    policy = VLAPolicy.from_backbones(tmp_path / "siglip", tmp_path / "llama", stats, projector_hidden_size=32)
    assert policy.model.vocab_size == 300 + N_BINS  # the bins are new ids after the LM's vocabulary
    for name, weight in vision.state_dict().items():
        torch.testing.assert_close(policy.model.vision.state_dict()[name], weight)
    lm_embeddings = policy.model.language_model.get_input_embeddings().weight
    torch.testing.assert_close(lm_embeddings[:300], language.get_input_embeddings().weight)
    actions, _, _ = policy.predict(images(2), INSTRUCTIONS)
    assert actions.shape == (2, 8, 7)
    reloaded = VLAPolicy.from_pretrained(policy.save_pretrained(tmp_path / "vla"))
    np.testing.assert_allclose(reloaded.predict(images(2), INSTRUCTIONS)[0], actions)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="config.json is missing"):
        VLAPolicy.from_pretrained(tmp_path)
    path = small_policy().save_pretrained(tmp_path / "ckpt")
    (path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot load"):
        VLAPolicy.from_pretrained(path)


@pytest.mark.parametrize("decoding", ["parallel", "autoregressive"])
def test_tiny_model_overfits_a_handful_of_chunks(decoding):
    policy = small_policy(decoding)
    model = policy.model.train()
    rng = np.random.default_rng(0)
    batch = policy.encode(images(4, seed=3), [INSTRUCTIONS[i % 2] for i in range(4)])
    targets = torch.from_numpy(rng.integers(0, N_BINS, (4, 56)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = model(**batch, action_bins=targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    greedy, _ = policy.model.generate_bins(**batch)
    accuracy = (greedy == targets).float().mean().item()
    assert loss.item() < 0.5 and accuracy > 0.9, (loss.item(), accuracy)


def test_minilm_embeds_instructions_with_its_real_weights():
    from wmpo_policy.vla.instruction_encoder import InstructionEncoder

    encoder = InstructionEncoder()
    texts = ["pick up the red cube", "lift the red block", "insert the square into the stick"]
    embeddings = encoder(texts)
    assert embeddings.shape == (3, 384)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))
    similar, unrelated = float(embeddings[0] @ embeddings[1]), float(embeddings[0] @ embeddings[2])
    assert similar > unrelated + 0.2, (similar, unrelated)  # a paraphrase is closer than another task
    torch.testing.assert_close(encoder(texts[::-1]), embeddings.flip(0))  # cached, order kept


def test_vla_with_minilm_instructions_uses_them_and_round_trips(tmp_path):
    policy = small_policy(instruction_encoder="minilm")
    frames = images(2)
    inputs = policy.encode(frames, INSTRUCTIONS)
    assert inputs["instruction_embeddings"].shape == (2, 384)
    logits = policy.model.action_logits(**inputs)
    shifted = policy.model.action_logits(
        **{**inputs, "instruction_embeddings": inputs["instruction_embeddings"].flip(0)}
    )
    assert not torch.allclose(logits, shifted)  # the embedding token reaches the action slots
    with pytest.raises(ValueError, match="instruction_embeddings"):
        policy.model.action_logits(**{k: v for k, v in inputs.items() if k != "instruction_embeddings"})
    loaded = VLAPolicy.from_pretrained(policy.save_pretrained(tmp_path / "vla"))
    assert loaded.model.config.instruction_encoder == "minilm"
    _, bins, logps = policy.predict(frames, INSTRUCTIONS)
    _, loaded_bins, loaded_logps = loaded.predict(frames, INSTRUCTIONS)
    assert torch.equal(bins, loaded_bins) and torch.equal(logps, loaded_logps)


def test_bc_builds_the_model_it_is_asked_for(tmp_path):
    """Input size, patch size and layer counts reach the checkpoint together with model_overrides
    (a sub-config override merges into them instead of replacing them)."""
    from wmpo_episodes.dataset import write_dataset
    from wmpo_policy.configs import BCConfig
    from wmpo_policy.train_bc import train

    rng = np.random.default_rng(0)
    summary = {"task": "Lift", "instruction": INSTRUCTIONS[0], "outcome": "success", "success_step": 9}
    arrays = {
        "frames": rng.integers(0, 256, (11, 48, 48, 3), dtype=np.uint8),
        "frame_stamps": np.arange(11),
        "actions": rng.uniform(-1, 1, (10, 7)),
        "commanded": rng.uniform(-1, 1, (10, 7)),
    }
    write_dataset(tmp_path / "data", [({**summary, "episode_id": "e0", "policy_id": "expert"}, arrays)])
    config = BCConfig(
        datasets=[str(tmp_path / "data")],
        output=str(tmp_path / "bc"),
        steps=1,
        batch_size=2,
        vision_tower="siglip",
        image_size=32,
        patch_size=8,
        vision_layers=1,
        text_layers=3,
        model_overrides={"vision_config": {"hidden_size": 32, "intermediate_size": 64}, "projector_hidden_size": 32},
        threads=1,
    )
    checkpoint = train(config)
    model = VLAPolicy.from_pretrained(checkpoint).model.config
    assert model.vision_config["image_size"] == 32 and model.vision_config["patch_size"] == 8
    assert model.vision_config["num_hidden_layers"] == 1 and model.vision_config["hidden_size"] == 32
    assert model.text_config["num_hidden_layers"] == 3 and model.projector_hidden_size == 32
    # a checkpoint fixes the model: model_overrides on top of it are refused before any write
    continued = replace(config, output=str(tmp_path / "continued"), init_checkpoint=str(checkpoint))
    with pytest.raises(ValueError, match="fixes the policy.s architecture; conflicting options: model_overrides"):
        train(continued)
    assert not (tmp_path / "continued").exists()
