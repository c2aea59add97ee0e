"""A robosuite world shared by the simulated arm and the simulated camera.

All MuJoCo calls (make, reset, step, render) run on one worker thread: EGL/OSMesa contexts are
bound to the thread that created them, and ROS executors call us from several threads.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from wmpo_common.actions import ACTION_DIM, ACTION_SCALE
from wmpo_robot_io.sim.tasks import TaskSpec, task_spec

os.environ.setdefault("MUJOCO_GL", "egl")

# Initial-state ids map to a reserved seed range, so "initial state 17" is the same state for
# every user and every run, whatever seed the rest of the episode uses.
INIT_STATE_SEED_BASE = 1_000_000


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings. Use the same render settings for training data and evaluation."""

    camera_name: str = "agentview"
    image_size: int = 128  # square camera images, pixels
    control_freq: int = 20  # Hz
    fast_render: bool = True  # no MSAA, no shadows, no reflections (~3x faster on CPU)


@dataclass
class SimStep:
    """What the world looks like after a reset or a step. Positions in metres, world frame."""

    stamp_ns: int  # wall-clock time the frame was rendered
    step: int  # control steps since reset
    image: np.ndarray  # (H, W, 3) uint8 RGB, upright
    eef_pos: np.ndarray  # (3,)
    eef_quat_xyzw: np.ndarray  # (4,)
    gripper_qpos: np.ndarray  # (2,) finger joint positions [m]
    joint_names: list[str]
    joint_pos: np.ndarray  # (7,) rad
    object_poses: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    success: bool = False


def _rotmat_to_quat_xyzw(mat: np.ndarray) -> np.ndarray:
    import mujoco

    quat_wxyz = np.zeros(4)
    mujoco.mju_mat2Quat(quat_wxyz, np.asarray(mat, dtype=np.float64).reshape(9))
    return np.array([quat_wxyz[1], quat_wxyz[2], quat_wxyz[3], quat_wxyz[0]])


class SimWorld:
    """One robosuite environment (Panda, OSC_POSE controller) and its camera.

    Thread-safe: every public method runs its MuJoCo work on the world's worker thread.
    Frame listeners are called (on the worker thread) with each new SimStep.
    """

    action_scale = ACTION_SCALE  # OSC_POSE output_max: metres and radians per unit action

    def __init__(self, config: SimConfig = SimConfig()):
        self.config = config
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mujoco")
        self._env = None
        self._task: TaskSpec | None = None
        self._task_name = ""
        self._step = 0
        self._last: SimStep | None = None
        self._listeners: list = []
        self._lock = threading.Lock()

    # -- public API (thread-safe) ------------------------------------------------------------
    def add_listener(self, callback) -> None:
        """Call ``callback(SimStep)`` after every reset and step."""
        with self._lock:
            self._listeners.append(callback)

    def reset(self, task: str, seed: int, init_state_id: int = -1) -> SimStep:
        """Reset to the start of an episode of ``task``. Raises ValueError for unknown tasks."""
        spec = task_spec(task)
        return self._worker.submit(self._reset, task, spec, seed, init_state_id).result()

    def step(self, action: np.ndarray) -> SimStep:
        """Apply one 7-D OSC_POSE action (controller units) for one control step."""
        return self._worker.submit(self._do_step, np.asarray(action, dtype=np.float64)).result()

    def camera_fovy_deg(self) -> float | None:
        """Vertical field of view of the camera in degrees (None before the first reset)."""
        if self._env is None:
            return None
        model = self._env.sim.model
        return float(model.cam_fovy[model.camera_name2id(self.config.camera_name)])

    def camera_pose(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The camera's position (3,) [m] and orientation (3, 3) in the world frame, MuJoCo's
        convention: it looks along its -z axis, +y up in the image (None before the first reset)."""
        if self._env is None:
            return None
        camera = self._env.sim.model.camera_name2id(self.config.camera_name)
        data = self._env.sim.data
        return np.array(data.cam_xpos[camera]), np.array(data.cam_xmat[camera]).reshape(3, 3)

    @property
    def last(self) -> SimStep | None:
        return self._last

    @property
    def task_name(self) -> str:
        return self._task_name

    def close(self) -> None:
        def _close():
            if self._env is not None:
                self._env.close()
                self._env = None

        self._worker.submit(_close).result()
        self._worker.shutdown(wait=True)

    # -- worker-thread internals -------------------------------------------------------------
    def _make_env(self, spec: TaskSpec):
        import robosuite as suite
        from robosuite.controllers import load_composite_controller_config

        if self._env is not None:
            self._env.close()
        controller = load_composite_controller_config(controller="BASIC", robot="Panda")
        size = self.config.image_size
        self._env = suite.make(
            spec.env_name,
            robots="Panda",
            controller_configs=controller,
            has_renderer=False,
            has_offscreen_renderer=True,
            use_camera_obs=True,
            use_object_obs=True,
            camera_names=self.config.camera_name,
            camera_heights=size,
            camera_widths=size,
            control_freq=self.config.control_freq,
            horizon=100_000,  # episodes end by our step budget, not robosuite's
            ignore_done=True,
            hard_reset=False,  # 20 ms resets instead of ~1 s
            reward_shaping=False,
        )
        self._task = spec

    def _apply_fast_render(self) -> None:
        import mujoco

        model = self._env.sim.model._model
        model.vis.quality.offsamples = 0
        model.light_castshadow[:] = 0
        context = self._env.sim._render_context_offscreen
        if context is not None:
            context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    def _reset(self, name: str, spec: TaskSpec, seed: int, init_state_id: int) -> SimStep:
        if self._task is not spec:
            self._make_env(spec)
        episode_seed = INIT_STATE_SEED_BASE + init_state_id if init_state_id >= 0 else seed
        if episode_seed >= 0:
            self._env.rng.bit_generator.state = np.random.default_rng(episode_seed).bit_generator.state
        obs = self._env.reset()
        if self.config.fast_render:
            self._apply_fast_render()
            obs = self._env._get_observations(force_update=True)
        self._task_name = name
        self._step = 0
        return self._publish(obs)

    def _do_step(self, action: np.ndarray) -> SimStep:
        if self._env is None:
            raise RuntimeError("the simulator was never reset: call reset() before step()")
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got {action.shape}")
        obs, _, _, _ = self._env.step(action)
        self._step += 1
        return self._publish(obs)

    def _publish(self, obs: dict) -> SimStep:
        env = self._env
        robot = env.robots[0]
        sim = env.sim
        image = obs[f"{self.config.camera_name}_image"][::-1].copy()  # robosuite renders upside down
        objects = {}
        for body in self._task.objects:
            body_id = sim.model.body_name2id(body)
            objects[body] = (
                np.array(sim.data.body_xpos[body_id]),
                _rotmat_to_quat_xyzw(sim.data.body_xmat[body_id]),
            )
        eef_site = robot.eef_site_id["right"]
        step = SimStep(
            stamp_ns=time.time_ns(),
            step=self._step,
            image=image,
            eef_pos=np.array(sim.data.site_xpos[eef_site]),
            eef_quat_xyzw=_rotmat_to_quat_xyzw(sim.data.site_xmat[eef_site]),
            gripper_qpos=np.array(obs["robot0_gripper_qpos"]),
            joint_names=[j.removeprefix("robot0_") for j in robot.robot_joints],
            joint_pos=np.array(obs["robot0_joint_pos"]),
            object_poses=objects,
            success=bool(env._check_success()),
        )
        self._last = step
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback(step)
        return step
