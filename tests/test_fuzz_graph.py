"""Property-based fuzz test (hypothesis) of every input of the running sim graph (issue 28).

One sim graph (the real node processes on DDS) serves the whole module. Hypothesis draws, from
fixed seeds (``derandomize``), camera images, action chunks, chunk requests and instructions,
resets, episode goals, labels, recorder requests and parameter changes of every node, and each
answer is checked against docs/safety.md: a bad input is refused with a reason and changes
nothing; a valid one is acted on safely. There is no shrinking: the example reported is the first
one that failed (a dead node would make every later example fail too). The last test checks that
every node process is alive and answering with the parameter values it started with, and that a
scripted-expert episode still succeeds; it prints the inputs tried per category (``pytest -s``),
writes them to fuzz_counts.json in its tmp_path, and fails if too few were tried. Run the module
as a whole: the counts are the other tests'.
"""

import array
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import Point, Pose, Quaternion
from graph_helpers import ArmDriver, diagnostic, module_sim_graph, spin_until
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rcl_interfaces.msg import Parameter as ParameterMsg
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.task import Future
from sensor_msgs.msg import Image
from std_msgs.msg import String

from wmpo_episodes import episode_manager_node, recorder_node
from wmpo_interfaces.action import RunEpisode
from wmpo_interfaces.msg import ActionChunk, EpisodeSummary, TaskState
from wmpo_interfaces.srv import GetActionChunk, LabelEpisode, ResetEpisode, StartRecording, StopRecording
from wmpo_policy import policy_server_node
from wmpo_robot_io import arm_node, camera_node, sim_node
from wmpo_robot_io.images import to_image_msg
from wmpo_robot_io.sim.tasks import TASKS

pytestmark = pytest.mark.graph

COUNTS: Counter = Counter()  # inputs tried, per category
SEEN: Counter = Counter()  # "category: what the graph did with them", e.g. "images: refused"
MINIMUM = {  # the final test fails below these: the fuzz must not pass vacuously
    "images": 50,
    "chunks": 30,
    "chunk_requests": 30,
    "instructions": 20,
    "task_states": 30,
    "resets": 20,
    "episode_goals": 15,
    "labels": 15,
    "recorder_requests": 40,
    "parameters": 300,
}
IMAGE_DEFECTS = ("encoding", "size", "step", "data", "stamp")
CHUNK_DEFECTS = ("non_finite", "length", "horizon", "action_dim", "stamp")
BOTH_WAYS = {  # and each category saw bad inputs refused and good ones acted on, at least this often
    "images: refused": 10,
    "images: taken": 10,
    "chunks: refused": 10,
    "chunks: executed": 10,
    "chunk_requests: refused": 10,
    "chunk_requests: served": 10,
    "task_states: chunk served": 5,
    "resets: refused": 5,
    "resets: succeeded": 5,
    "episode_goals: rejected": 3,
    "episode_goals: ended": 5,
    "episode_goals: long ended success": 1,  # labelled by the operator
    "recorder_requests: refused": 10,
    "recorder_requests: recorded": 5,
    "parameters: refused": 50,
    "parameters: accepted": 20,
    **{f"images: {kind} refused": 2 for kind in IMAGE_DEFECTS},  # each defect alone, too
    **{f"chunks: {kind} refused": 2 for kind in CHUNK_DEFECTS},
}
SECOND = 10**9
MAX_INT64 = 2**63 - 1
OUTCOMES = recorder_node.OUTCOMES  # success, failure, incomplete
BOX_MARGIN = 0.015  # m: the controller's tracking error past a clipped target


def fuzz(examples: int):
    """Seeded, bounded, no shrinking (the graph is live: report the first failing input)."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        print_blob=False,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# -- the graph ------------------------------------------------------------------------------------
# Every checked parameter of every node of the sim graph, as the nodes declare them.
CHECKED = {
    "camera": {**camera_node.PARAMETERS, **sim_node.CAMERA_PARAMETERS},
    "arm": {
        **arm_node.PARAMETERS,
        **{f"safety.{key}": spec for key, spec in arm_node.SAFETY_PARAMETERS.items()},
        **sim_node.ARM_PARAMETERS,
    },
    "policy_server": policy_server_node.PARAMETERS,
    "recorder": recorder_node.PARAMETERS,
    "episode_manager": episode_manager_node.PARAMETERS,
}
RCLPY_RUN_TIME = {"use_sim_time"}  # rclpy's own run-time parameter (a bool); its others are read-only


SERVICES = {
    "policy_server/get_action_chunk": GetActionChunk,
    "episode_manager/label": LabelEpisode,
    "recorder/start": StartRecording,
    "recorder/stop": StopRecording,
}


class Inputs:
    """The test node's clients and publishers, discovered once for the module (a client created
    per example waits for discovery each time: seconds on a loaded machine)."""

    def __init__(self, node, processes):
        self.node = node
        self.clients = {name: node.create_client(kind, name) for name, kind in SERVICES.items()}
        for name, client in self.clients.items():
            if not client.wait_for_service(timeout_sec=90):
                processes.check()
                raise TimeoutError(f"service {name} not available within 90 s")
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.instruction = node.create_publisher(String, "instruction", latched)
        self.task_state = node.create_publisher(TaskState, "sim/task_state", 10)
        self.camera = node.create_publisher(Image, "camera/image_raw", 10)
        ready = [self.task_state, self.camera]
        assert spin_until(node, lambda: all(p.get_subscription_count() >= 1 for p in ready), timeout=30)

    def call(self, name: str, request, timeout: float = 30.0):
        return answer(self.node, self.clients[name].call_async(request), timeout, name)

    def chunk(self, not_before: TimeMsg, timeout: float = 1.0, **fields):
        request = GetActionChunk.Request(not_before=not_before, timeout=timeout, **fields)
        return self.call("policy_server/get_action_chunk", request, 15.0)

    def observation(self, state: TaskState, stamp: TimeMsg | None = None) -> TimeMsg:
        """Publish ``state`` (stamped ``stamp``, default now) and a camera frame stamped now: a
        request for that frame is served from ``state``, whichever of the two arrives first."""
        frame = self.node.get_clock().now().to_msg()
        state.header.stamp = stamp or frame
        self.task_state.publish(state)
        self.camera.publish(to_image_msg(np.zeros((16, 16, 3), np.uint8), frame, "camera"))
        return frame


graph = module_sim_graph("fuzz_graph")


@pytest.fixture(scope="module")
def arm(graph):
    return ArmDriver(graph[1])


@pytest.fixture(scope="module")
def inputs(graph):
    processes, node, _ = graph
    return Inputs(node, processes)


class Declared(NamedTuple):
    """A node's parameters as it declared them: its parameter client, the values it started
    with, the read-only ones (from its own descriptors)."""

    client: AsyncParameterClient
    values: dict
    read_only: set


@pytest.fixture(scope="module")
def parameters(graph):
    """{node: Declared}, read before anything was fuzzed."""
    processes, node, _ = graph
    out = {}
    for name in CHECKED:
        client = AsyncParameterClient(node, name)
        assert client.wait_for_services(timeout_sec=60), f"{name}: no parameter services"
        listed = answer(node, client.list_parameters(), 30, f"{name} list_parameters").result.names
        described = answer(node, client.describe_parameters(listed), 30, f"{name} describe_parameters")
        read_only = {d.name for d in described.descriptors if d.read_only}
        out[name] = Declared(client, get_values(node, client, listed), read_only)
    return out


@pytest.fixture(scope="module")
def box(parameters):
    """The arm's workspace box widened by BOX_MARGIN (lowest, highest corner) and max_chunk_age."""
    safety = parameters["arm"].values
    margin = np.full(3, BOX_MARGIN)
    low, high = np.array(safety["safety.workspace_min"]) - margin, np.array(safety["safety.workspace_max"]) + margin
    return low, high, safety["safety.max_chunk_age"]


