"""The one validating sensor_msgs/Image decoder, shared by the nodes (via wmpo_robot_io.images),
bag conversion and bag replay. Works on rclpy messages and on rosbags' deserialised ones (any
object with height, width, step, encoding and a byte buffer ``data``)."""

import numpy as np

SUPPORTED_ENCODINGS = ("rgb8", "bgr8")


class ImageError(ValueError):
    """A malformed or unsupported image message; the text says what is wrong."""


def from_image_msg(msg) -> np.ndarray:
    """Decode an rgb8/bgr8 sensor_msgs/Image to (H, W, 3) uint8 RGB, or raise ImageError."""
    if msg.encoding not in SUPPORTED_ENCODINGS:
        raise ImageError(f"unsupported encoding {msg.encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if msg.height == 0 or msg.width == 0:
        raise ImageError(f"empty image {msg.width}x{msg.height}")
    if msg.step < msg.width * 3:
        raise ImageError(f"row step {msg.step} < width*3 = {msg.width * 3}")
    expected = msg.step * msg.height
    data = msg.data if isinstance(msg.data, (bytes, bytearray, memoryview)) else bytes(msg.data)
    if len(data) != expected:
        raise ImageError(f"data has {len(data)} bytes, expected step*height = {expected}")
    rows = np.frombuffer(data, np.uint8).reshape(msg.height, msg.step)
    image = rows[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    return image[..., ::-1].copy() if msg.encoding == "bgr8" else image.copy()
