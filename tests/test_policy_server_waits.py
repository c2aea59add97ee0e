"""The policy server's request contract, in-process over real DDS: a chunk comes from an image
stamped at or after ``not_before``; an image arriving while the request waits is used at once; a
request that times out says what the server holds (no image at all vs only older ones); frames
arriving out of stamp order are held in stamp order."""

import threading

import numpy as np
from graph_helpers import spin_until
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import String
from test_vla_model import small_policy

from wmpo_interfaces.srv import GetActionChunk
from wmpo_policy.policy_server_node import PolicyServer
from wmpo_robot_io.images import to_image_msg


def stamp(seconds: float):
    return Time(nanoseconds=int(seconds * 1e9)).to_msg()


def test_requests_wait_for_a_new_enough_image_and_say_what_they_saw(tmp_path, rclpy_context):
    checkpoint = small_policy().save_pretrained(tmp_path / "vla")
    server = PolicyServer(
        context=rclpy_context,
        parameter_overrides=[Parameter("backend", value="vla"), Parameter("checkpoint", value=str(checkpoint))],
    )
    executor = MultiThreadedExecutor(num_threads=3, context=rclpy_context)
    executor.add_node(server)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    client = Node("test_client", context=rclpy_context)
    client.spinner = SingleThreadedExecutor(context=rclpy_context)
    client.spinner.add_node(client)
    camera = client.create_publisher(Image, "camera/image_raw", 10)
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    client.create_publisher(String, "instruction", latched).publish(String(data="pick up the red cube"))
    service = client.create_client(GetActionChunk, "policy_server/get_action_chunk")
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)

    def request(not_before: float, timeout: float):
        return service.call_async(GetActionChunk.Request(not_before=stamp(not_before), timeout=timeout))

    try:
        assert service.wait_for_service(timeout_sec=30)
        assert spin_until(client, lambda: camera.get_subscription_count() >= 1, timeout=30)

        nothing = request(10.0, 0.2)
        assert spin_until(client, nothing.done, timeout=30)
        assert not nothing.result().success
        assert "no image received yet" in nothing.result().message

        camera.publish(to_image_msg(image, stamp(9.0), "camera"))
        assert spin_until(client, lambda: server.images_received == 1, timeout=30)
        stale = request(10.0, 0.2)
        assert spin_until(client, stale.done, timeout=30)
        assert not stale.result().success
        assert f"newest image stamped {int(9e9)} ns, 1 received" in stale.result().message

        waiting = request(10.0, 30.0)  # the image comes while the request waits
        assert spin_until(client, lambda: len(server._waiting) == 1, timeout=30)
        camera.publish(to_image_msg(image, stamp(10.0), "camera"))
        assert spin_until(client, waiting.done, timeout=30)
        served = waiting.result()
        assert served.success, served.message
        assert Time.from_msg(served.chunk.header.stamp).nanoseconds == int(10e9)
        assert server.late_images == 1  # the stale request above had given up on this frame
        assert np.asarray(served.chunk.actions).shape == (8 * 7,)

        # frames that arrive out of stamp order (image callbacks run on several threads): the
        # newest one is still found; it once hid behind the older one appended after it
        camera.publish(to_image_msg(image, stamp(12.0), "camera"))
        camera.publish(to_image_msg(image, stamp(11.0), "camera"))
        assert spin_until(client, lambda: server.images_received == 4, timeout=30)
        newest = request(12.0, 0.5)
        assert spin_until(client, newest.done, timeout=30)
        assert newest.result().success, newest.result().message
        assert Time.from_msg(newest.result().chunk.header.stamp).nanoseconds == int(12e9)
    finally:
        client.destroy_node()
        executor.shutdown()
        spinner.join(timeout=10)
        server.destroy_node()