def answer(node, future, timeout: float, what: str):
    node.spin_until(future, timeout)
    assert future.done(), f"{what}: no answer within {timeout:.0f} s"
    return future.result()


def get_values(node, client, names) -> dict:
    values = answer(node, client.get_parameters(list(names)), 30, "get_parameters").values
    return {name: parameter_value_to_python(value) for name, value in zip(names, values, strict=True)}


def now_ns(node) -> int:
    return node.get_clock().now().nanoseconds


def reset_arm(arm, seed: int = 0):
    """Reset to a Lift episode; the reset's answer (its stamp is the newest camera frame's)."""
    response = answer(arm.node, arm.reset_client.call_async(ResetEpisode.Request(task="Lift", seed=seed)), 60, "reset")
    assert response.success, response.message
    return response


# -- strategies ------------------------------------------------------------------------------------
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, -1e-300, 1e300, -1e300, 3.4e38, -3.4e38]


RECENT = st.one_of(st.just(("now", 0)), st.tuples(st.just("past"), st.integers(1, 20 * SECOND)))


def stamps():
    """(kind, offset): a stamp relative to the clock when it is built (build_stamp)."""
    return st.one_of(
        RECENT,
        st.tuples(st.just("negative"), st.integers(-(2**31), -1)),
        st.tuples(st.just("zero"), st.just(0)),
        st.tuples(st.just("old"), st.integers(40 * SECOND, 600 * SECOND)),
        st.tuples(st.just("future"), st.integers(10 * SECOND, 10**6 * SECOND)),
        st.tuples(st.just("nanosec"), st.integers(SECOND, 2**32 - 1)),  # nanosec out of [0, 1e9)
        st.tuples(st.just("max"), st.just(0)),
    )


