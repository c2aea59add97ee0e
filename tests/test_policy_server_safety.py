"""The policy server against bad input, in-process over real DDS: camera frames stamped in the
future, episodes started by the request (not by a topic that may come late), ensembling set at run
time, a backend that raises, and parameter values out of range."""

import math
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import String
from test_vla_model import small_policy

from wmpo_interfaces.srv import GetActionChunk
from wmpo_policy.backends.base import Observation, PolicyBackend
from wmpo_policy.policy_server_node import PolicyServer
from wmpo_robot_io.images import to_image_msg

IMAGE = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
SECOND = 10**9


class CountingBackend(PolicyBackend):
    """Chunk n (from 1) is all n; records the instructions it saw and its resets; raises ``fail`` once."""

    def __init__(self):
        self.calls = 0
        self.instructions: list[str] = []
        self.resets = 0
        self.sampling_seeds = []
        self.fail: Exception | None = None

    @property
    def policy_id(self) -> str:
        return "test/counting"

    def predict_chunk(self, observation: Observation) -> np.ndarray:
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error
        self.calls += 1
        self.instructions.append(observation.instruction)
        return np.full((8, 7), float(self.calls), np.float32)

    def reset(self, sampling_seed: int | None = None) -> None:
        self.resets += 1
        self.sampling_seeds.append(sampling_seed)


