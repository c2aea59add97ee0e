"""EpisodeSummary -> plain dict (JSON), without rosidl_runtime_py (absent off-ROS)."""

from wmpo_interfaces.msg import EpisodeSummary

TIME_FIELDS = ("start_time", "end_time")


def summary_to_dict(msg: EpisodeSummary) -> dict:
    out = {}
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        out[name] = value.sec * 1_000_000_000 + value.nanosec if name in TIME_FIELDS else value
    return out