def build_stamp(stamp, clock_ns: int) -> TimeMsg:
    kind, offset = stamp
    if kind == "negative":
        return TimeMsg(sec=offset, nanosec=0)
    if kind == "zero":
        return TimeMsg()
    if kind == "max":
        return TimeMsg(sec=2**31 - 1, nanosec=2**32 - 1)
    if kind == "nanosec":
        return TimeMsg(sec=clock_ns // SECOND, nanosec=offset)
    sec, nanosec = divmod(clock_ns + (offset if kind == "future" else -offset), SECOND)
    return TimeMsg(sec=sec, nanosec=nanosec)


def stamp_ns(stamp: TimeMsg) -> int:
    return stamp.sec * SECOND + stamp.nanosec


def not_a_time(stamp: TimeMsg) -> bool:
    """builtin_interfaces/Time: sec >= 0 (rclpy refuses negative seconds), nanosec < 1e9."""
    return stamp.sec < 0 or stamp.nanosec >= SECOND


def defect_sets(kinds, which: str):
    """The defects of one input: none ("none", "far": a valid input), one of ``kinds`` by name, or
    "several". Tests are parametrized by ``which``: hypothesis alone drew some kinds seldom or never."""
    if which in ("none", "far"):
        return st.just(set())
    if which == "several":
        return st.sets(st.sampled_from(kinds), min_size=2)
    return st.just({which})


@st.composite
def images(draw, which: str):
    """(encoding, height, width, step, data length, stamp, defects): a valid rgb8/bgr8 image (rows
    tight or padded, up to 640 x 480) with one defect, several or none: any other encoding, sizes 0
    to 2**32-1, short rows, data empty, short, long or of any length, a stamp that is not a time or
    is in the future."""
    encoding = draw(st.sampled_from(["rgb8", "bgr8"]))
    height, width = draw(st.one_of(st.tuples(st.integers(1, 64), st.integers(1, 64)), st.just((480, 640))))
    step = width * 3 + draw(st.sampled_from([0, 0, 1, 5, 64]))
    n, stamp = step * height, draw(RECENT)
    defects = draw(defect_sets(IMAGE_DEFECTS, which))
    if "encoding" in defects:
        invalid = ["RGB8", "rgba8", "mono8", "mono16", "32FC1", "yuv422", "jpeg", "", "rgb8 "]
        encoding = draw(st.one_of(st.sampled_from(invalid), TEXT))
    if "size" in defects:
        height, width = draw(st.sampled_from([(0, width), (height, 0), (0, 0), (2**31, width), (height, 2**32 - 1)]))
    if "step" in defects:
        step = draw(st.one_of(st.integers(0, max(0, width * 3 - 1)), st.integers(0, 2**32 - 1)))
    step = min(step, 2**32 - 1)
    if "data" in defects:
        n = draw(st.one_of(st.just(0), st.integers(1, 16).map(lambda k: step * height + k), st.integers(0, 4096)))
        n = max(0, n - draw(st.integers(0, 16)))
    if n > 1_300_000:  # bounded: a large image is ~1 MB
        n = draw(st.integers(0, 4096))
    if "stamp" in defects:
        stamp = draw(stamps().filter(lambda s: s[0] not in ("now", "past")))
    return encoding, height, width, step, n, stamp, defects


def image_refusal(msg: Image, clock_ns: int, tolerance_ns: int) -> str | None:
    """Why the policy server must refuse ``msg`` (docs/safety.md), or None."""
    if not_a_time(msg.header.stamp):
        return "not a time"
    if msg.encoding not in ("rgb8", "bgr8"):
        return "encoding"
    if msg.height == 0 or msg.width == 0:
        return "empty"
    if msg.step < msg.width * 3 or len(msg.data) != msg.step * msg.height:
        return "size"
    if stamp_ns(msg.header.stamp) > clock_ns + tolerance_ns:
        return "future"
    return None


@st.composite
def chunks(draw, which: str):
    """(horizon, action_dim, values, stamp, defects): a valid chunk (1 to 16 steps of 7 finite
    values stamped now, in the controller's range or, with ``which`` "far", up to 50 times past
    it: out of the box) with one defect, several or none: non-finite values, the wrong number of
    values, horizon or action_dim, a stale stamp or one that is not a time."""
    horizon, action_dim = draw(st.integers(1, 16)), 7
    value = st.floats(-50, 50) if which == "far" else st.one_of(st.floats(-1, 1), st.floats(-50, 50))
    values = draw(st.lists(value, min_size=horizon * 7, max_size=horizon * 7))
    stamp = draw(st.one_of(st.just(("now", 0)), st.tuples(st.just("past"), st.integers(1, 10 * SECOND))))
    defects = draw(defect_sets(CHUNK_DEFECTS, which))
    if "non_finite" in defects:
        for _ in range(draw(st.integers(1, 3))):
            index = draw(st.integers(0, len(values) - 1))
            values[index] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    if "length" in defects:
        values = values[: draw(st.integers(0, len(values) - 1))] if draw(st.booleans()) else values + [0.0] * 3
    if "horizon" in defects:
        horizon = draw(st.sampled_from([0, horizon + 1, 2**31, 2**32 - 1]))
    if "action_dim" in defects:
        action_dim = draw(st.one_of(st.integers(0, 12).filter(lambda d: d != 7), st.just(2**32 - 1)))
        if horizon * action_dim <= 16 * 12 and draw(st.booleans()):  # consistent, only not 7 wide
            values = draw(st.lists(st.floats(-1, 1), min_size=horizon * action_dim, max_size=horizon * action_dim))
    if "stamp" in defects:
        stamp = draw(stamps().filter(lambda s: s[0] not in ("now", "past", "future")))
    return horizon, action_dim, values, stamp, defects


def chunk_refused(chunk: ActionChunk, age_ns: int, max_age: float) -> bool:
    """Whether the arm must refuse ``chunk`` whole (docs/safety.md)."""
    k, d, values = chunk.horizon, chunk.action_dim, chunk.actions
    return (
        not_a_time(chunk.header.stamp)
        or len(values) != k * d
        or k == 0
        or d != 7
        or age_ns > max_age * SECOND
        or not np.all(np.isfinite(np.asarray(values, dtype=np.float64)))
    )


@st.composite
def task_states(draw):
    """(stamp, TaskState): the privileged state of a camera frame ("frame": Inputs.observation)
    with the cube's one pose, each pose finite or holding any values (NaN, inf, 1e300), or with
    names and poses of any length, or stamped anywhere else."""
    kind = draw(st.sampled_from(["values", "values", "values", "lengths", "stamp"]))
    stamp = draw(stamps()) if kind == "stamp" else ("frame", 0)

    def pose():
        wild = draw(st.sampled_from([False, False, True]))
        coordinate = st.one_of(st.floats(-2, 2), st.sampled_from(SPECIAL_FLOATS)) if wild else st.floats(-2, 2)
        position = Point(x=draw(coordinate), y=draw(coordinate), z=draw(coordinate))
        orientation = Quaternion(x=draw(coordinate), y=draw(coordinate), z=draw(coordinate), w=draw(coordinate))
        return Pose(position=position, orientation=orientation)

    names, count = ["cube_main"], 1
    if kind != "values":
        names = draw(st.one_of(st.just(names), st.lists(TEXT, max_size=3)))
        count = draw(st.one_of(st.just(len(names)), st.integers(0, 3)))
    task = draw(st.one_of(st.just("Lift"), TASK_NAMES))
    state = TaskState(task=task, step=draw(st.integers(0, 2**32 - 1)), object_names=names)
    state.object_poses = [pose() for _ in range(count)]
    state.eef_pose = pose()
    state.gripper_opening = draw(st.one_of(st.floats(0, 0.08), st.sampled_from(SPECIAL_FLOATS)))
    return stamp, state


def timeouts():
    return st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e-9, 0.0]),
        st.floats(0.0, 0.5),
    )


