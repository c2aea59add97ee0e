"""Does the policy server lose camera frames outside the full graph? Starts the real policy_server
process on a private domain, then in lock-step like the episode manager: publish a frame (from a
plain thread, as the camera does) and ask for a chunk not before its stamp; counts requests that
time out. Two orders: frames first (8 per request, the last one named) or the request first.

  python bench/policy_server_frames.py --checkpoint runs/base/Lift/bc/checkpoints/step_1500 --requests 1500
"""

import argparse
import subprocess
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import String

from wmpo_bringup.environment import node_environment, private_domain_id
from wmpo_interfaces.srv import GetActionChunk
from wmpo_robot_io.images import to_image_msg


def run(node: Node, order: str, requests: int, frames_per_request: int) -> int:
    """Lock-step requests; returns how many failed."""
    camera = node.create_publisher(Image, "camera/image_raw", 10)
    service = node.create_client(GetActionChunk, "policy_server/get_action_chunk")
    if not service.wait_for_service(timeout_sec=60):
        raise SystemExit("policy_server did not come up")
    while camera.get_subscription_count() < 1:
        time.sleep(0.05)
    image = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    failed = 0
    for i in range(requests):
        done = threading.Event()
        if order == "frames-first":
            for _ in range(frames_per_request):
                stamp = Time(nanoseconds=time.time_ns()).to_msg()
                camera.publish(to_image_msg(image, stamp, "camera"))
            future = service.call_async(GetActionChunk.Request(not_before=stamp, timeout=2.0))
        else:
            stamp = Time(nanoseconds=time.time_ns()).to_msg()
            future = service.call_async(GetActionChunk.Request(not_before=stamp, timeout=2.0))
            time.sleep(0.001 * (i % 5))
            camera.publish(to_image_msg(image, stamp, "camera"))
        future.add_done_callback(lambda _, event=done: event.set())
        done.wait(10)
        if not future.done() or not future.result().success:
            failed += 1
            print(f"request {i}: {future.result().message if future.done() else 'no response'}", flush=True)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a VLA checkpoint folder")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--frames-per-request", type=int, default=8)
    args = parser.parse_args()
    env = node_environment(domain_id=private_domain_id())
    server = subprocess.Popen(
        [sys.executable, "-m", "wmpo_policy.policy_server_node", "--ros-args"]
        + ["-p", "backend:=vla", "-p", f"checkpoint:={args.checkpoint}"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    rclpy.init(domain_id=int(env["ROS_DOMAIN_ID"]))
    node = Node("frames_bench")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_publisher(String, "instruction", latched).publish(String(data="pick up the red cube"))
    try:
        for order in ("frames-first", "request-first"):
            started = time.monotonic()
            frames = args.frames_per_request if order == "frames-first" else 1
            failed = run(node, order, args.requests, frames)
            print(
                f"{order}: {args.requests} requests, {args.requests * frames} frames, {failed} timed out "
                f"({time.monotonic() - started:.0f} s)"
            )
    finally:
        server.terminate()
        server.wait(30)
        executor.shutdown()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
