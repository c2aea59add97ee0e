"""How well imagined episodes match real ones: frame fidelity and outcome agreement.

Each held-out real episode is re-imagined from its first frame (repeated as context) under its
own recorded actions. Frame fidelity: PSNR and SSIM of imagined vs real frames (real frames
resized to the model's size) at every horizon t = 1 .. T. Outcome agreement: the reward model
judges the imagined episode; compare with the real label (accuracy, F1 of "success", and the
AUROC of its peak window score). The reward model also judges the real video, which separates
its own errors from the world model's.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.stats import mannwhitneyu
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm import tqdm

from wmpo_common.atomic_json import write_json
from wmpo_episodes.dataset import EpisodeDataset
from wmpo_worldmodel.imagination import start_context
from wmpo_worldmodel.pipeline import WorldModelPipeline, to_model_frames, to_uint8_frames
from wmpo_worldmodel.reward_model import VideoRewardModel


@dataclass
class Judgement:
    """The reward model's reading of one episode's video."""

    success: bool
    score: float  # peak success probability over its windows


@dataclass
class EpisodeFidelity:
    episode_id: str
    real_success: bool
    psnr: np.ndarray  # (T,) dB, horizon t = 1 .. T
    ssim: np.ndarray  # (T,)
    real: np.ndarray  # uint8 (T+1, S, S, 3)
    imagined: np.ndarray  # uint8 (T+1, S, S, 3), frame 0 = the real start frame
    judged_imagined: Judgement | None = None  # None without a reward model
    judged_real: Judgement | None = None


def imagine_episode(world_model: WorldModelPipeline, frames: np.ndarray, actions: np.ndarray, **sampling) -> np.ndarray:
    """Re-imagine one real episode under its own actions: uint8 (T+1, S, S, 3) at the model's size."""
    horizon = world_model.unet.config.frames_per_pass
    steps = len(actions)
    padded = np.concatenate([actions, np.repeat(actions[-1:], math.ceil(steps / horizon) * horizon - steps, axis=0)])
    context = start_context(frames, 0, world_model.unet.config.context_frames)[None]
    imagined = world_model(context, padded[None], **sampling)[0][:steps]
    size = imagined.shape[1]
    first = to_uint8_frames(to_model_frames(np.asarray(frames[:1])[None], size, "cpu"))[0]
    return np.concatenate([first, imagined])


