"""LeRobot v3 datasets: episodes exported in LeRobot's layout, and a LeRobot dataset imported into
the project's own format (``dataset``), so that behaviour cloning keeps one path into training.

The layout is the one LeRobot 0.4 writes (``codebase_version`` v3.0; the path templates, the
info.json schema, the episode table and the statistics of ``lerobot.datasets.utils`` and
``lerobot_dataset``), written with pyarrow and PyAV as LeRobot does, and read by its
``LeRobotDataset(repo_id, root=FOLDER)`` offline (tests/test_lerobot_dataset.py checks it):

  meta/info.json                             codebase_version, fps, features, path templates, totals
  meta/stats.json                            per feature min, max, mean, std, count, q01-q99 (images
                                             per channel in [0, 1])
  meta/tasks.parquet                         the task strings (the index) -> task_index
  meta/episodes/chunk-000/file-000.parquet   one row per episode: its length, where its rows and its
                                             video are, its statistics (stats/...) and its label
                                             (success, outcome, success_step) with our summary fields
  data/chunk-000/file-000.parquet            one row per frame
  videos/<camera key>/chunk-000/file-000.mp4 the episodes' frames one after another (AV1, yuv420p,
                                             a key frame every 2 frames, crf 30: LeRobot's defaults)

Rows: an episode of T control steps has T + 1 rows, one per observation (the final observation
included: the world and reward models need it). Row k holds frame k and the action taken from it;
the last row's action repeats the one before it (as BC pads chunks past the end) and only that row
has ``next.done``. Per row: ``action`` (7,) the commanded action (what BC learns),
``executed_action`` (7,) the executed one (after the safety filter), ``next.success`` (the task is
done after this row's action: k >= success_step of a successful episode), ``next.done``, and
LeRobot's timestamp (k / fps), frame_index, episode_index, index and task_index. The LeRobot task
is the episode's instruction.

Import (``read_lerobot_episodes``): N rows give N frames and N - 1 actions, the last row's action
dropped, so an export imports back to the same frames (within video encoding loss) and the same
actions. ``action`` gives the commanded actions, ``executed_action`` (where present) the executed
ones. The label comes from the episode table's ``outcome`` or ``success`` column, else from
``next.success``; an episode with none of them is taken as a successful demonstration. Videos are
decoded with PyAV, image features from their PNG bytes; nothing from LeRobot is imported.
"""

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from wmpo_common.atomic_folder import atomic_folder
from wmpo_common.atomic_json import write_json
from wmpo_episodes.dataset import DatasetError, EpisodeRecord

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
CHUNK_FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE_PATTERN + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE_PATTERN + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE_PATTERN + ".mp4"
CHUNKS_SIZE = 1000  # files per chunk folder
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
ACTION_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]  # OSC_POSE deltas, gripper -1 open / +1 closed
DEFAULT_FEATURES = {  # LeRobot's own columns, after the dataset's features
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


@dataclass
class LeRobotOptions:
    """LeRobot v3 export and import settings."""

    fps: int = 20  # export: control steps per second (timestamps, video frame rate); the sim arm's 20 Hz
    # The camera's feature key; import: this camera if the dataset has it, else its only camera.
    camera_key: str = "observation.images.front"
    vcodec: Literal["libsvtav1", "h264", "hevc"] = "libsvtav1"  # export: video codec (LeRobot's default AV1)
    crf: int = 30  # export: constant rate factor (lower = better quality, bigger files); LeRobot's 30
    gop: int = 2  # export: frames between key frames (LeRobot's 2: fast random access)


def is_lerobot_dataset(path: Path) -> bool:
    return (Path(path) / INFO_PATH).is_file()


# -- statistics (LeRobot's compute_stats: per episode, then aggregated) ---------------------------
def feature_stats(values: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """min, max, mean, std, count and quantiles of one episode's values (N, ...) along the first
    axis; images (N, H, W, 3) uint8 per channel, scaled to [0, 1], shaped (3, 1, 1), count = N."""
    count = len(values)
    if image:
        samples = values.reshape(-1, values.shape[-1]).astype(np.float64) / 255.0
    else:
        samples = values.reshape(count, -1).astype(np.float64)
    extremes = values.reshape(count, -1) if np.issubdtype(values.dtype, np.integer) and not image else samples
    stats = {
        "min": extremes.min(0),
        "max": extremes.max(0),
        "mean": samples.mean(0),
        "std": samples.std(0),
        **{name: np.quantile(samples, q, axis=0) for name, q in QUANTILES.items()},
    }
    shape = (-1, 1, 1) if image else values.shape[1:] or (1,)
    stats = {name: value.reshape(shape) for name, value in stats.items()}
    stats["count"] = np.array([count])
    return stats


def aggregate_stats(episode_stats: list[dict]) -> dict:
    """The dataset's statistics from its episodes', as LeRobot aggregates them: min of the minima,
    max of the maxima, the count-weighted mean, the pooled variance, count-weighted quantiles."""
    result = {}
    for key in episode_stats[0]:
        parts = [s[key] for s in episode_stats]
        counts = np.array([p["count"][0] for p in parts], np.float64)
        weights = counts.reshape(-1, *[1] * parts[0]["mean"].ndim) / counts.sum()
        means = np.stack([p["mean"] for p in parts])
        mean = (means * weights).sum(0)
        variance = ((np.stack([p["std"] for p in parts]) ** 2 + (means - mean) ** 2) * weights).sum(0)
        result[key] = {
            "min": np.min([p["min"] for p in parts], axis=0),
            "max": np.max([p["max"] for p in parts], axis=0),
            "mean": mean,
            "std": np.sqrt(variance),
            "count": np.array([int(counts.sum())]),
            **{name: (np.stack([p[name] for p in parts]) * weights).sum(0) for name in QUANTILES},
        }
    return result


def _listed(stats: dict) -> dict:
    return {key: {name: value.tolist() for name, value in s.items()} for key, s in stats.items()}


def _image_samples(frames: np.ndarray) -> np.ndarray:
    """The frames LeRobot samples for image statistics: evenly spaced, about N^0.75 of N (at least
    100), every other pixel of images 300 px or more."""
    n = len(frames)
    wanted = max(min(100, n), min(int(n**0.75), 10_000))
    samples = frames[np.round(np.linspace(0, n - 1, wanted)).astype(int)]
    height, width = frames.shape[1:3]
    if max(height, width) >= 300:
        step = int(max(height, width) / 150)
        samples = samples[:, ::step, ::step]
    return samples


def _next_file(chunk_index: int, file_index: int) -> tuple[int, int]:
    return (chunk_index + 1, 0) if file_index == CHUNKS_SIZE - 1 else (chunk_index, file_index + 1)


# -- export -------------------------------------------------------------------------------------
@contextmanager
def _scheduling_kept():
    """Put the calling thread's scheduling back as it was: SVT-AV1 (LeRobot's AV1 encoder) moves
    the thread that encodes to real-time SCHED_FIFO when it runs as root, and a process left there
    starves the machine once it busy-waits (every process it starts inherits it)."""
    policy, priority = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, priority):
            os.sched_setscheduler(0, policy, priority)


class _VideoFiles:
    """One camera's mp4 files: episodes appended one after another, a new file past the size limit."""

    def __init__(self, root: Path, key: str, options: LeRobotOptions, height: int, width: int):
        self.root, self.key, self.options, self.height, self.width = root, key, options, height, width
        self.chunk_index = self.file_index = 0
        self.container = None
        self.frames_in_file = self.bytes_in_file = 0

    def _open(self):
        import av

        path = self.root / VIDEO_PATH.format(
            video_key=self.key, chunk_index=self.chunk_index, file_index=self.file_index
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        codec_options = {"g": str(self.options.gop), "crf": str(self.options.crf)}
        if self.options.vcodec == "libsvtav1":
            codec_options["preset"] = "12"  # LeRobot's
        self.path = path
        self.container = av.open(str(path), "w", options={"movflags": "faststart"})  # as LeRobot's files
        self.stream = self.container.add_stream(self.options.vcodec, rate=self.options.fps, options=codec_options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
        self.frames_in_file = self.bytes_in_file = 0

    def add(self, frames: np.ndarray) -> dict:
        import av

        if self.container is not None and self.bytes_in_file >= VIDEO_FILES_SIZE_IN_MB * 2**20:
            self.close()
            self.chunk_index, self.file_index = _next_file(self.chunk_index, self.file_index)
        if self.container is None:
            self._open()
        start = self.frames_in_file
        time_base = Fraction(1, self.options.fps)
        with _scheduling_kept():
            for frame in frames:
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                video_frame.pts, video_frame.time_base = self.frames_in_file, time_base
                self._mux(self.stream.encode(video_frame))
                self.frames_in_file += 1
        prefix = f"videos/{self.key}/"
        return {
            prefix + "chunk_index": self.chunk_index,
            prefix + "file_index": self.file_index,
            prefix + "from_timestamp": start / self.options.fps,
            prefix + "to_timestamp": self.frames_in_file / self.options.fps,
        }

    def _mux(self, packets):
        self.container.mux(packets)
        self.bytes_in_file += sum(packet.size for packet in packets)

    def close(self):
        if self.container is not None:
            with _scheduling_kept():
                self._mux(self.stream.encode())
                self.container.close()
            self.container = None

    def info(self) -> dict:
        """The feature's ``info`` (LeRobot's get_video_info of the first file)."""
        import av

        with av.open(str(self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=0, file_index=0))) as video:
            stream = video.streams.video[0]
            return {
                "video.height": stream.height,
                "video.width": stream.width,
                "video.codec": stream.codec.canonical_name,
                "video.pix_fmt": stream.pix_fmt,
                "video.is_depth_map": False,
                "video.fps": int(stream.base_rate),
                "video.channels": 3,
                "has_audio": False,
            }


class _LeRobotWriter:
    def __init__(self, root: Path, options: LeRobotOptions):
        if "/" in options.camera_key or not options.camera_key:
            raise DatasetError(f"camera_key {options.camera_key!r}: a LeRobot feature name without '/'")
        if options.fps <= 0:
            raise DatasetError(f"fps must be > 0, got {options.fps}")
        self.root, self.options = root, options
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict] = []
        self.episode_stats: list[dict] = []
        self.records: list[EpisodeRecord] = []
        self.frames_total = 0
        self.video = None
        self.data_writer = None
        self.data_file = (0, 0)
        self.data_bytes = 0

    def _start(self, frames: np.ndarray, action_dim: int):
        import pyarrow as pa

        height, width = frames.shape[1:3]
        if frames.shape[-1] != 3 or height % 2 or width % 2:
            raise DatasetError(f"frames {frames.shape[1:]}: need RGB images of even height and width (yuv420p video)")
        names = ACTION_NAMES if action_dim == len(ACTION_NAMES) else [f"a{i}" for i in range(action_dim)]
        self.features = {
            self.options.camera_key: {
                "dtype": "video",
                "shape": [int(height), int(width), 3],
                "names": ["height", "width", "channels"],
            },
            "action": {"dtype": "float32", "shape": [action_dim], "names": names},
            "executed_action": {"dtype": "float32", "shape": [action_dim], "names": names},
            "next.success": {"dtype": "bool", "shape": [1], "names": None},
            "next.done": {"dtype": "bool", "shape": [1], "names": None},
            **DEFAULT_FEATURES,
        }
        types = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}
        columns = [(k, f) for k, f in self.features.items() if f["dtype"] != "video"]
        hf_features = {  # the `datasets` Features LeRobot's files carry (datasets 4+: List, Value)
            k: {"dtype": f["dtype"], "_type": "Value"}
            if f["shape"] == [1]
            else {"feature": {"dtype": f["dtype"], "_type": "Value"}, "length": f["shape"][0], "_type": "List"}
            for k, f in columns
        }
        self.schema = pa.schema(
            [
                (k, types[f["dtype"]] if f["shape"] == [1] else pa.list_(types[f["dtype"]], f["shape"][0]))
                for k, f in columns
            ],
            metadata={"huggingface": json.dumps({"info": {"features": hf_features}})},
        )
        self.video = _VideoFiles(self.root, self.options.camera_key, self.options, height, width)
        self.shape = frames.shape[1:]

    def _write_rows(self, table) -> dict:
        import pyarrow.parquet as pq

        if self.data_writer is not None and self.data_bytes >= DATA_FILES_SIZE_IN_MB * 2**20:
            self.data_writer.close()
            self.data_writer, self.data_bytes = None, 0
            self.data_file = _next_file(*self.data_file)
        if self.data_writer is None:
            path = self.root / DATA_PATH.format(chunk_index=self.data_file[0], file_index=self.data_file[1])
            path.parent.mkdir(parents=True, exist_ok=True)
            self.data_writer = pq.ParquetWriter(path, schema=self.schema, compression="snappy", use_dictionary=True)
        self.data_writer.write_table(table)
        self.data_bytes += table.nbytes
        return {"data/chunk_index": self.data_file[0], "data/file_index": self.data_file[1]}

    def add(self, summary: dict, arrays: dict):
        import pyarrow as pa

        frames = np.asarray(arrays["frames"], dtype=np.uint8)
        executed = np.asarray(arrays["actions"], dtype=np.float32)
        commanded = np.asarray(arrays.get("commanded", executed), dtype=np.float32)
        steps = len(executed)
        if steps == 0 or len(frames) != steps + 1 or commanded.shape != executed.shape:
            raise DatasetError(f"episode {summary['episode_id']}: need T + 1 frames for T >= 1 actions")
        if self.video is None:
            self._start(frames, executed.shape[1])
        if frames.shape[1:] != self.shape:
            raise DatasetError(
                f"episode {summary['episode_id']}: frames {frames.shape[1:]}, not {self.shape}; pass image_size"
            )
        index = len(self.episodes)
        rows = steps + 1
        task_index = self.tasks.setdefault(summary["instruction"], len(self.tasks))
        success = summary["outcome"] == "success"
        success_step = int(summary.get("success_step", -1))
        frame_index = np.arange(rows)
        columns = {
            "action": np.concatenate([commanded, commanded[-1:]]),
            "executed_action": np.concatenate([executed, executed[-1:]]),
            "next.success": success & (frame_index >= success_step) if success_step >= 0 else np.full(rows, success),
            "next.done": frame_index == steps,
            "timestamp": (frame_index / self.options.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(rows, index),
            "index": self.frames_total + frame_index,
            "task_index": np.full(rows, task_index),
        }
        arrow = {
            name: pa.FixedSizeListArray.from_arrays(pa.array(value.reshape(-1)), value.shape[1])
            if value.ndim == 2 and value.shape[1] > 1
            else pa.array(value.reshape(-1))
            for name, value in columns.items()
        }
        location = self._write_rows(pa.table(arrow, schema=self.schema))
        video = self.video.add(frames)
        stats = {self.options.camera_key: feature_stats(_image_samples(frames), image=True)}
        stats.update({name: feature_stats(value) for name, value in columns.items()})
        self.episode_stats.append(stats)
        self.episodes.append(
            {
                "episode_index": index,
                "tasks": [summary["instruction"]],
                "length": rows,
                **location,
                "dataset_from_index": self.frames_total,
                "dataset_to_index": self.frames_total + rows,
                **video,
                **{f"stats/{key}/{name}": value.tolist() for key, s in stats.items() for name, value in s.items()},
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
                "success": success,
                "outcome": summary["outcome"],
                "success_step": success_step,
                "instruction": summary["instruction"],
                "episode_id": summary["episode_id"],
                "task_name": summary["task"],
                "policy_id": summary.get("policy_id", ""),
                "seed": int(summary.get("seed", 0)),
                "init_state_id": int(summary.get("init_state_id", -1)),
                "bag": str(summary.get("bag", "")),
            }
        )
        self.records.append(
            EpisodeRecord(
                episode_id=summary["episode_id"],
                task=summary["task"],
                instruction=summary["instruction"],
                outcome=summary["outcome"],
                success_step=success_step,
                num_steps=steps,
                policy_id=summary.get("policy_id", ""),
                frame_start=self.frames_total,
                action_start=self.frames_total - index,
                bag=str(summary.get("bag", "")),
                seed=int(summary.get("seed", 0)),
                init_state_id=int(summary.get("init_state_id", -1)),
            )
        )
        self.frames_total += rows

    def finish(self):
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.episodes:
            raise DatasetError("no episodes to write")
        self.data_writer.close()
        self.video.close()
        self.features[self.options.camera_key]["info"] = self.video.info()
        path = self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), path, compression="snappy")
        tasks = pd.DataFrame({"task_index": list(self.tasks.values())}, index=list(self.tasks))
        tasks.to_parquet(self.root / TASKS_PATH)  # as LeRobot's write_tasks: the task strings are the index
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": None,
            "total_episodes": len(self.episodes),
            "total_frames": self.frames_total,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
            "fps": self.options.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH,
            "features": self.features,
        }
        for name, content in ((INFO_PATH, info), (STATS_PATH, _listed(aggregate_stats(self.episode_stats)))):
            write_json(self.root / name, content, indent=4)

    def close(self):
        if self.data_writer is not None:
            self.data_writer.close()
        if self.video is not None:
            self.video.close()


