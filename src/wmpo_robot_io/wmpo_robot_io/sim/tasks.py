"""Simulated tasks: robosuite environment names, instructions, step budgets, object bodies."""

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """One robosuite task as the project uses it.

    env_name: robosuite environment class name.
    instruction: default natural-language instruction given to the policy.
    max_steps: default episode budget in control steps (20 Hz).
    objects: names of the object bodies whose poses the simulator publishes
        (robosuite body names; ``TaskState.object_names``).
    """

    env_name: str
    instruction: str
    max_steps: int
    objects: tuple[str, ...]


TASKS: dict[str, TaskSpec] = {
    "Lift": TaskSpec(
        env_name="Lift",
        instruction="pick up the red cube",
        max_steps=120,
        objects=("cube_main",),
    ),
    # MimicGen's Square_D0: same environment and initial-state ranges; budget as in WMPO.
    "NutAssemblySquare": TaskSpec(
        env_name="NutAssemblySquare",
        instruction="insert the square into the stick",
        max_steps=184,
        objects=("SquareNut_main", "peg1"),
    ),
}


def task_spec(name: str) -> TaskSpec:
    """Return the spec of ``name`` or raise ValueError naming the known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