class Harness:
    """The server spinning on its own executor; a client node with a camera, the instruction topic,
    /diagnostics and the service."""

    def __init__(self, context, backend, overrides):
        self.server = PolicyServer(backend=backend, context=context, parameter_overrides=overrides)
        self.executor = MultiThreadedExecutor(num_threads=3, context=context)
        self.executor.add_node(self.server)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.client = Node("test_client", context=context)
        self.spinner = SingleThreadedExecutor(context=context)
        self.spinner.add_node(self.client)
        self.camera = self.client.create_publisher(Image, "camera/image_raw", 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.instruction = self.client.create_publisher(String, "instruction", latched)
        self.statuses: list[DiagnosticStatus] = []
        self.client.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.statuses.extend(m.status), 50)
        self.service = self.client.create_client(GetActionChunk, "policy_server/get_action_chunk")
        assert self.service.wait_for_service(timeout_sec=30)
        assert self.spin_until(lambda: self.camera.get_subscription_count() >= 1, timeout=30)

    def spin_until(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := predicate():
                return value
            self.spinner.spin_once(timeout_sec=0.05)
        return predicate()

    def publish(self, stamp_ns: int) -> None:
        """One camera frame; returns once the server took it (or refused it)."""
        seen = self.server.images_received + self.server.images_rejected
        self.camera.publish(to_image_msg(IMAGE, Time(nanoseconds=stamp_ns).to_msg(), "camera"))
        assert self.spin_until(lambda: self.server.images_received + self.server.images_rejected > seen)

    def request(self, not_before_ns: int, timeout=5.0, **fields):
        future = self.service.call_async(
            GetActionChunk.Request(not_before=Time(nanoseconds=not_before_ns).to_msg(), timeout=timeout, **fields)
        )
        assert self.spin_until(future.done, timeout=timeout + 10), "the policy server did not answer"
        return future.result()

    def diagnostic(self, kind: str) -> DiagnosticStatus | None:
        return next((s for s in self.statuses if any(v.key == "kind" and v.value == kind for v in s.values)), None)

    def close(self):
        self.client.destroy_node()
        self.executor.shutdown()
        self.thread.join(timeout=10)
        self.server.destroy_node()


@pytest.fixture
def serve(rclpy_context):
    harnesses = []

    def start(policy=None, **overrides):
        harness = Harness(rclpy_context, policy, [Parameter(k, value=v) for k, v in overrides.items()])
        harnesses.append(harness)
        return harness

    yield start
    for harness in harnesses:
        harness.close()


def stamp_of(response) -> int:
    return Time.from_msg(response.chunk.header.stamp).nanoseconds


def actions(response) -> np.ndarray:
    return np.asarray(response.chunk.actions).reshape(8, 7)


def test_a_frame_stamped_in_the_future_is_refused_and_does_not_freeze_the_input(serve):
    """It was kept (sorted by stamp) and served for every later request, whatever came after it."""
    g = serve(CountingBackend())
    now = time.time_ns()
    g.publish(now + 60 * SECOND)  # a camera whose clock runs a minute ahead, once
    g.publish(now)
    served = g.request(now - SECOND)
    assert served.success, served.message
    assert stamp_of(served) == now
    later = time.time_ns()
    g.publish(later)
    assert stamp_of(g.request(later)) == later
    assert g.spin_until(lambda: g.diagnostic("future_image"))
    status = g.diagnostic("future_image")
    assert status.level == DiagnosticStatus.ERROR and "in the future" in status.message
    assert g.server.images_rejected == 1


def test_future_observations_are_refused_and_a_new_episode_forgets_them(serve):
    g = serve(CountingBackend(), future_tolerance=1000.0)  # accepted while the tolerance is large
    now = time.time_ns()
    g.publish(now + 30 * SECOND)
    (result,) = g.server.set_parameters([Parameter("future_tolerance", value=0.1)])
    assert result.successful, result.reason
    refused = g.request(now - SECOND)
    assert not refused.success and "in the future" in refused.message, refused.message
    # the first request of a new episode drops it; the next frame is served
    future = g.service.call_async(
        GetActionChunk.Request(
            not_before=Time(nanoseconds=now - SECOND).to_msg(), timeout=10.0, episode_id="e1", instruction="lift"
        )
    )
    assert g.spin_until(lambda: g.server._waiting)
    fresh = time.time_ns()
    g.publish(fresh)
    assert g.spin_until(future.done, timeout=20)
    assert future.result().success, future.result().message
    assert stamp_of(future.result()) == fresh


def test_the_request_starts_its_episode_whatever_the_instruction_topic_says(serve):
    """The episode manager publishes the instruction and requests the chunk at once: the request
    must not be served with the previous instruction or an unreset ensemble."""
    backend = CountingBackend()
    g = serve(backend, temporal_ensembling=True, ensemble_decay=50.0)

    def chunk(episode, instruction, step):
        stamp = time.time_ns()
        g.publish(stamp)
        served = g.request(stamp, episode_id=episode, instruction=instruction, step=step)
        assert served.success, served.message
        return actions(served)

    np.testing.assert_array_equal(chunk("e1", "lift the cube", 0), 1.0)
    blended = chunk("e1", "lift the cube", 4)
    np.testing.assert_array_equal(blended[:4], 1.0)  # decay 50: the oldest prediction wins
    np.testing.assert_array_equal(blended[4:], 2.0)
    np.testing.assert_array_equal(chunk("e2", "stack the cubes", 0), 3.0)  # a new episode: ensemble reset
    assert backend.instructions == ["lift the cube", "lift the cube", "stack the cubes"]
    assert backend.resets == 2
    # the topic's instruction comes late: it does not restart the episode the request started
    received = g.server.instructions_received
    g.instruction.publish(String(data="stack the cubes"))
    assert g.spin_until(lambda: g.server.instructions_received > received)
    np.testing.assert_array_equal(chunk("e2", "stack the cubes", 4)[:4], 3.0)
    assert backend.resets == 2


def test_a_requests_sampling_seed_reaches_the_backend_when_its_episode_starts(serve):
    """sampling_seed >= 0 restarts the backend's draws at the episode's start; -1 (the default)
    lets it keep drawing; a request of the running episode resets nothing."""
    backend = CountingBackend()
    g = serve(backend)
    for episode, seed in (("e1", 5), ("e1", 5), ("e2", -1), ("e3", 0)):
        stamp = time.time_ns()
        g.publish(stamp)
        served = g.request(stamp, episode_id=episode, instruction="lift", sampling_seed=seed)
        assert served.success, served.message
    assert backend.sampling_seeds == [5, None, 0]


def test_ensembling_set_at_run_time_applies_from_the_next_episode(serve):
    """It was read once at start: setting it reported success and changed nothing."""
    backend = CountingBackend()
    g = serve(backend)

    def start_episode(instruction):
        resets = backend.resets
        g.instruction.publish(String(data=instruction))
        assert g.spin_until(lambda: backend.resets > resets)

    def chunk(step):
        stamp = time.time_ns()
        g.publish(stamp)
        served = g.request(stamp, step=step)
        assert served.success, served.message
        return actions(served)

    start_episode("lift the cube")
    np.testing.assert_array_equal(chunk(0), 1.0)
    results = g.server.set_parameters(
        [Parameter("temporal_ensembling", value=True), Parameter("ensemble_decay", value=50.0)]
    )
    assert all(r.successful for r in results), [r.reason for r in results]
    np.testing.assert_array_equal(chunk(4), 2.0)  # this episode goes on as it began
    start_episode("lift the cube again")
    np.testing.assert_array_equal(chunk(0), 3.0)
    blended = chunk(4)
    np.testing.assert_array_equal(blended[:4], 3.0)
    np.testing.assert_array_equal(blended[4:], 4.0)


def test_a_backend_error_of_any_type_fails_the_request_and_the_server_keeps_serving(serve):
    """Only ValueError was caught: a torch RuntimeError escaped the service callback (no answer)."""
    backend = CountingBackend()
    g = serve(backend)
    backend.fail = RuntimeError("CUDA error: out of memory")
    stamp = time.time_ns()
    g.publish(stamp)
    failed = g.request(stamp)
    assert not failed.success
    assert "RuntimeError: CUDA error: out of memory" in failed.message
    assert g.spin_until(lambda: g.diagnostic("policy_error"))
    status = g.diagnostic("policy_error")
    assert status.level == DiagnosticStatus.ERROR and "out of memory" in status.message
    served = g.request(stamp)
    assert served.success, served.message
    np.testing.assert_array_equal(actions(served), 1.0)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("temperature", -1.0, "must be >= 0"),
        ("temperature", math.nan, "finite"),
        ("translation_scale", 0.0, "must be > 0"),
        ("ensemble_decay", math.nan, "finite"),
        ("ensemble_decay", 1e6, "must be in"),
        ("future_tolerance", -1.0, "must be >= 0"),
        ("device", "quantum", "torch device"),
        ("backend", "openvla", "unknown policy backend 'openvla'"),
        ("marker_frame", "", "must not be empty"),
    ],
)
def test_out_of_range_parameters_are_refused_with_the_reason_and_change_nothing(serve, name, value, reason):
    g = serve()  # the scripted expert, from the parameters
    backend, before = g.server.backend, g.server.get_parameter(name).value
    (result,) = g.server.set_parameters([Parameter(name, value=value)])
    assert not result.successful, f"{name}={value!r} was accepted"
    assert reason in result.reason, result.reason
    assert g.server.get_parameter(name).value == before
    assert g.server.backend is backend  # the deployed policy is kept


def test_bad_start_up_parameters_are_a_clear_error(rclpy_context):
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        PolicyServer(context=rclpy_context, parameter_overrides=[Parameter("temperature", value=-1.0)])


def test_a_checkpoint_that_does_not_load_is_refused_and_the_deployed_one_kept(tmp_path, serve):
    checkpoint = small_policy().save_pretrained(tmp_path / "vla")
    g = serve(backend="vla", checkpoint=str(checkpoint))
    deployed = g.server.backend
    (result,) = g.server.set_parameters([Parameter("checkpoint", value=str(tmp_path / "missing"))])
    assert not result.successful and "is not a VLA checkpoint" in result.reason, result.reason
    assert g.server.backend is deployed and g.server.get_parameter("checkpoint").value == str(checkpoint)
    (result,) = g.server.set_parameters([Parameter("temperature", value=0.5)])
    assert result.successful, result.reason
    assert g.server.backend is not deployed and g.server.backend.temperature == 0.5
    stamp = time.time_ns()
    g.publish(stamp)
    served = g.request(stamp, episode_id="e1", instruction="pick up the red cube")
    assert served.success, served.message
    assert served.chunk.policy_id == f"vla/{checkpoint}"
