"""Static checks: the graph definition, its params, the launch files, package metadata, Dockerfiles."""

import ast
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from wmpo_bringup.graph import GRAPHS, MODES, params_file

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "src" / "wmpo_bringup" / "launch"


def console_scripts(package: str) -> dict[str, str]:
    """executable -> module, parsed from the package's setup.py."""
    text = (ROOT / "src" / package / "setup.py").read_text()
    return dict(re.findall(r'"(\w+) = ([\w.]+):main"', text))


@pytest.mark.parametrize("mode", MODES)
def test_every_process_of_the_graph_is_an_installed_executable(mode):
    for spec in GRAPHS[mode]:
        scripts = console_scripts(spec.package)
        assert spec.executable in scripts, f"{spec.package}/setup.py lacks {spec.executable}"
        assert spec.module() == scripts[spec.executable]


@pytest.mark.parametrize("mode", MODES)
def test_params_file_has_exactly_the_nodes_of_the_graph(mode):
    params = yaml.safe_load(params_file(mode).read_text())
    nodes = {node for spec in GRAPHS[mode] for node in spec.nodes}
    assert set(params) == nodes
    for node, section in params.items():
        assert set(section) == {"ros__parameters"}, node


def test_robot_params_leave_the_safety_limits_to_the_user():
    safety = yaml.safe_load(params_file("robot").read_text())["arm"]["ros__parameters"]["safety"]
    for required in ("workspace_min", "workspace_max", "max_translation_per_step", "max_rotation_per_step"):
        assert required not in safety