def int64s():
    return st.one_of(st.integers(-(2**63), MAX_INT64), st.sampled_from([-1, 0, 1, MAX_INT64, -(2**63)]))


TASK_NAMES = st.one_of(
    st.just("Lift"),
    st.sampled_from(["", "lift", "Lift ", "Stack", "../Lift", "Lift/../../etc", "x" * 300, "Lïft\n"]),
    TEXT,
)


def episode_ids():
    return st.one_of(
        st.from_regex(r"[A-Za-z0-9_\-]{1,40}", fullmatch=True),
        st.sampled_from(["", ".", "..", ".hidden", "a/b", "../escape", "/tmp/abs", "x" * 300, "é" * 130]),
        TEXT,
    )


def episode_id_refusal(episode_id: str) -> str | None:
    """Why the recorder must refuse to open a bag for ``episode_id`` (a file name in output_dir)."""
    if not episode_id or "/" in episode_id or episode_id.startswith("."):
        return "not a file name"
    if len(episode_id.encode()) > 250:  # the bag's <id>_0.mcap must fit a 255-byte file name
        return "too long"
    return None


@st.composite
def summaries(draw, episode_id):
    valid = st.builds(TimeMsg, sec=st.integers(0, 2**31 - 1), nanosec=st.integers(0, SECOND - 1))
    anything = st.builds(TimeMsg, sec=st.integers(-(2**31), 2**31 - 1), nanosec=st.integers(0, 2**32 - 1))
    time_msg = st.one_of(valid, valid, valid, anything)
    return EpisodeSummary(
        episode_id=episode_id,
        task=draw(TASK_NAMES),
        outcome=draw(st.one_of(st.sampled_from(OUTCOMES), TEXT)),
        seed=draw(int64s()),
        num_steps=draw(st.one_of(st.just(0), st.sampled_from([1, 2**32 - 1]))),  # > 0: the stop drains
        success_step=draw(st.integers(-(2**31), 2**31 - 1)),
        start_time=draw(time_msg),
        end_time=draw(time_msg),
    )


def summary_refusal(summary: EpisodeSummary, stopping: bool) -> str | None:
    """Why the recorder must refuse this summary (start) or label (stop), or None."""
    if not_a_time(summary.start_time) or not_a_time(summary.end_time):
        return "a time that is not one"
    if stopping and summary.outcome not in OUTCOMES:
        return "unknown outcome"
    return None


def parameter_values(current):
    """Values of every type for a parameter now ``current``: its own type more often, near the
    edges of its range, and every other type."""
    floats = st.one_of(st.sampled_from(SPECIAL_FLOATS), st.floats(-100, 100), st.sampled_from([0.05, 0.5, 30.0]))
    ints = st.one_of(
        st.sampled_from([-1, 0, 1, 2, 7, 100_000, 100_001, 2**31, MAX_INT64, -(2**63)]), st.integers(-10, 200)
    )
    strings = st.one_of(
        st.sampled_from(
            ["", " ", "all", "none", "failures", "mcap", "sqlite3", "cpu", "cuda:1", "quantum", "mps", "vla"]
            + ["scripted_expert", "euler", "ddim", "/", "..", "Lift", "realsense", "sim", "world", "/tmp"]
        ),
        TEXT,
    )
    typed = {
        Parameter.Type.BOOL: st.booleans(),
        Parameter.Type.INTEGER: ints,
        Parameter.Type.DOUBLE: floats,
        Parameter.Type.STRING: strings,
        Parameter.Type.BOOL_ARRAY: st.lists(st.booleans(), max_size=8),
        Parameter.Type.INTEGER_ARRAY: st.lists(ints, max_size=8),
        Parameter.Type.DOUBLE_ARRAY: st.one_of(
            st.lists(floats, max_size=8),
            st.lists(st.floats(-1.0, 1.5), min_size=3, max_size=3),  # a workspace corner
            st.lists(st.floats(0.0, 0.5), min_size=7, max_size=7),  # a noise std per action dimension
        ),
        Parameter.Type.STRING_ARRAY: st.lists(strings, max_size=4),
    }
    own = Parameter.Type.from_parameter_value(current)
    any_type = st.sampled_from(list(typed)).flatmap(lambda t: typed[t].map(lambda v: (t, v)))
    not_set = st.just((Parameter.Type.NOT_SET, None))
    return st.one_of(typed[own].map(lambda v: (own, v)), typed[own].map(lambda v: (own, v)), any_type, not_set)


def parameter_refusal(node: str, name: str, value, values: dict) -> str | None:
    """Why ``node`` must refuse ``name := value`` given its other ``values``, or None (valid)."""
    spec = CHECKED[node].get(name)
    if spec is None:
        return None if name in RCLPY_RUN_TIME else "not a run-time parameter of the node"
    if spec.read_only:
        return "read-only"
    if spec.check is not None and spec.check(value):
        return spec.check(value)
    if node == "arm" and name.startswith("safety."):
        return arm_node.limits_reason({**values, name: value})
    return None


# -- what the fuzz found, kept as explicit cases --------------------------------------------------------
def test_an_image_stamped_before_1970_is_refused_and_the_policy_server_lives(graph, arm):
    """It raised in the subscription callback (rclpy Time refuses negative seconds): the policy
    server's process died."""
    processes, node, _ = graph
    assert spin_until(node, lambda: arm.bad_images.get_subscription_count() >= 2, timeout=30)
    image = Image(encoding="rgb8", height=1, width=1, step=3, data=bytes(3))
    image.header.stamp = TimeMsg(sec=-1)
    arm.bad_images.publish(image)
    reason = "rejected image: stamp -1 s is not a time (negative seconds)"
    assert spin_until(node, lambda: any(s.message == reason for s in arm.diagnostics), timeout=20), reason
    processes.check()