def write_lerobot_dataset(output: Path, episodes, options: LeRobotOptions | None = None) -> list[EpisodeRecord]:
    """Write (summary, arrays) pairs (as ``dataset.write_dataset`` takes them) as one LeRobot v3
    dataset folder, atomically (a temporary sibling renamed into place)."""
    output = Path(output)
    if output.exists():
        raise FileExistsError(f"{output} exists already; not overwriting")
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner on stderr otherwise
    with atomic_folder(output) as root:
        writer = _LeRobotWriter(root, options or LeRobotOptions())
        try:
            for summary, arrays in episodes:
                writer.add(summary, arrays)
            writer.finish()
        finally:
            writer.close()
    return writer.records


# -- import -------------------------------------------------------------------------------------
def _read_parquet_folder(folder: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = sorted(folder.glob("*/*.parquet"))
    if not paths:
        raise DatasetError(f"no parquet files under {folder}")
    return pa.concat_tables([pq.read_table(p) for p in paths], promote_options="default")


def _read_tasks(root: Path) -> dict[int, str]:
    """task_index -> task string of meta/tasks.parquet (the strings are the pandas index)."""
    import pyarrow.parquet as pq

    table = pq.read_table(root / TASKS_PATH)
    pandas_meta = table.schema.pandas_metadata or {}
    index_columns = [c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)]
    if "task" in table.column_names:
        names = table.column("task").to_pylist()
    elif index_columns:
        names = table.column(index_columns[0]).to_pylist()
    else:
        raise DatasetError(f"{root / TASKS_PATH}: no task strings (neither a 'task' column nor a pandas index)")
    return dict(zip(table.column("task_index").to_pylist(), names, strict=True))


