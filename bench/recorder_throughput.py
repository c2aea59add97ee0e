"""Recorder benchmark: 224x224 rgb8 images through the recorder node into MCAP, side by side with
writing the same serialized messages directly (rosbags writer; the mcap library's writer).

  python bench/recorder_throughput.py [--seconds 60] [--burst-seconds 5]

Reports per run: published, recorded, dropped, MB/s on disk, the recorder process's CPU (% of one
core, and CPU ms per message), and the CPU ms per message of the direct writers (ratios).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import rclpy
from builtin_interfaces.msg import Time
from mcap.writer import Writer
from rclpy.executors import SingleThreadedExecutor
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import Image

from wmpo_bringup.environment import node_environment
from wmpo_bringup.runner import GraphProcesses
from wmpo_episodes.bag_writer import EpisodeBagWriter
from wmpo_episodes.episodes import read_episode_info
from wmpo_episodes.summary import summary_to_dict
from wmpo_episodes.typestore import episode_typestore
from wmpo_interfaces.msg import EpisodeSummary
from wmpo_interfaces.srv import StartRecording, StopRecording
from wmpo_robot_io.images import to_image_msg

SIZE = 224


def image_messages(count: int) -> list[Image]:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(8)]
    return [to_image_msg(frames[i % 8], Time(sec=i // 1000, nanosec=i % 1000), "cam") for i in range(count)]


def call(node, executor, client, request):
    assert client.wait_for_service(timeout_sec=30), "recorder service not available"
    future = client.call_async(request)
    executor.spin_until_future_complete(future, timeout_sec=60)
    return future.result()


def through_recorder(node, executor, recorder_pid: int, rate: float, seconds: float, name: str) -> dict:
    publisher = node.create_publisher(Image, "/camera/image_raw", 100)
    start_client = node.create_client(StartRecording, "recorder/start")
    stop_client = node.create_client(StopRecording, "recorder/stop")
    while publisher.get_subscription_count() == 0:  # wait for discovery (graph state)
        executor.spin_once(timeout_sec=0.1)
    summary = EpisodeSummary(episode_id=name, task="bench", outcome="")
    assert call(node, executor, start_client, StartRecording.Request(summary=summary)).success
    count = int(rate * seconds)
    messages = image_messages(count)
    process = psutil.Process(recorder_pid)
    cpu_before = sum(process.cpu_times()[:2])
    began = time.monotonic()
    for i, msg in enumerate(messages):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publisher.publish(msg)
    publish_time = time.monotonic() - began
    # The stop request queues behind the messages still in flight; any it overtakes count as dropped.
    summary.outcome = "success"
    stopped = call(node, executor, stop_client, StopRecording.Request(summary=summary, keep=True))
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    bag = Path(stopped.bag_path)
    assert read_episode_info(bag).outcome == "success"
    with AnyReader([bag]) as reader:
        recorded = sum(1 for c in reader.connections if c.topic == "/camera/image_raw" for _ in reader.messages([c]))
    size = sum(f.stat().st_size for f in bag.iterdir())
    node.destroy_publisher(publisher)
    return {
        "run": name,
        "published": count,
        "recorded": recorded,
        "dropped": count - recorded,
        "rate_hz": count / publish_time,
        "mb_per_s": size / 1e6 / publish_time,
        "cpu_pct": 100 * cpu / publish_time,
        "cpu_ms_per_msg": 1000 * cpu / count,
    }


def direct_writers(count: int, out: Path) -> dict:
    """CPU ms per message writing the same serialized images without ROS."""
    data = [bytes(serialize_message(m)) for m in image_messages(count)]
    start = summary_to_dict(EpisodeSummary(episode_id="direct", outcome=""))
    t = time.process_time()
    writer = EpisodeBagWriter(out, "direct", start)
    for i, raw in enumerate(data):
        writer.write("/camera/image_raw", i * 33_000_000, raw)
    writer.close({**start, "outcome": "success"}, count * 33_000_000)
    rosbags_ms = 1000 * (time.process_time() - t) / count

    msgdef, _ = episode_typestore().generate_msgdef("sensor_msgs/msg/Image", ros_version=2)
    t = time.process_time()
    with open(out / "plain.mcap", "wb") as f:
        w = Writer(f)
        w.start(profile="ros2", library="bench")
        schema = w.register_schema("sensor_msgs/msg/Image", "ros2msg", msgdef.encode())
        channel = w.register_channel("/camera/image_raw", "cdr", schema)
        for i, raw in enumerate(data):
            w.add_message(channel, log_time=i * 33_000_000, data=raw, publish_time=i * 33_000_000)
        w.finish()
    mcap_ms = 1000 * (time.process_time() - t) / count
    return {"rosbags_ms_per_msg": rosbags_ms, "mcap_ms_per_msg": mcap_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the 30 Hz run")
    parser.add_argument("--burst-seconds", type=float, default=5.0, help="length of the 200 Hz burst")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wmpo_bench_"))
    domain = 90 + os.getpid() % 10
    env = node_environment(domain_id=domain, log_dir=str(tmp / "ros"))
    os.environ.update({k: v for k, v in env.items() if k.startswith(("ROS_", "RMW_", "AMENT_"))})
    overrides = {"recorder": {"output_dir": str(tmp / "episodes"), "queue_depth": 1000}}
    runs = []
    with GraphProcesses("sim", tmp / "logs", overrides=overrides, env=env, only=("recorder",)) as processes:
        rclpy.init(domain_id=domain)
        node = rclpy.create_node("recorder_bench")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        pid = processes.processes["recorder"].pid
        runs.append(through_recorder(node, executor, pid, 30.0, args.seconds, "images_30hz"))
        runs.append(through_recorder(node, executor, pid, 200.0, args.burst_seconds, "burst_200hz"))
        node.destroy_node()
        rclpy.shutdown()
    direct = direct_writers(int(30 * min(args.seconds, 20)), tmp)
    print(f"\n224x224 rgb8 images ({SIZE * SIZE * 3 / 1e3:.0f} kB each) into MCAP; CPU of the recorder process")
    columns = ("run", "published", "recorded", "dropped", "Hz", "MB/s", "CPU %", "CPU ms/msg")
    header = f"{columns[0]:14s} " + " ".join(f"{c:>{max(6, len(c))}s}" for c in columns[1:])
    print(header)
    for r in runs:
        print(
            f"{r['run']:14s} {r['published']:9d} {r['recorded']:8d} {r['dropped']:7d} {r['rate_hz']:6.1f} "
            f"{r['mb_per_s']:6.1f} {r['cpu_pct']:6.1f} {r['cpu_ms_per_msg']:10.2f}"
        )
    node_ms = runs[0]["cpu_ms_per_msg"]
    print("\nCPU ms per message, same serialized images written directly (no ROS):")
    print(f"  rosbags writer (EpisodeBagWriter): {direct['rosbags_ms_per_msg']:.2f}")
    print(f"  mcap library writer:               {direct['mcap_ms_per_msg']:.2f}")
    print(f"  recorder node / mcap writer:       {node_ms / direct['mcap_ms_per_msg']:.1f}x")
    print(f"  recorder node / rosbags writer:    {node_ms / direct['rosbags_ms_per_msg']:.1f}x")
    return 0 if runs[0]["dropped"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