@pytest.mark.parametrize(
    ("stamp", "timeout", "reason"),
    [
        (TimeMsg(sec=-5), 1.0, "not_before -5 s is not a time (negative seconds)"),
        (TimeMsg(sec=1, nanosec=10**9), 1.0, "not_before nanosec 1000000000 must be < 1000000000"),
        (None, math.nan, "timeout must be a finite number, got nan"),
        (None, math.inf, "timeout must be a finite number, got inf"),
        (None, -1.0, "timeout must be >= 0, got -1.0"),
    ],
)
def test_a_chunk_request_with_a_bad_stamp_or_timeout_is_refused_at_once(graph, arm, inputs, stamp, timeout, reason):
    """A negative not_before killed the policy server; a NaN or infinite timeout waited for ever
    (Deadlines never expires it), and held the service for every later request."""
    processes, node, _ = graph
    reset_arm(arm)
    response = inputs.chunk(stamp or node.get_clock().now().to_msg(), timeout)
    assert not response.success and response.message == reason, response.message
    processes.check()


def test_a_task_state_whose_names_and_poses_differ_is_dropped_and_the_server_keeps_serving(graph, arm, inputs):
    """The scripted expert's privileged state was converted when a request used it: names and
    poses of different lengths raised in the service callback and the policy server died."""
    processes, node, _ = graph
    frame = inputs.observation(TaskState(task="Lift", object_names=["cube_main"], object_poses=[]))
    response = inputs.chunk(frame, timeout=0.5)
    assert not response.success and "no complete observation" in response.message, response.message  # dropped
    assert_still_serving(arm, inputs)
    processes.check()


def test_a_chunk_planned_from_non_finite_state_is_not_served(graph, arm, inputs):
    """The scripted expert planned NaN actions from an end-effector at inf, and the server served
    and published them (bags keep ~/action_chunk: behaviour cloning learns from it)."""
    processes, node, _ = graph
    cube = Pose(position=Point(x=0.0, y=0.0, z=0.82), orientation=Quaternion(w=1.0))
    state = TaskState(task="Lift", object_names=["cube_main"], object_poses=[cube])
    state.eef_pose.position.x = math.inf
    response = inputs.chunk(inputs.observation(state), timeout=5.0)
    assert not response.success and "non-finite value(s) in the chunk" in response.message, response.message
    processes.check()


def test_a_chunk_stamped_before_1970_is_refused_with_the_reason(graph, arm):
    """The arm's execute callback raised: rclpy aborted the goal with an empty message and
    nothing on /diagnostics."""
    processes, node, _ = graph
    reset_arm(arm)
    chunk = ActionChunk(horizon=1, action_dim=7, actions=[0.0] * 7)
    chunk.header.stamp = TimeMsg(sec=-1)
    wrapped = arm.execute_chunk(chunk)
    assert wrapped.status == GoalStatus.STATUS_ABORTED and wrapped.result.steps_executed == 0
    assert wrapped.result.message == "chunk refused: stamp -1 s is not a time (negative seconds)"
    assert spin_until(node, lambda: diagnostic(arm, "bad_stamp"), timeout=20)
    processes.check()


@pytest.fixture
def recorder(graph, inputs):
    """(start, stop): keyword fields -> the recorder's answer; the recorder is alive afterwards."""
    yield (
        lambda **fields: inputs.call("recorder/start", StartRecording.Request(**fields)),
        lambda **fields: inputs.call("recorder/stop", StopRecording.Request(**fields)),
    )
    graph[0].check()


def test_the_recorder_refuses_a_summary_whose_time_is_malformed(recorder):
    """A time with nanosec >= 1e9 next to a large sec does not fit an int32 once normalised: the
    label's serialisation raised struct.error in the stop callback and the recorder died."""
    start, stop = recorder
    bad = EpisodeSummary(episode_id="bad_time", outcome="failure", end_time=TimeMsg(sec=2**31 - 1, nanosec=2**32 - 1))
    refused = start(summary=bad)
    assert not refused.success and "end_time" in refused.message, refused.message
    assert start(summary=EpisodeSummary(episode_id="bad_time")).success
    refused = stop(summary=bad, keep=True)
    assert not refused.success and "end_time nanosec 4294967295 must be < 1000000000" in refused.message
    assert stop(summary=EpisodeSummary(episode_id="bad_time", outcome="failure"), keep=False).success


def test_the_recorder_refuses_to_stop_another_episode_or_with_an_unknown_outcome(recorder):
    """Either closed the open bag: labelled with another episode's summary, or with an outcome
    that dataset building took for a finished episode."""
    start, stop = recorder
    assert start(summary=EpisodeSummary(episode_id="open_one")).success
    other = stop(summary=EpisodeSummary(episode_id="another", outcome="failure"), keep=True)
    assert not other.success and other.message == "recording open_one, not another", other.message
    odd = stop(summary=EpisodeSummary(episode_id="open_one", outcome="banana"), keep=True)
    assert not odd.success and "outcome 'banana' must be one of" in odd.message, odd.message
    assert stop(summary=EpisodeSummary(episode_id="open_one", outcome="failure"), keep=False).success


# -- the fuzz tests ----------------------------------------------------------------------------------
def rejected_images(arm) -> int:
    """The policy server's count of rejected camera images, from its latest /diagnostics."""
    counts = [
        int(v.value)
        for s in arm.diagnostics
        if s.name == "policy_server: camera input"
        for v in s.values
        if v.key == "count"
    ]
    return max(counts, default=0)


STATE = {}  # across examples: the image rejections expected so far


