"""The node graph of each mode, defined once.

Read by the launch files (on a ROS machine: ``ros2 launch wmpo_bringup sim.launch.py``) and by the
pip-only runner (``wmpo run sim``). Each mode has one params YAML, ``params/<mode>.yaml``, keyed
by node name (nav2_bringup style).
"""

from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import yaml


@dataclass(frozen=True)
class NodeSpec:
    """One process of the graph.

    package / executable: as ``ros2 run`` names them (console_scripts installed in lib/<package>).
    nodes: the ROS node names the process creates (several when nodes share a simulator).
    """

    package: str
    executable: str
    nodes: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.nodes)

    def module(self) -> str:
        """The Python module whose ``main()`` the executable runs (from the package's entry points)."""
        for entry in metadata.entry_points(group="console_scripts", name=self.executable):
            if entry.module.split(".")[0] == self.package:
                return entry.module
        raise LookupError(f"{self.package} has no console script {self.executable!r}; is it installed?")


POLICY_SERVER = NodeSpec("wmpo_policy", "policy_server", ("policy_server",))
RECORDER = NodeSpec("wmpo_episodes", "recorder", ("recorder",))
EPISODE_MANAGER = NodeSpec("wmpo_episodes", "episode_manager", ("episode_manager",))

GRAPHS: dict[str, tuple[NodeSpec, ...]] = {
    # The simulated arm: robosuite owns the camera and the arm in one process.
    "sim": (NodeSpec("wmpo_robot_io", "sim_node", ("camera", "arm")), POLICY_SERVER, RECORDER, EPISODE_MANAGER),
    # The physical arm: a RealSense and a hardware arm backend, each its own driver process.
    "robot": (
        NodeSpec("wmpo_robot_io", "camera_node", ("camera",)),
        NodeSpec("wmpo_robot_io", "arm_node", ("arm",)),
        POLICY_SERVER,
        RECORDER,
        EPISODE_MANAGER,
    ),
    # The learning side: replay recorded episodes next to the world model's imagination of them,
    # and the trainer, which collects real episodes through a sim or robot graph on the same domain.
    "imagine": (
        NodeSpec("wmpo_robot_io", "camera_node", ("camera",)),
        NodeSpec("wmpo_worldmodel", "world_model", ("world_model",)),
        NodeSpec("wmpo_jobs", "trainer", ("trainer",)),
    ),
}
MODES = tuple(GRAPHS)


def graph(mode: str) -> tuple[NodeSpec, ...]:
    if mode not in GRAPHS:
        raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
    return GRAPHS[mode]


def params_file(mode: str) -> Path:
    """The default params YAML of a mode (shipped inside the wmpo_bringup Python package)."""
    graph(mode)
    return Path(str(resources.files("wmpo_bringup") / "params" / f"{mode}.yaml"))


# Backends that act on the simulator's privileged state (object poses): never a robot's policy.
SIM_ONLY_BACKENDS = ("scripted_expert",)
POLICY_SERVER_DEFAULT_BACKEND = "scripted_expert"  # the policy server's own default


def mode_parameters(*files: Path, overrides: dict | None = None) -> dict[str, dict]:
    """{node name: its parameters} as the nodes will get them: the params files in order (a later
    one wins, ``/**`` applies to every node), then ``overrides`` ({node: {parameter: value}})."""
    merged: dict[str, dict] = {}
    for path in files:
        for key, section in (yaml.safe_load(Path(path).read_text()) or {}).items():
            values = (section or {}).get("ros__parameters", {})
            merged.setdefault(key.lstrip("/"), {}).update(values)
    for node, values in (overrides or {}).items():
        merged.setdefault(node, {}).update(values)
    shared = merged.pop("**", {})
    return {node: {**shared, **values} for node, values in merged.items()}


def check_parameters(mode: str, parameters: dict[str, dict]) -> None:
    """Refuse, before any node starts, parameters a mode must not run with (ValueError, the
    reason): on the robot, a policy backend that needs the simulator's state; in any mode, a
    recorder that would close a recording as stalled while the episode manager still waits."""
    check_stall_timeout(parameters)
    if mode == "robot":
        backend = parameters.get("policy_server", {}).get("backend", POLICY_SERVER_DEFAULT_BACKEND)
        if backend in SIM_ONLY_BACKENDS:
            raise ValueError(
                f"robot mode: policy_server backend {backend!r} needs the simulator's state (object poses) "
                "and never drives a physical arm; set policy_server backend: vla and checkpoint: <folder>"
            )


def check_stall_timeout(parameters: dict[str, dict]) -> None:
    """The recorder closes a recording with no executed action for ``stall_timeout`` seconds (its
    episode manager died); the manager's longest wait without one (a reset and the first chunk;
    the operator's label) must end before that."""
    from wmpo_common.ros.parameters import finite
    from wmpo_episodes.episode_manager_node import PARAMETERS as MANAGER
    from wmpo_episodes.recorder_node import PARAMETERS as RECORDER

    def value(node: str, name: str, defaults: dict):
        return parameters.get(node, {}).get(name, defaults[name].default)

    stall = value("recorder", "stall_timeout", RECORDER)
    reset, policy, label = (
        value("episode_manager", n, MANAGER) for n in ("reset_timeout", "policy_timeout", "label_timeout")
    )
    if any(finite(v) for v in (stall, reset, policy, label)):
        return  # not finite numbers: the nodes refuse them, each with its reason
    if stall <= max(reset + policy, label):
        raise ValueError(
            f"recorder stall_timeout ({stall:g} s) must exceed the episode manager's longest wait without an "
            f"executed action: reset_timeout + policy_timeout ({reset + policy:g} s) and label_timeout ({label:g} s)"
        )