def _decode_video_episodes(path: Path, spans: list[tuple[int, float, np.ndarray]], fps: int) -> dict[int, list]:
    """Frames of several episodes stored in one video file: spans are (episode index,
    from_timestamp, row timestamps); each row gets the decoded frame nearest its time (within
    half a frame). One decoding pass over the file."""
    import av

    wanted = sorted(
        ((start + float(ts), episode, row) for episode, start, stamps in spans for row, ts in enumerate(stamps)),
        key=lambda item: item[0],
    )
    result = {episode: [None] * len(stamps) for episode, _, stamps in spans}
    tolerance = 0.5 / fps
    position = 0
    with av.open(str(path)) as video:
        stream = video.streams.video[0]
        for frame in video.decode(stream):
            time = float(frame.pts * stream.time_base) if frame.pts is not None else None
            if time is None:
                continue
            while position < len(wanted) and wanted[position][0] < time - tolerance:
                position += 1  # a row whose frame is missing stays None
            image = None
            k = position
            while k < len(wanted) and abs(wanted[k][0] - time) <= tolerance:
                if image is None:
                    image = frame.to_ndarray(format="rgb24")
                _, episode, row = wanted[k]
                result[episode][row] = image
                k += 1
            if position >= len(wanted):
                break
    return result


def _matrix(column) -> np.ndarray:
    """(rows, dim) float32 of a list or fixed-size-list column."""
    values = np.asarray(column.combine_chunks().flatten().to_numpy(zero_copy_only=False), np.float32)
    return values.reshape(len(column), -1)


