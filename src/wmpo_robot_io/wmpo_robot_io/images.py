"""sensor_msgs/Image <-> numpy without cv_bridge (absent off-ROS). Images are (H, W, 3) uint8 RGB.

Decoding is wmpo_common.image_messages' (the one validating decoder, also used on bags)."""

import numpy as np

from wmpo_common.image_messages import SUPPORTED_ENCODINGS, ImageError, from_image_msg

__all__ = ["SUPPORTED_ENCODINGS", "ImageError", "from_image_msg", "to_image_msg"]


def to_image_msg(image: np.ndarray, stamp, frame_id: str):
    """Build an rgb8 sensor_msgs/Image. ``stamp`` is a builtin_interfaces/Time."""
    from sensor_msgs.msg import Image

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = "rgb8"
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(image).tobytes()  # bytes: ~1000x faster than an ndarray here
    return msg