@pytest.mark.parametrize("which", ["none", *IMAGE_DEFECTS, "several"])
@fuzz(9)
@given(data=st.data())
def test_fuzzed_images_are_refused_with_a_report_or_taken(graph, arm, which, data):
    processes, node, _ = graph
    if "expected" not in STATE:
        assert spin_until(node, lambda: arm.bad_images.get_subscription_count() >= 2, timeout=30)
        STATE["expected"] = rejected_images(arm)
    encoding, height, width, step, n, stamp, defects = data.draw(images(which), label="image")
    clock = now_ns(node)
    msg = Image(encoding=encoding, height=height, width=width, step=step, data=bytes(n))
    msg.header.stamp = build_stamp(stamp, clock)
    refusal = image_refusal(msg, clock, int(0.1 * SECOND))
    sentinel = Image(encoding="fuzz-sentinel", height=1, width=1, step=3, data=bytes(3))  # always refused
    COUNTS["images"] += 1
    arm.bad_images.publish(msg)
    arm.bad_images.publish(sentinel)
    STATE["expected"] += (refusal is not None) + 1
    spin_until(node, lambda: rejected_images(arm) >= STATE["expected"], timeout=20)
    assert rejected_images(arm) == STATE["expected"], f"expected {refusal or 'taken'}"
    SEEN["images: " + ("refused" if refusal else "taken")] += 1
    SEEN[f"images: {which} {'refused' if refusal else 'taken'}"] += 1


@pytest.mark.parametrize("which", ["none", "far", *CHUNK_DEFECTS, "several"])
@fuzz(7)
@given(data=st.data())
def test_fuzzed_chunks_are_refused_whole_or_executed_inside_the_box(graph, arm, box, which, data):
    processes, node, _ = graph
    horizon, action_dim, values, stamp, defects = data.draw(chunks(which), label="chunk")
    low, high, max_age = box
    reset_arm(arm)
    msg = ActionChunk(horizon=horizon, action_dim=action_dim, actions=values)
    clock = now_ns(node)
    msg.header.stamp = build_stamp(stamp, clock)
    refused = chunk_refused(msg, clock - stamp_ns(msg.header.stamp), max_age)
    poses = len(arm.poses)
    COUNTS["chunks"] += 1
    wrapped = arm.execute_chunk(msg)
    assert wrapped is not None, "no result from arm/execute_chunk"
    result = wrapped.result
    if refused:
        assert wrapped.status == GoalStatus.STATUS_ABORTED and result.steps_executed == 0, result.message
        assert result.message.startswith("chunk refused: "), result.message
        SEEN["chunks: refused"] += 1
        SEEN[f"chunks: {which} refused"] += 1
        return
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert 1 <= result.steps_executed <= horizon
    SEEN["chunks: executed"] += 1
    SEEN[f"chunks: {which} executed"] += 1
    assert spin_until(node, lambda: len(arm.poses) >= poses + result.steps_executed, timeout=10)
    for pose in arm.poses[poses:]:
        p = pose.pose.position
        assert np.all(low <= [p.x, p.y, p.z]) and np.all([p.x, p.y, p.z] <= high), (p, low, high)


def assert_still_serving(arm, inputs) -> None:
    """A plain request for the frame of a new reset is served (a new episode_id drops older frames)."""
    served = inputs.chunk(reset_arm(arm).stamp)
    assert served.success, served.message


def assert_a_chunk(response) -> None:
    """A served chunk is 8 x 7 finite values; a refusal says why."""
    if response.success:
        chunk = response.chunk
        assert (chunk.horizon, chunk.action_dim, len(chunk.actions)) == (8, 7, 56)
        assert np.all(np.isfinite(chunk.actions)), f"a non-finite chunk was served: {chunk.actions}"
    else:
        assert response.message


@fuzz(60)
@given(
    not_before=st.one_of(st.just(("frame", 0)), stamps()),
    timeout=timeouts(),
    step=st.integers(-(2**31), 2**31 - 1),
    episode_id=st.one_of(st.just(""), TEXT),
    instruction=st.one_of(st.just(""), TEXT, st.text(max_size=5000)),
    topic=TEXT,
)
def test_fuzzed_chunk_requests_are_answered_and_the_server_keeps_serving(
    graph, arm, inputs, not_before, timeout, step, episode_id, instruction, topic
):
    """Also fuzzed: the instruction topic."""
    processes, node, _ = graph
    frame = reset_arm(arm).stamp  # the newest frame, with its privileged state
    COUNTS["instructions"] += 1
    inputs.instruction.publish(String(data=topic))
    stamp = frame if not_before[0] == "frame" else build_stamp(not_before, now_ns(node))
    COUNTS["chunk_requests"] += 1
    response = inputs.chunk(stamp, timeout, step=step, episode_id=episode_id, instruction=instruction)
    bad = not_a_time(stamp) or not (math.isfinite(timeout) and timeout >= 0)
    assert response.success == (not bad and stamp_ns(stamp) <= stamp_ns(frame)), response.message
    assert_a_chunk(response)
    SEEN["chunk_requests: " + ("served" if response.success else "refused")] += 1
    assert_still_serving(arm, inputs)


@fuzz(40)
@given(task_state=task_states())
def test_fuzzed_privileged_state_is_dropped_or_planned_from_and_no_non_finite_chunk_is_served(
    graph, arm, inputs, task_state
):
    """sim/task_state, the state the scripted expert plans from, for a frame a request is served
    from: a malformed one is dropped (the request times out), and whatever values it holds, a
    chunk served is finite (the server refuses to serve one that is not)."""
    processes, node, _ = graph
    stamp, state = task_state
    COUNTS["task_states"] += 1
    if stamp[0] == "frame":
        frame = inputs.observation(state)
    else:
        frame = inputs.observation(state, build_stamp(stamp, now_ns(node)))
    response = inputs.chunk(frame)  # both were sent before it: a second is ample, or the state was dropped
    assert_a_chunk(response)
    SEEN["task_states: chunk " + ("served" if response.success else "refused")] += 1
    assert_still_serving(arm, inputs)


