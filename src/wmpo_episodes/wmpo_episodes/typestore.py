"""A rosbags type store with the standard Kilted types plus wmpo_interfaces' own messages."""

from functools import cache
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from rosbags.typesys import Stores, get_types_from_msg, get_typestore


@cache
def episode_typestore():
    """Kilted's types + every wmpo_interfaces message, parsed from the installed .msg files."""
    store = get_typestore(Stores.ROS2_KILTED)
    share = Path(get_package_share_directory("wmpo_interfaces")) / "msg"
    types = {}
    for path in sorted(share.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"wmpo_interfaces/msg/{path.stem}"))
    store.register(types)
    return store
