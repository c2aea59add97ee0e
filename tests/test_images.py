"""sensor_msgs/Image codec: exact round trip, and clear errors for malformed messages."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from wmpo_robot_io.images import ImageError, from_image_msg, to_image_msg


def test_round_trip_is_exact():
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = to_image_msg(image, Time(sec=1), "cam")
    assert (msg.height, msg.width, msg.step, msg.encoding) == (48, 64, 192, "rgb8")
    np.testing.assert_array_equal(from_image_msg(msg), image)


def test_bgr8_is_converted_to_rgb_and_row_padding_is_dropped():
    msg = Image(height=2, width=2, encoding="bgr8", step=8, data=bytes([1, 2, 3, 4, 5, 6, 0, 0] * 2))
    np.testing.assert_array_equal(from_image_msg(msg)[0], [[3, 2, 1], [6, 5, 4]])


@pytest.mark.parametrize(
    ("msg", "message"),
    [
        (Image(height=2, width=2, encoding="mono8", step=2, data=bytes(4)), "unsupported encoding"),
        (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(5)), "expected step\\*height = 12"),
        (Image(height=0, width=2, encoding="rgb8", step=6, data=b""), "empty image"),
        (Image(height=2, width=2, encoding="rgb8", step=4, data=bytes(8)), "row step"),
    ],
)
def test_malformed_images_raise_clear_errors(msg, message):
    with pytest.raises(ImageError, match=message):
        from_image_msg(msg)


def test_only_uint8_rgb_arrays_are_encoded():
    with pytest.raises(ImageError):
        to_image_msg(np.zeros((4, 4), np.uint8), Time(), "cam")