@fuzz(25)
@given(task=TASK_NAMES, seed=int64s(), init_state_id=int64s())
def test_fuzzed_resets_succeed_for_known_tasks_only(graph, arm, task, seed, init_state_id):
    processes, node, _ = graph
    COUNTS["resets"] += 1
    request = ResetEpisode.Request(task=task, seed=seed, init_state_id=init_state_id)
    response = answer(node, arm.reset_client.call_async(request), 60, "arm/reset")
    assert response.success == (task in TASKS), response.message
    SEEN["resets: " + ("succeeded" if response.success else "refused")] += 1
    if not response.success:
        assert "unknown task" in response.message, response.message


@fuzz(20)
@given(outcome=st.one_of(st.sampled_from(["success", "failure", "Success", ""]), TEXT))
def test_fuzzed_labels_are_refused_when_no_episode_runs(inputs, outcome):
    COUNTS["labels"] += 1
    response = inputs.call("episode_manager/label", LabelEpisode.Request(outcome=outcome))
    assert not response.success and response.message, response.message
    SEEN["labels: refused"] += 1


@pytest.mark.parametrize("budget", ["short", "long"])
@fuzz(10)
@given(
    data=st.data(),
    task=st.one_of(st.just("Lift"), TASK_NAMES),
    instruction=st.one_of(st.just(""), TEXT, st.text(max_size=3000)),
    seed=int64s(),
    init_state_id=st.one_of(st.just(-1), int64s()),
    record_mode=st.one_of(st.sampled_from(["", "all", "failures", "none"]), TEXT),
    ending=st.sampled_from(["cancel", "success", "failure"]),
)
def test_fuzzed_episode_goals_are_rejected_or_end_with_an_outcome(
    graph, inputs, budget, data, task, instruction, seed, init_state_id, record_mode, ending
):
    """A short budget (1 to 16 steps) runs out; a long one (0: the task's, or 2**32-1) is ended
    after the first chunk by a cancel or the operator's label."""
    processes, client, episodes = graph
    max_steps = data.draw(st.integers(1, 16) if budget == "short" else st.sampled_from([0, 2**32 - 1]))
    goal = RunEpisode.Goal(
        task=task,
        instruction=instruction,
        seed=seed,
        init_state_id=init_state_id,
        max_steps=max_steps,
        record_mode=record_mode,
    )
    COUNTS["episode_goals"] += 1
    first_feedback = Future()
    handle = client.send_episode_goal(goal, lambda _: first_feedback.done() or first_feedback.set_result(True))
    assert handle is not None, "episode_manager/run_episode did not answer"
    if record_mode not in ("", "all", "failures", "none"):
        assert not handle.accepted, f"record_mode {record_mode!r} accepted"
        SEEN["episode_goals: rejected"] += 1
        return
    assert handle.accepted
    long = task in TASKS and max_steps not in range(1, 17)
    if long:  # end it after its first chunk, with a cancel or the operator's label
        result = handle.get_result_async()
        assert spin_until(client, lambda: first_feedback.done() or result.done(), timeout=60)
        assert not result.done(), "a valid episode ended before its first chunk"
        if ending == "cancel":
            handle.cancel_goal_async()
        else:
            labelled = inputs.call("episode_manager/label", LabelEpisode.Request(outcome=ending))
            assert labelled.success, labelled.message
    result = client.wait_for_result(handle, 120.0)
    summary = result.summary
    assert summary["outcome"] in OUTCOMES
    if task not in TASKS:
        assert summary["outcome"] == "incomplete" and summary["num_steps"] == 0, summary
    elif not long:
        assert summary["outcome"] != "incomplete" and summary["num_steps"] <= max_steps, summary
    else:
        assert summary["outcome"] == {"cancel": "incomplete"}.get(ending, ending), summary
    if result.bag_path:
        assert Path(result.bag_path).parent == episodes.resolve(), result.bag_path
    SEEN["episode_goals: ended"] += 1
    SEEN[f"episode_goals: {budget} ended {summary['outcome']}"] += 1


@fuzz(40)
@given(data=st.data(), episode_id=episode_ids(), keep=st.booleans(), same=st.booleans())
def test_fuzzed_recorder_requests_are_refused_or_recorded_inside_output_dir(
    graph, inputs, data, episode_id, keep, same
):
    processes, node, episodes = graph
    outside = sorted(p.name for p in episodes.parent.iterdir())
    opened = False
    try:
        summary = data.draw(summaries(episode_id))
        COUNTS["recorder_requests"] += 1
        refusal = episode_id_refusal(episode_id) or summary_refusal(summary, stopping=False)
        if refusal is None and (episodes / episode_id).exists():
            refusal = "a kept bag of that name exists"
        started = inputs.call("recorder/start", StartRecording.Request(summary=summary))
        opened = started.success
        assert started.success == (refusal is None), f"{refusal or 'valid'}: {started.message}"
        SEEN["recorder_requests: " + ("recorded" if started.success else "refused")] += 1
        label = data.draw(summaries(episode_id if same else data.draw(episode_ids())))
        COUNTS["recorder_requests"] += 1
        stopped = inputs.call("recorder/stop", StopRecording.Request(summary=label, keep=keep))
        opened = opened and not stopped.success
        if not started.success:
            assert started.message and not stopped.success, stopped.message
        else:
            assert Path(started.bag_path).parent.parent == episodes.resolve(), started.bag_path
            refusal = summary_refusal(label, stopping=True)
            if label.episode_id != episode_id:
                refusal = "another episode"
            assert stopped.success == (refusal is None), f"{refusal or 'valid'}: {stopped.message}"
            SEEN["recorder_requests: " + (("kept" if keep else "dropped") if stopped.success else "refused")] += 1
            if stopped.success and keep:
                assert Path(stopped.bag_path) == episodes.resolve() / episode_id, stopped.bag_path
        assert sorted(p.name for p in episodes.parent.iterdir()) == outside, "written beside output_dir"
    finally:
        if opened:  # close it for real: the recorder is free for the next example (or the rerun of this one)
            label = EpisodeSummary(episode_id=episode_id, outcome="incomplete")
            closed = inputs.call("recorder/stop", StopRecording.Request(summary=label))
            assert closed.success, closed.message


