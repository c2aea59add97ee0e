"""Resumable collections: a list of RunEpisode goals run into one output folder. A collection
resumed after a kill runs only the goals without a finished episode, and its dataset holds one
episode per goal, so no episode is ever collected twice.

A result is ``{"summary": EpisodeSummary fields, "bag_path": str}``. Goals may repeat (a GRPO
group is G alike goals); each finished episode serves one goal.
"""

import json
from pathlib import Path

from wmpo_common.atomic_json import write_json

COLLECTION_FILE = "collection.json"  # what the folder's collection is: resumed only by the same one
GOAL_DEFAULTS = {"seed": -1, "init_state_id": -1, "max_steps": 0, "instruction": ""}


def with_sampling_seeds(goals: list[dict]) -> list[dict]:
    """The goals, each without a ``sampling_seed`` given its index in the list: a sampling policy
    restarts its draws from it at the episode's start (RunEpisode.sampling_seed), so a goal gets the
    same episode on any graph, serial or parallel, whatever ran before, and alike goals (a GRPO
    group) draw apart. Goals that set one keep it (a job whose collections must not repeat draws)."""
    return [{"sampling_seed": i, **goal} for i, goal in enumerate(goals)]


class CollectionMismatch(ValueError):
    """The output folder holds another collection's episodes; the text says how they differ."""


def serves(task: str, goal: dict, summary: dict) -> bool:
    """Whether a finished episode (its summary) is one of ``goal``'s: the same task, seed and
    initial state, and the same step budget and instruction where the goal sets them (0 / "": the
    task's). record_mode only decides whether the bag is kept, so it does not tell goals apart."""
    goal = {**GOAL_DEFAULTS, **goal}
    return (
        summary.get("task") == task
        and summary.get("seed") == goal["seed"]
        and summary.get("init_state_id") == goal["init_state_id"]
        and goal["max_steps"] in (0, summary.get("max_steps"))
        and goal["instruction"] in ("", summary.get("instruction"))
    )


def assign(task: str, goals: list[dict], results: list[dict]) -> list[dict | None]:
    """For each goal, a finished result of its own from ``results``, or None (still to run).
    Incomplete episodes are not finished; results beyond the goals' count are left out."""
    unused = [r for r in results if r["summary"].get("outcome") in ("success", "failure")]
    slots: list[dict | None] = []
    for goal in goals:
        index = next((i for i, r in enumerate(unused) if serves(task, goal, r["summary"])), None)
        slots.append(None if index is None else unused.pop(index))
    return slots


def claim_folder(output: Path, spec: dict) -> None:
    """Record what the collection in ``output`` is (task, policy, graph parameters), or check that a
    resumed one is the same: CollectionMismatch when the folder holds another collection."""
    spec = json.loads(json.dumps(spec))  # as it reads back (tuples become lists)
    record = Path(output) / COLLECTION_FILE
    if record.is_file():
        recorded = json.loads(record.read_text())
        if recorded != spec:
            raise CollectionMismatch(
                f"{output} holds the episodes of another collection ({recorded}), not of this one ({spec}); "
                "resuming would mix them: choose a new output folder"
            )
        return
    Path(output).mkdir(parents=True, exist_ok=True)
    write_json(record, spec)


def collected_bags(results: list[dict]) -> list[tuple[dict, Path]]:
    """(summary, bag) of each result with a kept, complete bag, in goal order: what a collection's
    dataset holds (wmpo_episodes.bag_conversion.bags_to_dataset)."""
    return [
        (r["summary"], Path(r["bag_path"]))
        for r in results
        if r["bag_path"] and r["summary"]["outcome"] != "incomplete"
    ]