def write_strips(path: Path, strips: list[tuple[str, np.ndarray]], frames_across: int = 12) -> None:
    """One PNG row per (name, uint8 (T, S, S, 3) frames), every k-th frame so that about
    ``frames_across`` frames fit; rows are in the given order (e.g. real first, then imagined)."""
    every = max(1, len(strips[0][1]) // frames_across)
    rows = [np.concatenate(list(frames[::every][:frames_across]), axis=1) for _, frames in strips]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def episode_fidelity(
    world_model: WorldModelPipeline,
    data: EpisodeDataset,
    index: int,
    reward_model: VideoRewardModel | None = None,
    **sampling,
) -> EpisodeFidelity:
    episode = data.episode(index)
    record = episode["record"]
    imagined = imagine_episode(world_model, episode["frames"], episode["actions"], **sampling)
    real = to_uint8_frames(to_model_frames(np.asarray(episode["frames"])[None], imagined.shape[1], "cpu"))[0]
    psnr = np.array(
        [peak_signal_noise_ratio(r, i, data_range=255) for r, i in zip(real[1:], imagined[1:], strict=True)]
    )
    ssim = np.array(
        [
            structural_similarity(r, i, channel_axis=-1, data_range=255)
            for r, i in zip(real[1:], imagined[1:], strict=True)
        ]
    )
    result = EpisodeFidelity(record.episode_id, record.outcome == "success", psnr, ssim, real, imagined)
    if reward_model is not None:
        result.judged_imagined, result.judged_real = (judge(reward_model, v) for v in (imagined, real))
    return result


def judge(reward_model: VideoRewardModel, frames: np.ndarray) -> Judgement:
    verdict = reward_model.judge(frames)
    return Judgement(verdict.success, float(verdict.scores.max()))


def auroc(scores, labels) -> float | None:
    """Area under the ROC curve of scores against bool labels: the chance that a random success
    scores above a random failure (ties count half); None without both labels."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return None
    return float(mannwhitneyu(scores[labels], scores[~labels]).statistic / (labels.sum() * (~labels).sum()))


def outcome_agreement(labels: np.ndarray, judgements: list[Judgement]) -> dict:
    """Verdicts vs real labels (bool (N,)): accuracy, F1 of "success", judged successes, and the
    AUROC of the scores (how well any threshold could separate; only with both labels present)."""
    verdicts = np.array([j.success for j in judgements])
    scores = np.array([j.score for j in judgements])
    tp, fp, fn = (int(np.sum(labels & verdicts)), int(np.sum(~labels & verdicts)), int(np.sum(labels & ~verdicts)))
    agreement = {
        "accuracy": float(np.mean(labels == verdicts)),
        "f1": 2 * tp / max(1, 2 * tp + fp + fn),
        "judged_successes": int(verdicts.sum()),
    }
    if (area := auroc(scores, labels)) is not None:
        agreement["auroc"] = area
    return agreement


def summarize(results: list[EpisodeFidelity], horizon_bins: int = 8) -> dict:
    """Mean PSNR/SSIM per horizon bin of ``horizon_bins`` steps, and outcome agreement."""
    longest = max(len(r.psnr) for r in results)
    per_bin = []
    for start in range(0, longest, horizon_bins):
        psnr = [v for r in results for v in r.psnr[start : start + horizon_bins]]
        ssim = [v for r in results for v in r.ssim[start : start + horizon_bins]]
        per_bin.append(
            {"steps": f"{start + 1}-{start + horizon_bins}", "psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}
        )
    summary = {
        "episodes": len(results),
        "psnr": float(np.mean([v for r in results for v in r.psnr])),
        "ssim": float(np.mean([v for r in results for v in r.ssim])),
        "per_horizon": per_bin,
    }
    judged = [r for r in results if r.judged_imagined is not None]
    if judged:
        labels = np.array([r.real_success for r in judged])
        summary["real_successes"] = int(labels.sum())
        summary["imagined"] = outcome_agreement(labels, [r.judged_imagined for r in judged])
        summary["real_video"] = outcome_agreement(labels, [r.judged_real for r in judged])
    return summary


def write_report(
    variants: dict[str, WorldModelPipeline],
    held_out: EpisodeDataset,
    output: Path,
    reward_model: VideoRewardModel | None = None,
    max_episodes: int = 0,
    sampler: str = "ddim",
    sampler_steps: int = 10,
    seed: int = 0,
) -> dict:
    """Fidelity of each named world model on the held-out episodes: report.json, report.md,
    psnr_ssim.png (per horizon) and strips.png (real vs each variant, first episode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    count = len(held_out) if max_episodes <= 0 else min(max_episodes, len(held_out))
    indices = np.unique(np.linspace(0, len(held_out) - 1, count).round().astype(int)).tolist()  # spread
    report, strips = {}, []
    for name, world_model in variants.items():
        results = [
            episode_fidelity(
                world_model,
                held_out,
                i,
                reward_model,
                num_inference_steps=sampler_steps,
                sampler=sampler,
                generator=torch.Generator().manual_seed(seed + i),
            )
            for i in tqdm(indices, desc=f"re-imagining ({name})", unit="episode")
        ]
        report[name] = summarize(results)
        if not strips:
            strips.append(("real", results[0].real))
        strips.append((name, results[0].imagined))
    write_json(output / "report.json", report)

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, summary in report.items():
        x = [i * 8 + 4.5 for i in range(len(summary["per_horizon"]))]
        axes[0].plot(x, [b["psnr"] for b in summary["per_horizon"]], marker="o", label=name)
        axes[1].plot(x, [b["ssim"] for b in summary["per_horizon"]], marker="o", label=name)
    for axis, label in zip(axes, ("PSNR [dB]", "SSIM"), strict=True):
        axis.set_xlabel("horizon [control steps]")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(output / "psnr_ssim.png", dpi=120)
    plt.close(figure)

    write_strips(output / "strips.png", strips)

    lines = [
        f"# World-model fidelity on {len(indices)} held-out episodes ({held_out.path})",
        "",
        f"Sampler {sampler}, {sampler_steps} steps. Strips (rows: {', '.join(n for n, _ in strips)}): strips.png",
        "",
        "Outcome columns: the reward model's verdicts on the imagined videos vs the real labels"
        " (judged successes / real successes, accuracy, F1, AUROC of the peak score).",
        "",
        "| variant | PSNR [dB] | SSIM | PSNR 1-8 | PSNR last bin | successes | accuracy | F1 | AUROC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def outcome_cells(summary: dict, key: str) -> str:
        if key not in summary:
            return "- | - | - | -"
        a = summary[key]
        auroc = f"{a['auroc']:.2f}" if "auroc" in a else "-"
        return f"{a['judged_successes']}/{summary['real_successes']} | {a['accuracy']:.2f} | {a['f1']:.2f} | {auroc}"

    for name, s in report.items():
        first, last = s["per_horizon"][0]["psnr"], s["per_horizon"][-1]["psnr"]
        frames = f"{s['psnr']:.2f} | {s['ssim']:.3f} | {first:.2f} | {last:.2f}"
        lines.append(f"| {name} | {frames} | {outcome_cells(s, 'imagined')} |")
    if reward_model is not None:  # the same reward model on the real videos: its own share of the errors
        lines.append(f"| (real video) | - | - | - | - | {outcome_cells(next(iter(report.values())), 'real_video')} |")
    (output / "report.md").write_text("\n".join(lines) + "\n")
    return report
