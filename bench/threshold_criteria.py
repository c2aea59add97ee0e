"""Reward thresholds on a finished loop round's re-imagined rollouts, by each criterion, side by side.

The loop's threshold phase records each candidate judge's peak scores of the P re-imagined
rollouts and their real outcomes (``threshold.json``: ``calibration``, the trained model;
``fine_tuned_calibration``, the fine-tuned fold models out of fold). For each criterion
(``train_reward.THRESHOLD_CRITERIA``) this refits the threshold on them as the loop would
(``calibrate_threshold``: F1 and accuracy cross-validated on interleaved folds) and gives the
success rate the cross-validated verdicts call against the real rate: the out-of-fold gap of a
judge whose threshold was fitted on imagined video. No model runs; it reads the JSON.

    python bench/threshold_criteria.py --loop runs/loop_kp/loop
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from wmpo_worldmodel.calibration import calibrate_threshold, cross_validated_verdicts
from wmpo_worldmodel.configs import THRESHOLD_CRITERIA


@dataclass
class ThresholdCriteriaConfig:
    loop: str  # a loop run's folder, round 0's threshold phase finished
    folds: int = 4  # cross-validation folds, as LoopConfig.calibration_folds


def main(config: ThresholdCriteriaConfig) -> None:
    recorded = json.loads((Path(config.loop) / "round_0" / "threshold.json").read_text())
    print("| judge | criterion | threshold (all) | cv accuracy | p vs majority | cv judged vs real rate | cv gap |")
    print("|---|---|---|---|---|---|---|")
    for key in ("calibration", "fine_tuned_calibration"):
        if not recorded.get(key):
            continue
        scores, labels = np.array(recorded[key]["scores"]), np.array(recorded[key]["labels"])
        for criterion in THRESHOLD_CRITERIA:
            fitted = calibrate_threshold(scores, labels, config.folds, criterion)
            judged = cross_validated_verdicts(scores, labels, config.folds, criterion).mean()
            print(
                f"| {key} | {criterion} | {fitted.threshold:.3f} | {fitted.cross_validated_accuracy:.2f} | "
                f"{fitted.majority_p_value:.3f} | {judged:.2f} vs {labels.mean():.2f} | {judged - labels.mean():+.2f} |"
            )


if __name__ == "__main__":
    main(tyro.cli(ThresholdCriteriaConfig))