EVERY_PARAMETER = [(node, name) for node, specs in CHECKED.items() for name in [*specs, *RCLPY_RUN_TIME]]


@pytest.mark.parametrize(("node_name", "name"), EVERY_PARAMETER)
@fuzz(5)
@given(data=st.data())
def test_fuzzed_values_of_every_parameter_are_refused_or_valid_and_restored(graph, parameters, node_name, name, data):
    """Every declared parameter of every node, five values each (its own type more often)."""
    kind, value = data.draw(parameter_values(parameters[node_name].values[name]), label=name)
    set_and_check(graph[1], parameters[node_name], node_name, [(name, kind, value)])


@fuzz(60)
@given(data=st.data(), node_name=st.sampled_from(sorted(CHECKED)))
def test_fuzzed_parameter_sets_are_refused_or_valid_and_restored(graph, parameters, data, node_name):
    """One to three parameters in one request, undeclared names among them."""
    declared = sorted(parameters[node_name].values)
    names = data.draw(
        st.lists(st.one_of(st.sampled_from(declared), TEXT.filter(bool)), min_size=1, max_size=3, unique=True)
    )
    changes = [
        (name, *data.draw(parameter_values(parameters[node_name].values.get(name, 0.0)), label=name)) for name in names
    ]
    set_and_check(graph[1], parameters[node_name], node_name, changes)


def set_and_check(node, declared: "Declared", node_name: str, changes: list) -> None:
    """Send ``changes`` [(name, type, value)] in one SetParameters request; each accepted value
    must be valid and is then restored, each refused one has a reason and changed nothing."""
    client, started, read_only = declared
    before = get_values(node, client, [name for name, _, _ in changes if name in started])
    messages = [
        ParameterMsg(name=name, value=Parameter(name, kind, value).get_parameter_value())
        for name, kind, value in changes
    ]
    COUNTS["parameters"] += len(messages)
    results = answer(node, client.set_parameters(messages), 30, f"{node_name} set_parameters").results
    accepted = []
    values = dict(started)
    for change, result in zip(messages, results, strict=True):
        value = parameter_value_to_python(change.value)
        if result.successful:
            assert change.name in started, f"{node_name}: undeclared {change.name!r} accepted"
            assert change.name not in read_only, f"{node_name}: read-only {change.name} set to {value!r}"
            assert Parameter.Type(change.value.type) == Parameter.Type.from_parameter_value(started[change.name])
            numbers = value if isinstance(value, (list, tuple, array.array)) else [value]
            finite = all(math.isfinite(v) for v in numbers if isinstance(v, float))
            assert finite, f"{node_name}: {change.name} = {value!r} accepted"  # no parameter takes NaN or inf
            refusal = parameter_refusal(node_name, change.name, value, values)
            assert refusal is None, f"{node_name}: {change.name} = {value!r} accepted, but {refusal}"
            values[change.name] = value
            accepted.append(change.name)
            SEEN["parameters: accepted"] += 1
        else:
            assert result.reason, f"{node_name}: {change.name} refused without a reason"
            SEEN["parameters: refused"] += 1
    after = get_values(node, client, list(before))
    for name in before:
        if name not in accepted:
            assert same_value(after[name], before[name]), f"{node_name}: refused {name} changed"
    # restore, newest first, so that every state on the way was a valid one
    for name in reversed(accepted):
        restored = answer(node, client.set_parameters([Parameter(name, value=started[name])]), 30, "restore")
        assert restored.results[0].successful, restored.results[0].reason


def same_value(a, b) -> bool:
    return list(a) == list(b) if isinstance(a, (list, tuple, array.array)) else a == b


def test_every_parameter_has_its_check_and_is_read_only_as_declared(parameters):
    """The oracle above is each node's own table of checked parameters: the nodes running must
    declare exactly those (besides rclpy's), read-only where the table says so."""
    for node, (_, values, read_only) in parameters.items():
        assert set(values) - {"use_sim_time", "start_type_description_service"} == set(CHECKED[node]), node
        assert {n for n, spec in CHECKED[node].items() if spec.read_only} == read_only - {
            "start_type_description_service"
        }, node


# -- afterwards ---------------------------------------------------------------------------------------
def test_every_node_is_alive_and_unchanged_and_an_episode_still_succeeds(graph, parameters, tmp_path):
    processes, client, _ = graph
    started = time.monotonic()
    processes.check()
    alive = {name: process.poll() is None for name, process in processes.processes.items()}
    for name, (parameter_client, values, _) in parameters.items():  # each node answers, unchanged
        now = get_values(client, parameter_client, list(values))
        changed = {key for key in values if not same_value(now[key], values[key])}
        assert not changed, f"{name}: parameters left changed: {sorted(changed)}"
    result = client.run_episode("Lift", seed=0, record_mode="all", timeout=240)
    assert result.summary.get("outcome") == "success", result.summary
    processes.check()
    report = {
        "inputs_tried": dict(sorted(COUNTS.items())),
        "total": sum(COUNTS.values()),
        "what_the_graph_did": dict(sorted(SEEN.items())),
        "nodes_alive": alive,
        "final_episode": {k: result.summary[k] for k in ("outcome", "num_steps", "num_chunks")},
        "final_check_s": round(time.monotonic() - started, 1),
    }
    print("\nfuzz test of the sim graph:", json.dumps(report, indent=2))
    (tmp_path / "fuzz_counts.json").write_text(json.dumps(report, indent=2))
    short = {key: (COUNTS[key], low) for key, low in MINIMUM.items() if COUNTS[key] < low}
    short |= {key: (SEEN[key], low) for key, low in BOTH_WAYS.items() if SEEN[key] < low}
    assert not short, f"too few inputs tried (tried, minimum): {short}; run the whole module"
