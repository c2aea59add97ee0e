"""Bad input meets the running graph: malformed images, NaN and out-of-box chunks, the e-stop.
Each is refused or clipped with a clear report, and no node crashes."""

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from graph_helpers import ArmDriver, diagnostic, running_sim_graph, spin_until
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker

pytestmark = pytest.mark.graph


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    from conftest import next_domain_id

    with running_sim_graph(tmp_path_factory.mktemp("safety_graph"), next_domain_id()) as running:
        yield running


@pytest.fixture(scope="module")
def arm(graph):
    return ArmDriver(graph[1])


def test_malformed_images_are_rejected_with_a_clear_log_and_no_crash(graph, arm):
    processes, node, _ = graph
    # Wait until the policy server and the recorder subscribe to our publisher (graph state).
    assert spin_until(node, lambda: arm.bad_images.get_subscription_count() >= 2, timeout=30)
    arm.bad_images.publish(Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(7)))
    arm.bad_images.publish(Image(height=4, width=4, encoding="32FC1", step=16, data=bytes(64)))
    rejected = spin_until(node, lambda: [s for s in arm.diagnostics if s.name == "policy_server: camera input"][1:])
    assert rejected, "the policy server reported no rejected images"
    messages = [s.message for s in arm.diagnostics if s.name == "policy_server: camera input"]
    assert "rejected image: data has 7 bytes, expected step*height = 48" in messages
    assert "rejected image: unsupported encoding '32FC1' (supported: rgb8, bgr8)" in messages
    log = (processes.log_dir / "policy_server.log").read_text()  # logged before it was published
    assert "data has 7 bytes" in log and "unsupported encoding '32FC1'" in log
    result = node.run_episode("Lift", seed=1, max_steps=8, record_mode="none", timeout=120)
    assert result.summary["outcome"] == "failure" and result.summary["num_steps"] == 8  # still serving
    processes.check()


def test_nan_chunk_is_refused_whole_and_reported(graph, arm):
    processes, node, _ = graph
    arm.reset()
    actions = np.zeros((8, 7))
    actions[3, 1] = np.nan
    wrapped = arm.run_chunk(actions)
    assert wrapped.status == 6  # ABORTED
    assert "non-finite" in wrapped.result.message and wrapped.result.steps_executed == 0
    status = spin_until(node, lambda: diagnostic(arm, "non_finite"))
    assert status is not None and status.level == DiagnosticStatus.ERROR
    assert "safety: non_finite" in (processes.log_dir / "camera+arm.log").read_text()
    processes.check()


def test_out_of_box_chunk_is_clipped_to_the_workspace(graph, arm):
    processes, node, _ = graph
    arm.reset()
    down = np.tile([0, 0, -1.0, 0, 0, 0, -1], (8, 1))  # 40 cm down, through the table
    for _ in range(2):
        wrapped = arm.run_chunk(down)
        assert wrapped.status == 4 and wrapped.result.steps_executed == 8  # SUCCEEDED, clipped
    assert spin_until(node, lambda: diagnostic(arm, "workspace")).level == DiagnosticStatus.WARN
    lowest = spin_until(node, lambda: min((p.pose.position.z for p in arm.poses), default=None))
    assert lowest >= 0.805 - 0.01, lowest  # the box floor (controller tracking error < 1 cm)
    processes.check()


def test_estop_latches_refuses_chunks_until_released(graph, arm):
    processes, node, _ = graph
    arm.reset()
    arm.estop.publish(Bool(data=True))
    assert spin_until(node, lambda: diagnostic(arm, "estop"))
    wrapped = arm.run_chunk(np.zeros((8, 7)))
    assert wrapped.status == 6 and "e-stop latched" in wrapped.result.message
    assert arm.call(arm.release, Trigger.Request()).success
    wrapped = arm.run_chunk(np.zeros((8, 7)))
    assert wrapped.status == 4 and wrapped.result.steps_executed == 8
    processes.check()


def test_the_safety_box_is_published_latched_for_rviz(graph):
    processes, node, _ = graph
    markers = []
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(Marker, "arm/safety_box", markers.append, latched)
    box = spin_until(node, lambda: markers, timeout=30)
    assert box, "no safety box marker (it is latched: a late subscriber must still get it)"
    marker = box[0]
    points = np.array([(p.x, p.y, p.z) for p in marker.points])
    assert marker.type == Marker.LINE_LIST and marker.header.frame_id == "world" and len(points) == 24  # 12 edges
    np.testing.assert_allclose(points.min(axis=0), [-0.40, -0.40, 0.805])  # sim.yaml's safety.workspace_*
    np.testing.assert_allclose(points.max(axis=0), [0.38, 0.40, 1.35])
    edges = points.reshape(12, 2, 3)
    assert all(np.count_nonzero(a != b) == 1 for a, b in edges)  # every edge runs along one axis
    processes.check()
