"""How many pixels the simulated camera gives the objects a task needs, and whether a narrower
field of view (a zoom of the same camera) keeps them in the frame. Per field of view: the nut's
(or cube's) and the target peg's pixel positions at the policy's input size, how many of the
scenes keep both in the frame, and pixels per centimetre on the table at the nut.

  python bench/camera_framing.py --task NutAssemblySquare --seeds 0:20 --fovy 45 30 22 --size 64
"""

import argparse
import math

import numpy as np

from wmpo_common.ranges import parse_range
from wmpo_robot_io.sim.world import SimConfig, SimWorld

OBJECTS = {"NutAssemblySquare": ["SquareNut_main", "peg1"], "Lift": ["cube_main"]}


def project(point: np.ndarray, position: np.ndarray, rotation: np.ndarray, fovy_deg: float, size: int):
    """World point -> (u, v) pixels (u right, v down) and depth [m] of a square pinhole camera."""
    x, y, z = rotation.T @ (point - position)
    focal = size / 2 / math.tan(math.radians(fovy_deg) / 2)
    return size / 2 + focal * x / -z, size / 2 - focal * y / -z, -z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="NutAssemblySquare", choices=list(OBJECTS))
    parser.add_argument("--seeds", default="0:20")
    parser.add_argument("--fovy", type=float, nargs="+", default=[45.0, 30.0, 22.0], help="degrees")
    parser.add_argument("--size", type=int, default=64, help="policy input, px")
    args = parser.parse_args()

    world = SimWorld(SimConfig())
    scenes = []  # per seed: {object: world position}
    for seed in parse_range(args.seeds):
        step = world.reset(args.task, seed=seed)
        scenes.append({name: step.object_poses[name][0] for name in OBJECTS[args.task]})
    position, rotation = world.camera_pose()
    print(f"{args.task}, {len(scenes)} scenes, camera at {np.round(position, 2).tolist()}, {args.size} px input")
    names = OBJECTS[args.task]
    for fovy in args.fovy:
        focal = args.size / 2 / math.tan(math.radians(fovy) / 2)  # px
        pixels = np.array([[project(scene[n], position, rotation, fovy, args.size) for n in names] for scene in scenes])
        u, v, depth = pixels[..., 0], pixels[..., 1], pixels[..., 2]  # (scenes, objects)
        inside = np.all((u >= 0) & (u < args.size) & (v >= 0) & (v < args.size), axis=1).sum()
        px_per_cm = np.median(focal / depth[:, 0] / 100)
        spans = ", ".join(
            f"{n} u {u[:, i].min():.0f}..{u[:, i].max():.0f} v {v[:, i].min():.0f}..{v[:, i].max():.0f}"
            for i, n in enumerate(names)
        )
        print(
            f"fovy {fovy:4.0f} deg: all in frame {inside}/{len(scenes)}, {px_per_cm:.2f} px/cm at {names[0]}; {spans}"
        )
    world.close()


if __name__ == "__main__":
    main()
