"""The Foxglove layout of an episode bag shows what the recorder records, and the rviz config is
kept in step with it: an episode is recorded by the real recorder node (in this process, no graph)
and every topic a panel of src/wmpo_bringup/foxglove/episode_layout.json reads is in that bag with
a message type the panel draws; rviz displays the same topics where the two overlap."""

import json
from pathlib import Path

import pytest
import yaml
from graph_helpers import spin_until
from rclpy.qos import DurabilityPolicy, QoSProfile
from rosbags.highlevel import AnyReader
from test_recorder_errors import running_recorder, start, stop

from wmpo_episodes.layout import RECORDED_TOPICS, SUMMARY_TOPIC, SUMMARY_TYPE
from wmpo_episodes.recorder_node import LATCHED_TOPICS, message_class
from wmpo_episodes.typestore import episode_typestore
from wmpo_robot_io.arm_node import box_marker
from wmpo_robot_io.safety import SafetyLimits

ROOT = Path(__file__).resolve().parents[1]
BRINGUP = ROOT / "src" / "wmpo_bringup"
LAYOUT = BRINGUP / "foxglove" / "episode_layout.json"
RVIZ = BRINGUP / "rviz" / "wmpo.rviz"

IMAGE = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}
SCENE = {  # what the 3D panel draws (of the ROS types an episode bag can hold)
    "visualization_msgs/msg/Marker",
    "visualization_msgs/msg/MarkerArray",
    "geometry_msgs/msg/PoseStamped",
    "nav_msgs/msg/Path",
}
RVIZ_TYPES = {
    "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
    "rviz_default_plugins/Path": "nav_msgs/msg/Path",
    "rviz_default_plugins/Pose": "geometry_msgs/msg/PoseStamped",
    "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
    "rviz_default_plugins/Marker": "visualization_msgs/msg/Marker",
}
# rviz displays of the live graph that are no episode's: the world model's imagine mode, and the
# end-effector path (the whole path so far, republished every step; a bag has /arm/eef_pose).
LIVE_ONLY = {"/world_model/imagined/image_raw", "/world_model/real/image_raw", "/arm/eef_path"}


def layout() -> dict:
    return json.loads(LAYOUT.read_text())


def panel_reads(panel_id: str, config: dict) -> list[tuple[str, str]]:
    """(topic, field path) for each thing the panel reads; the field path is "" for whole messages."""
    kind = panel_id.split("!")[0]
    if kind == "Image":
        return [(config["imageMode"]["imageTopic"], "")]
    if kind == "3D":
        return [(topic, "") for topic, shown in config["topics"].items() if shown.get("visible")]
    paths = [p["value"] for p in config.get("paths", [])] + [config[k] for k in ("path", "topicPath") if k in config]
    assert paths, f"{panel_id} reads nothing"
    return [(path.split(".")[0], ".".join(path.split(".")[1:])) for path in paths]


def mosaic_panels(node) -> set[str]:
    return {node} if isinstance(node, str) else mosaic_panels(node["first"]) | mosaic_panels(node["second"])


def rviz_displays() -> dict[str, str]:
    """topic -> rviz display class, for every display with a topic."""
    displays = yaml.safe_load(RVIZ.read_text())["Visualization Manager"]["Displays"]
    return {d["Topic"]["Value"]: d["Class"] for d in displays if "Topic" in d}


def sample_messages() -> dict[str, object]:
    """One message per recorded topic as the graph would publish it (defaults where the content is moot)."""
    messages = {topic: message_class(msgtype)() for topic, msgtype in RECORDED_TOPICS.items()}
    limits = SafetyLimits((-0.40, -0.40, 0.805), (0.38, 0.40, 1.35), 0.05, 0.5)  # the simulated arm's
    messages["/arm/safety_box"] = box_marker(limits, "world")
    messages["/sim/task_state"].success = True
    messages["/instruction"].data = "pick up the red cube"
    return messages


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> list[dict[str, list]]:
    """Two episodes recorded by the recorder node: topic -> (msgtype, messages) per bag. The latched
    safety box is published once, before the first recording (as the arm does at start-up)."""
    import rclpy
    from conftest import next_domain_id

    output = tmp_path_factory.mktemp("foxglove_bags")
    domain = next_domain_id()
    context = rclpy.Context()
    bags = []
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ROS_DOMAIN_ID", str(domain))
        env.setenv("ROS_LOG_DIR", str(output / "ros_logs"))
        rclpy.init(context=context, domain_id=domain)
        try:
            record_two_episodes(context, output / "episodes", bags)
        finally:
            rclpy.try_shutdown(context=context)
    contents = []
    for bag in bags:
        with AnyReader([bag], default_typestore=episode_typestore()) as reader:
            topics = {c.topic: (c.msgtype, []) for c in reader.connections}
            for connection, _, raw in reader.messages():
                topics[connection.topic][1].append(reader.deserialize(raw, connection.msgtype))
        contents.append({topic: value for topic, value in topics.items() if value[1]})  # topics with messages
    return contents


