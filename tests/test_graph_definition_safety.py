"""Static checks of what every graph start (the launch files and the pip-only runner) must do:
discovery stays on this machine outside robot mode, and the robot never runs the scripted expert."""

import ast
from pathlib import Path

import pytest
import yaml

from wmpo_bringup.graph import params_file

ROOT = Path(__file__).resolve().parents[1]
TOP_LAUNCH = ROOT / "src" / "wmpo_bringup" / "launch" / "wmpo.launch.py"
RANGE = "ROS_AUTOMATIC_DISCOVERY_RANGE"


def test_discovery_is_localhost_outside_robot_mode_unless_chosen(monkeypatch):
    from wmpo_bringup.environment import discovery_environment, node_environment

    monkeypatch.delenv(RANGE, raising=False)
    assert discovery_environment(robot=False) == {RANGE: "LOCALHOST"}
    assert discovery_environment(robot=True) == {}  # the robot's graph spans its cell's network
    assert node_environment()[RANGE] == "LOCALHOST" and RANGE not in node_environment(robot=True)
    monkeypatch.setenv(RANGE, "SUBNET")  # the operator's explicit choice wins
    assert discovery_environment(robot=False) == {} and node_environment()[RANGE] == "SUBNET"


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name
    ]


def test_the_launch_file_gives_every_process_the_shared_discovery_environment():
    tree = ast.parse(TOP_LAUNCH.read_text())
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("wmpo_bringup.environment", "discovery_environment") in imported, "wmpo.launch.py sets no discovery range"
    processes = calls(tree, "Node") + calls(tree, "ExecuteProcess")
    assert len(processes) >= 3  # the graph's nodes, rviz, the rosbag2 snapshot recorder
    for call in processes:
        assert "additional_env" in {k.arg for k in call.keywords}, ast.unparse(call)
    assert calls(tree, "discovery_environment")


def test_the_launch_file_checks_the_parameters_of_its_mode():
    tree = ast.parse(TOP_LAUNCH.read_text())
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("wmpo_bringup.graph", "check_parameters") in imported
    assert calls(tree, "check_parameters")


def test_the_robot_never_runs_the_scripted_expert():
    from wmpo_bringup.graph import check_parameters, mode_parameters

    robot = mode_parameters(params_file("robot"))
    check_parameters("robot", robot)  # the shipped robot params pass
    assert robot["policy_server"]["backend"] == "vla"
    check_parameters("sim", mode_parameters(params_file("sim")))
    for policy_server in ({"backend": "scripted_expert"}, {}):
        with pytest.raises(ValueError, match="scripted_expert.*needs the simulator"):
            check_parameters("robot", {**robot, "policy_server": policy_server})


def test_the_runner_refuses_a_robot_graph_with_the_scripted_expert_before_starting_any_node(tmp_path):
    from wmpo_bringup.graph import mode_parameters
    from wmpo_bringup.runner import GraphError, GraphProcesses

    mine = tmp_path / "my_cell.yaml"
    mine.write_text(yaml.safe_dump({"policy_server": {"ros__parameters": {"backend": "scripted_expert"}}}))
    assert mode_parameters(params_file("robot"), mine)["policy_server"]["backend"] == "scripted_expert"
    for processes in (
        GraphProcesses("robot", tmp_path / "a", params=mine),
        GraphProcesses("robot", tmp_path / "b", overrides={"policy_server": {"backend": "scripted_expert"}}),
    ):
        with pytest.raises(GraphError, match="scripted_expert"):
            processes.start()
        assert processes.processes == {}


def test_the_recorder_never_gives_up_on_an_episode_the_manager_still_waits_for():
    """The recorder closes a recording with no executed action for stall_timeout as incomplete (its
    manager died). The manager's own waits without an executed action (a reset, which first builds
    the simulated scene, then the first chunk; the operator's label) must fit within it: on a
    loaded CI machine a first reset took 70 s, past the former 60 s, and lost the episode."""
    from wmpo_bringup.graph import check_parameters, mode_parameters

    for mode in ("sim", "robot"):
        check_parameters(mode, mode_parameters(params_file(mode)))  # the shipped params pass
    sim = mode_parameters(params_file("sim"))
    for recorder, manager in (
        ({"stall_timeout": 100.0}, {}),
        ({}, {"reset_timeout": 200.0}),
        ({}, {"label_timeout": 600.0}),
    ):
        merged = {
            **sim,
            "recorder": {**sim["recorder"], **recorder},
            "episode_manager": {**sim["episode_manager"], **manager},
        }
        with pytest.raises(
            ValueError, match="recorder stall_timeout .* must exceed the episode manager's longest wait"
        ):
            check_parameters("sim", merged)