def _decode_images(column) -> list[np.ndarray]:
    import io

    from PIL import Image

    return [np.asarray(Image.open(io.BytesIO(item["bytes"])).convert("RGB")) for item in column.to_pylist()]


def read_lerobot_episodes(root: Path, options: LeRobotOptions | None = None, image_size: int | None = None):
    """(summary, arrays) pairs of a LeRobot v3 dataset folder's episodes, as ``dataset.write_dataset``
    takes them (import; the rules are in the module docstring)."""
    import cv2
    import pyarrow.compute as pc

    options = options or LeRobotOptions()
    root = Path(root)
    try:
        info = json.loads((root / INFO_PATH).read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(f"{root} is not a LeRobot dataset: {error}") from error
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise DatasetError(
            f"{root}: LeRobot codebase_version {version!r}; only v3.x is read (convert older ones with LeRobot)"
        )
    features, fps = info["features"], int(info["fps"])
    cameras = [k for k, f in features.items() if f["dtype"] in ("video", "image")]
    camera = options.camera_key if options.camera_key in cameras else (cameras[0] if len(cameras) == 1 else "")
    if not camera:
        raise DatasetError(f"{root}: {len(cameras)} cameras {cameras}; choose one with camera_key")
    if "action" not in features:
        raise DatasetError(f"{root}: no 'action' feature")
    tasks = _read_tasks(root)
    table = _read_parquet_folder(root / "meta/episodes").sort_by("episode_index")
    episodes = table.select([c for c in table.column_names if not c.startswith("stats/")]).to_pylist()
    data = _read_parquet_folder(root / "data").sort_by("index")
    index = data.column("index").to_numpy()
    is_video = features[camera]["dtype"] == "video"

    rows_of = {}  # an episode's rows: indices dataset_from_index up to dataset_to_index
    for episode in episodes:
        start, stop = episode["dataset_from_index"], episode["dataset_to_index"]
        first = int(np.searchsorted(index, start))
        rows = data.slice(first, stop - start)
        if (
            len(rows) != stop - start
            or not pc.all(pc.equal(rows.column("episode_index"), episode["episode_index"])).as_py()
        ):
            raise DatasetError(f"{root}: episode {episode['episode_index']}: rows {start}-{stop} are not all in data/")
        if len(rows) < 2:
            raise DatasetError(f"{root}: episode {episode['episode_index']} has {len(rows)} rows; need at least 2")
        rows_of[episode["episode_index"]] = rows

    # videos: the episodes of each file decoded in one pass
    frames_of = {}
    if is_video:
        by_file = {}
        for episode in episodes:
            prefix = f"videos/{camera}/"
            path = root / info["video_path"].format(
                video_key=camera, chunk_index=episode[prefix + "chunk_index"], file_index=episode[prefix + "file_index"]
            )
            stamps = np.asarray(rows_of[episode["episode_index"]].column("timestamp").to_numpy(), np.float64)
            by_file.setdefault(path, []).append((episode["episode_index"], episode[prefix + "from_timestamp"], stamps))
        for path, spans in by_file.items():
            frames_of.update(_decode_video_episodes(path, spans, fps))

    for episode in episodes:
        number = episode["episode_index"]
        rows = rows_of[number]
        if is_video:
            frames = frames_of[number]
            missing = [k for k, f in enumerate(frames) if f is None]
            if missing:
                raise DatasetError(f"{root}: episode {number}: no video frame for rows {missing[:5]}")
        else:
            frames = _decode_images(rows.column(camera))
        if image_size:
            frames = [
                f
                if f.shape[:2] == (image_size, image_size)
                else cv2.resize(f, (image_size, image_size), interpolation=cv2.INTER_AREA)
                for f in frames
            ]
        commanded = _matrix(rows.column("action"))[:-1]
        executed = _matrix(rows.column("executed_action"))[:-1] if "executed_action" in rows.column_names else commanded
        stamps = np.round(np.asarray(rows.column("timestamp").to_numpy(), np.float64) * 1e9).astype(np.int64)
        steps = len(commanded)
        next_success = (
            np.asarray(rows.column("next.success").to_pylist(), bool).reshape(-1)
            if "next.success" in rows.column_names
            else None
        )
        if episode.get("outcome") in ("success", "failure", "incomplete"):
            outcome = episode["outcome"]
        elif episode.get("success") is not None:
            outcome = "success" if episode["success"] else "failure"
        elif next_success is not None:
            outcome = "success" if next_success.any() else "failure"
        else:
            outcome = "success"  # an unlabelled episode: a demonstration
        success_step = episode.get("success_step")
        if success_step is None:
            if outcome != "success":
                success_step = -1
            elif next_success is not None and next_success[:steps].any():
                success_step = int(np.argmax(next_success[:steps]))
            else:
                success_step = steps - 1
        first_task = int(rows.column("task_index")[0].as_py())
        summary = {
            "episode_id": episode.get("episode_id") or f"{root.name}_{number:06d}",
            "task": episode.get("task_name") or info.get("robot_type") or root.name,
            "instruction": episode.get("instruction") or tasks[first_task],
            "outcome": outcome,
            "success_step": int(success_step),
            "policy_id": episode.get("policy_id") or f"lerobot:{root.name}",
            "seed": int(episode.get("seed") or 0),
            "init_state_id": int(episode["init_state_id"]) if episode.get("init_state_id") is not None else -1,
            "bag": episode.get("bag") or f"{root}#episode_{number}",
        }
        arrays = {"frames": np.stack(frames), "frame_stamps": stamps, "actions": executed, "commanded": commanded}
        yield summary, arrays
