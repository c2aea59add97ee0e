"""The episode bag layout: which topics an episode bag holds, and where its label lives.

One bag per episode: ``<output_dir>/<episode_id>/`` with ``metadata.yaml`` and one storage file.
While recording, the bag lives in ``<output_dir>/.incoming/<episode_id>/`` and only moves to its
final place (an atomic rename) once it is closed and labelled. The label (the EpisodeSummary,
outcome success | failure | incomplete) is stored twice: as the ``/episode/summary`` message in
the bag, and as JSON under ``custom_data['wmpo.summary']`` in metadata.yaml (readable without
opening the storage file; ``custom_data['wmpo.outcome']`` holds the outcome alone).
"""

RECORDED_TOPICS: dict[str, str] = {
    "/camera/image_raw": "sensor_msgs/msg/Image",  # frames at control rate (sim) or camera rate
    "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
    "/arm/joint_states": "sensor_msgs/msg/JointState",  # proprioception
    "/arm/eef_pose": "geometry_msgs/msg/PoseStamped",
    "/arm/commanded_action": "wmpo_interfaces/msg/ArmAction",  # what the policy asked for
    "/arm/executed_action": "wmpo_interfaces/msg/ArmAction",  # what the safety filter let through
    "/arm/task_success": "std_msgs/msg/Bool",
    "/policy_server/action_chunk": "wmpo_interfaces/msg/ActionChunk",  # carries the policy_id
    "/policy_server/action_chunk_markers": "visualization_msgs/msg/MarkerArray",  # the chunk's path (rviz, Foxglove)
    "/arm/safety_box": "visualization_msgs/msg/Marker",  # workspace box (latched; opens every bag)
    "/sim/task_state": "wmpo_interfaces/msg/TaskState",  # simulation only
    "/instruction": "std_msgs/msg/String",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",  # safety interventions
}
SUMMARY_TOPIC = "/episode/summary"
SUMMARY_TYPE = "wmpo_interfaces/msg/EpisodeSummary"
INCOMING_DIR = ".incoming"
START_INFO_FILE = "episode.json"  # in a staging folder: the summary known at the start
CUSTOM_SUMMARY_KEY = "wmpo.summary"
CUSTOM_OUTCOME_KEY = "wmpo.outcome"
STORAGE_PLUGINS = ("mcap", "sqlite3")
# On stop, the recorder waits up to its drain_timeout for the episode's last messages, then closes
# the bag and answers; the episode manager waits service_wait for that answer. Each node refuses a
# value that would break the margin between them (closing the bag under CPU load).
MAX_DRAIN_TIMEOUT = 2.0  # s: the recorder's drain_timeout is at most this
MIN_SERVICE_WAIT = MAX_DRAIN_TIMEOUT + 1.0  # s: the episode manager's service_wait is at least this