def record_two_episodes(context, output: Path, bags: list[Path]) -> None:
    """The recorder node records ep1 and ep2: one message per recorded topic and episode, as the
    graph publishes them; the latched safety box once, before ep1."""
    with running_recorder(context, output) as (recorder, client, _):
        publishers = {}
        for topic, msgtype in RECORDED_TOPICS.items():
            qos = QoSProfile(depth=1 if topic in LATCHED_TOPICS else 10)
            if topic in LATCHED_TOPICS:
                qos.durability = DurabilityPolicy.TRANSIENT_LOCAL
            publishers[topic] = client.create_publisher(message_class(msgtype), topic, qos)
        assert spin_until(client, lambda: all(p.get_subscription_count() for p in publishers.values()), 30)
        messages = sample_messages()
        publishers["/arm/safety_box"].publish(messages["/arm/safety_box"])
        assert spin_until(client, lambda: recorder.received["/arm/safety_box"] == 1, 10)
        episode_topics = [topic for topic in RECORDED_TOPICS if topic != "/arm/safety_box"]
        for episode in ("ep1", "ep2"):
            assert start(client, episode).success
            before = dict(recorder.received)
            for topic in episode_topics:
                publishers[topic].publish(messages[topic])
            arrived = lambda before=before: all(recorder.received[t] > before[t] for t in episode_topics)  # noqa: E731
            assert spin_until(client, arrived, 10)
            answer = stop(client, episode)
            assert answer.success, answer.message
            bags.append(Path(answer.bag_path))


def test_every_episode_bag_holds_the_chunk_path_and_the_safety_box(recorded):
    for bag in recorded:
        assert set(bag) == {*RECORDED_TOPICS, SUMMARY_TOPIC}
        msgtype, boxes = bag["/arm/safety_box"]
        assert msgtype == "visualization_msgs/msg/Marker"
        assert len(boxes) == 1 and boxes[0].ns == "safety_box" and len(boxes[0].points) == 24  # 12 edges
        assert bag["/policy_server/action_chunk_markers"][0] == "visualization_msgs/msg/MarkerArray"


def test_every_panel_reads_a_recorded_topic_of_a_type_it_draws(recorded):
    config = layout()
    assert set(config["configById"]) == mosaic_panels(config["layout"])  # every panel is placed, once
    bag = recorded[0]
    kinds = set()
    for panel_id, panel in config["configById"].items():
        kind = panel_id.split("!")[0]
        kinds.add(kind)
        for topic, field in panel_reads(panel_id, panel):
            assert topic in bag, f"{panel_id} reads {topic}, which the recorder does not record"
            msgtype, messages = bag[topic]
            if kind == "Image":
                assert msgtype in IMAGE, (panel_id, topic, msgtype)
            elif kind == "3D":
                assert msgtype in SCENE, (panel_id, topic, msgtype)
            value = messages[-1]
            for name in filter(None, field.split(".")):
                assert hasattr(value, name), f"{panel_id}: {topic} ({msgtype}) has no field {field!r}"
                value = getattr(value, name)
            if kind in ("StateTransitions", "Indicator"):
                assert isinstance(value, bool | int | float | str), (panel_id, field, type(value))
    assert {"Image", "3D", "StateTransitions", "RawMessages"} <= kinds
    reads = {read for panel_id, panel in config["configById"].items() for read in panel_reads(panel_id, panel)}
    assert (SUMMARY_TOPIC, "") in reads and bag[SUMMARY_TOPIC][0] == SUMMARY_TYPE  # the episode's label
    assert ("/sim/task_state", "success") in reads  # the task state


def test_rviz_shows_the_same_episode_topics_as_the_foxglove_layout(recorded):
    """Kept in step: the rviz displays of recorded topics are the Foxglove layout's Image and 3D
    topics, with the same types; rviz's other displays are the live graph's own."""
    bag = recorded[0]
    displays = rviz_displays()
    foxglove = {
        topic
        for panel_id, panel in layout()["configById"].items()
        if panel_id.split("!")[0] in ("Image", "3D")
        for topic, _ in panel_reads(panel_id, panel)
    }
    assert {topic for topic in displays if topic in bag} == foxglove
    assert set(displays) - foxglove == LIVE_ONLY
    for topic in foxglove:
        assert RVIZ_TYPES[displays[topic]] == bag[topic][0], topic


def test_the_layout_is_installed_with_the_package():
    setup = (BRINGUP / "setup.py").read_text()
    assert '(f"share/{PACKAGE}/foxglove", glob("foxglove/*.json"))' in setup
