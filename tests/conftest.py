"""Shared fixtures. Every test that touches DDS gets its own ROS_DOMAIN_ID and log dir; discovery
stays on localhost; waits are on graph state, never fixed sleeps."""

import itertools
import os
import sys

import pytest

from wmpo_common.cpu_memory import reuse_freed_memory

# Deterministic, single-threaded numerics (2-core CI machines; other processes run beside us).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("LP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
reuse_freed_memory()  # as every wmpo process does (tensors reuse freed memory)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
if sys.prefix not in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
    os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join(p for p in (sys.prefix, os.environ.get("AMENT_PREFIX_PATH")) if p)

# Domain ids 1..100, offset by the pytest process id so parallel sessions do not collide.
_domain_ids = itertools.count(1 + (os.getpid() % 10) * 10)


def next_domain_id() -> int:
    return 1 + (next(_domain_ids) - 1) % 100


@pytest.fixture
def ros_domain(tmp_path, monkeypatch):
    """A fresh ROS_DOMAIN_ID and ROS_LOG_DIR for this test (in this process and its children)."""
    domain = next_domain_id()
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path / "ros_logs"))
    return domain


@pytest.fixture
def rclpy_context(ros_domain):
    """rclpy initialised on the test's own domain; shut down afterwards."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain)
    yield context
    rclpy.try_shutdown(context=context)
