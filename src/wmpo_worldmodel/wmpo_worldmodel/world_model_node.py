"""World-model node: imagines episodes on request and publishes their frames for rviz.

Interfaces (node ``world_model``):
  service ~/imagine              wmpo_interfaces/Imagine  replay a bag under its actions, or let the policy act
  pub     ~/imagined/image_raw   sensor_msgs/Image  imagined frames, at playback_rate
  pub     ~/real/image_raw       sensor_msgs/Image  replay: the recorded frames, same stamps (side by side)
  sub     camera/image_raw       sensor_msgs/Image  policy mode starts from the latest image

Checkpoints load at start-up (a wrong path is a clear error and exit 1); with no world_model the
node runs and every request fails with the reason. A request's bag_path must lie inside
``data_root`` (symlinks and ``..`` resolved). Any failure of a request (a bad bag, the models, the
reward model) answers success=false with the reason, is logged, and the node keeps serving.
"""

import threading
from collections import deque
from pathlib import Path

import numpy as np
import torch
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image

from wmpo_common.confined_paths import PathOutsideRoots, confined_path
from wmpo_common.ros.node_main import spin_node
from wmpo_common.ros.parameters import Parameter, declare_parameters, non_empty, non_negative, one_of, positive
from wmpo_interfaces.srv import Imagine
from wmpo_robot_io.images import ImageError, from_image_msg, to_image_msg
from wmpo_worldmodel.schedulers import SAMPLERS

PARAMETERS = {
    "world_model": Parameter("", "world-model checkpoint folder (WorldModelPipeline)", read_only=True),
    "policy": Parameter("", "VLA checkpoint folder, for policy mode", read_only=True),
    "reward_model": Parameter(
        "", "reward-model checkpoint folder (optional): judges imagined episodes", read_only=True
    ),
    "max_steps": Parameter(120, "policy mode: imagined control steps when the request gives none", positive),
    "temperature": Parameter(0.0, "policy mode: sampling temperature (0 = greedy)", non_negative),
    "sampler": Parameter("ddim", "diffusion sampler: ddim | dpmsolver | euler | unipc", one_of(*SAMPLERS)),
    "sampler_steps": Parameter(10, "denoising steps per pass", positive),
    "playback_rate": Parameter(10.0, "frames per second published", positive, read_only=True),
    "frame_id": Parameter("camera_optical_frame", "frame_id of the published images", non_empty),
    "device": Parameter("cpu", "torch device", non_empty, read_only=True),
    "threads": Parameter(2, "torch CPU threads", positive, read_only=True),
    "data_root": Parameter(".", "folder every requested bag_path must lie in (resolved at start-up)", read_only=True),
}


class WorldModelNode(Node):
    def __init__(self, **kwargs):
        super().__init__("world_model", **kwargs)
        declare_parameters(self, PARAMETERS)
        self.data_root = Path(self.param("data_root")).resolve()
        torch.set_num_threads(self.param("threads"))
        self.world_model, self.policy, self.reward = self._load_models()
        self._latest_image: np.ndarray | None = None
        self._queue: deque[tuple[np.ndarray, np.ndarray | None]] = deque()
        self._lock = threading.Lock()
        self.imagined_pub = self.create_publisher(Image, "~/imagined/image_raw", 10)
        self.real_pub = self.create_publisher(Image, "~/real/image_raw", 10)
        self.create_subscription(Image, "camera/image_raw", self._on_image, 2)
        self.create_service(Imagine, "~/imagine", self._imagine, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0 / self.param("playback_rate"), self._publish_next)
        state = "ready" if self.world_model is not None else "no world_model checkpoint set: requests will fail"
        self.get_logger().info(f"world model {state}")

    def param(self, key: str):
        return self.get_parameter(key).value

    def _load_models(self):
        from wmpo_policy.vla.policy import VLAPolicy
        from wmpo_worldmodel.pipeline import WorldModelPipeline
        from wmpo_worldmodel.reward_model import VideoRewardModel

        device = self.param("device")
        world_model = WorldModelPipeline.load(self.param("world_model"), device) if self.param("world_model") else None
        policy = VLAPolicy.from_pretrained(self.param("policy"), device) if self.param("policy") else None
        reward = (
            VideoRewardModel.from_pretrained(self.param("reward_model"), device) if self.param("reward_model") else None
        )
        return world_model, policy, reward

    def _on_image(self, msg: Image) -> None:
        try:
            self._latest_image = from_image_msg(msg)
        except ImageError as error:
            self.get_logger().error(f"rejected camera image: {error}")

    # -- imagining ---------------------------------------------------------------------------
    def _imagine(self, request, response):
        from wmpo_worldmodel.fidelity import imagine_episode
        from wmpo_worldmodel.imagination import imagine
        from wmpo_worldmodel.pipeline import to_model_frames, to_uint8_frames

        response.success_frame = -1
        if self.world_model is None:
            response.message = "no world model: set the world_model parameter to a checkpoint folder"
            return response
        generator = torch.Generator().manual_seed(request.seed)
        sampling = {"num_inference_steps": self.param("sampler_steps"), "sampler": self.param("sampler")}
        real = None
        try:
            if request.bag_path:
                from wmpo_episodes.bag_conversion import read_episode_arrays

                episode = read_episode_arrays(confined_path(request.bag_path, [self.data_root], "bag_path"))
                frames = imagine_episode(
                    self.world_model, episode["frames"], episode["actions"], generator=generator, **sampling
                )
                real = to_uint8_frames(to_model_frames(episode["frames"][None], frames.shape[1], "cpu"))[0]
            else:
                if self.policy is None:
                    raise ValueError("policy mode needs the policy parameter (a VLA checkpoint folder)")
                if self._latest_image is None:
                    raise ValueError("no camera image received yet on camera/image_raw")
                steps = request.max_steps or self.param("max_steps")
                batch = imagine(
                    self.world_model,
                    self.policy,
                    self._latest_image[None],
                    [request.instruction],
                    steps,
                    self.param("temperature"),
                    None,
                    self.param("sampler"),
                    self.param("sampler_steps"),
                    generator,
                )
                frames = batch.frames[0][: steps + 1]
            if self.reward is not None:
                verdict = self.reward.judge(frames)
                response.judged, response.imagined_success = True, verdict.success
                response.success_frame = verdict.success_frame
        except PathOutsideRoots as error:
            response.message = f"refused: {error} (parameter data_root)"
            self.get_logger().error(response.message)
            return response
        except Exception as error:  # noqa: BLE001  bad bags, checkpoints, inputs, models: report, do not die
            response.judged, response.success_frame = False, -1
            response.message = f"imagination failed: {type(error).__name__}: {error}"
            self.get_logger().error(response.message)
            return response
        with self._lock:
            self._queue.clear()
            for i, frame in enumerate(frames):
                self._queue.append((frame, None if real is None else real[i]))
        response.success, response.num_frames = True, len(frames) - 1
        response.message = f"imagined {len(frames) - 1} frames; publishing at {self.param('playback_rate')} Hz"
        self.get_logger().info(response.message)
        return response

    def _publish_next(self) -> None:
        with self._lock:
            if not self._queue:
                return
            imagined, real = self._queue.popleft()
        stamp = self.get_clock().now().to_msg()
        frame_id = self.param("frame_id")
        self.imagined_pub.publish(to_image_msg(imagined, stamp, frame_id))
        if real is not None:
            self.real_pub.publish(to_image_msg(real, stamp, frame_id))


def main(args=None):
    spin_node(WorldModelNode, "world_model", args, num_threads=2, fatal=(ValueError, OSError))


if __name__ == "__main__":
    main()
