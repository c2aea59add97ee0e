"""The ROS-machine path: ``colcon build`` builds every package (colcon from PyPI here, against
the venv's ROS 2 wheels) and installs what ``ros2 run`` / ``ros2 launch`` look for."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent.name for p in (ROOT / "src").glob("*/package.xml"))


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    pytest.importorskip("colcon_core")
    ws = tmp_path_factory.mktemp("colcon_ws")
    shutil.copytree(ROOT / "src", ws / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    env = dict(os.environ, CMAKE_PREFIX_PATH=sys.prefix, AMENT_PREFIX_PATH=sys.prefix)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    cmd = [sys.executable, "-m", "colcon", "build", "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}"]
    result = subprocess.run(cmd + ["-DBUILD_TESTING=OFF"], cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Summary: {len(PACKAGES)} packages finished" in result.stdout
    return ws / "install"


def test_every_package_is_built_and_indexed(install):
    for package in PACKAGES:
        assert (install / package / "share" / "ament_index" / "resource_index" / "packages" / package).exists()
        assert (install / package / "share" / package / "package.xml").exists()


def test_executables_launch_files_params_and_interfaces_are_installed(install):
    from wmpo_bringup.graph import GRAPHS, MODES

    for spec in {s for specs in GRAPHS.values() for s in specs}:
        assert (install / spec.package / "lib" / spec.package / spec.executable).is_file(), spec
    share = install / "wmpo_bringup" / "share" / "wmpo_bringup"
    assert {f"{m}.launch.py" for m in MODES} | {"wmpo.launch.py"} <= {p.name for p in (share / "launch").iterdir()}
    assert (share / "rviz" / "wmpo.rviz").is_file() and (share / "foxglove" / "episode_layout.json").is_file()
    for mode in MODES:
        assert next((install / "wmpo_bringup").rglob(f"wmpo_bringup/params/{mode}.yaml"), None), mode
    assert (install / "wmpo_interfaces" / "share" / "wmpo_interfaces" / "action" / "RunEpisode.action").is_file()