def test_launch_files_take_their_nodes_from_the_graph_definition():
    top = ast.parse((LAUNCH / "wmpo.launch.py").read_text())
    imported = {alias.name for node in ast.walk(top) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert {"graph", "params_file", "MODES"} <= imported
    literals = {n.value for n in ast.walk(top) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    executables = {spec.executable for specs in GRAPHS.values() for spec in specs}
    assert not executables & literals, "the top launch file must not name graph nodes itself"
    for mode in MODES:
        tree = ast.parse((LAUNCH / f"{mode}.launch.py").read_text())
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert mode in strings and "wmpo.launch.py" in strings
        assert "generate_launch_description" in {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}


def test_packages_are_format_3_with_matching_names_and_build_types():
    for package_xml in sorted((ROOT / "src").glob("*/package.xml")):
        root = ET.parse(package_xml).getroot()
        assert root.get("format") == "3"
        assert root.findtext("name") == package_xml.parent.name
        build_type = root.find("export/build_type").text
        assert build_type == ("ament_cmake" if (package_xml.parent / "CMakeLists.txt").exists() else "ament_python")
        if build_type == "ament_python":
            assert (package_xml.parent / "resource" / package_xml.parent.name).exists()
            assert (package_xml.parent / "setup.cfg").exists()


ROS_PACKAGES = re.compile(r"^(wmpo_\w+|rclpy|ament_index_python|launch|launch_ros|\w+_msgs|\w+_srvs|\w+_interfaces)$")


def declared_dependencies(package: str) -> set[str]:
    root = ET.parse(ROOT / "src" / package / "package.xml").getroot()
    return {e.text for e in root if e.tag in ("depend", "exec_depend", "build_depend")}


def imported_ros_packages(package: str) -> set[str]:
    """The ROS packages (ours, rclpy, messages, launch) that the package's Python files import."""
    found = set()
    for path in (ROOT / "src" / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            found |= {n.split(".")[0] for n in names if ROS_PACKAGES.match(n.split(".")[0])}
    return found - {package}


@pytest.mark.parametrize("package", sorted(p.parent.name for p in (ROOT / "src").glob("*/setup.py")))
def test_package_xml_declares_every_ros_package_it_imports_and_launches(package):
    needed = imported_ros_packages(package)
    if package == "wmpo_bringup":  # it launches every node of every graph
        needed |= {spec.package for mode in MODES for spec in GRAPHS[mode]}
    missing = sorted(needed - declared_dependencies(package))
    assert not missing, f"src/{package}/package.xml does not declare {missing}"


def test_the_packages_depend_on_each_other_without_a_cycle():
    """colcon orders the packages by their package.xml: wmpo_common at the bottom, wmpo_bringup
    (the graphs, their launch files and the wmpo CLI) on top, wmpo_jobs below it (it runs the
    trainer node that bringup launches; jobs needing a sim graph take bringup's runner as an argument)."""
    ours = {p.parent.name for p in (ROOT / "src").glob("*/package.xml")}
    depends = {package: declared_dependencies(package) & ours for package in ours}
    order = []
    while depends:
        ready = sorted(p for p, needs in depends.items() if needs <= set(order))
        assert ready, f"a dependency cycle among {sorted(depends)}: {depends}"
        order += ready
        for package in ready:
            del depends[package]
    assert order.index("wmpo_common") < order.index("wmpo_episodes") < order.index("wmpo_jobs")
    assert order.index("wmpo_jobs") < order.index("wmpo_bringup") == len(order) - 1


def test_dockerfiles_pass_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").prefix) / "bin" / "hadolint")
    dockerfiles = sorted(str(p) for p in (ROOT / "docker").glob("*.Dockerfile"))
    assert dockerfiles
    result = subprocess.run([hadolint, *dockerfiles], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_node_reference_documents_every_node_parameter():
    from wmpo_episodes.episode_manager_node import PARAMETERS as manager
    from wmpo_episodes.recorder_node import PARAMETERS as recorder
    from wmpo_policy.policy_server_node import PARAMETERS as policy
    from wmpo_robot_io.arm_node import HARDWARE_PARAMETERS as hardware
    from wmpo_robot_io.arm_node import MOVEIT_PARAMETERS as moveit
    from wmpo_robot_io.arm_node import PARAMETERS as arm
    from wmpo_robot_io.arm_node import SAFETY_PARAMETERS as safety
    from wmpo_robot_io.camera_node import PARAMETERS as camera
    from wmpo_robot_io.sim_node import ARM_PARAMETERS, CAMERA_PARAMETERS

    reference = (ROOT / "docs" / "nodes.md").read_text()
    names = [*manager, *recorder, *policy, *arm, *camera, *ARM_PARAMETERS, *CAMERA_PARAMETERS]
    names += [f"safety.{key}" for key in safety]
    names += [*hardware, *(f"moveit.{key}" for key in moveit)]
    missing = [name for name in names if f"`{name}`" not in reference]
    assert not missing, f"docs/nodes.md lacks parameters {missing}"


def test_compose_services_build_the_dockerfiles_and_start_what_exists():
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        assert (ROOT / "docker" / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), name
    robot = compose["services"]["robot"]
    assert robot["command"][:4] == ["ros2", "launch", "wmpo_bringup", "robot.launch.py"]
    assert (ROOT / "src" / "wmpo_bringup" / "launch" / "robot.launch.py").is_file()
    assert "network_mode" in robot and any(v.startswith("/dev:") for v in robot["volumes"])
    assert compose["services"]["train"]["command"] == ["make", "demo"]


def test_a_jobs_private_graph_gets_its_own_domain_unless_one_is_chosen(monkeypatch):
    from wmpo_bringup.environment import private_domain_id

    monkeypatch.setenv("ROS_DOMAIN_ID", "42")
    assert private_domain_id() == 42
    monkeypatch.delenv("ROS_DOMAIN_ID")
    assert private_domain_id() == 1 + os.getpid() % 100  # not the default domain 0 that other jobs share


def test_training_code_imports_no_ros_rosbags_or_simulator():
    """Training runs on a GPU machine with the converted dataset, torch and transformers only."""
    modules = [
        "wmpo_episodes.dataset",
        "wmpo_policy.train_bc",
        "wmpo_worldmodel.train_world_model",
        "wmpo_worldmodel.train_vae",
        "wmpo_worldmodel.train_reward",
        "wmpo_trainer.train_wmpo",
        "wmpo_trainer.dpo",
        "wmpo_trainer.ray_imagination",
    ]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += "print(' '.join(m for m in ('rclpy', 'rosbags', 'robosuite', 'mujoco') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"training code imports {result.stdout.strip()}"
