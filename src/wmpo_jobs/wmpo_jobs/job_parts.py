"""Job configs inside composite jobs (wmpo loop-demo, wmpo base-policy): the same dataclass with
the same fields, docs and defaults, less the fields the composite job fills in itself (its
folders, the models it made, threads and device), which are hidden from its command line and
refused in its config file."""

from dataclasses import dataclass, field

from tyro.conf import Suppress

from wmpo_jobs.configs import LoopConfig
from wmpo_policy.configs import BCConfig
from wmpo_worldmodel.configs import WMConfig


@dataclass
class _Runtime:
    """Threads and device: the composite job's own, set on every part it runs."""

    threads: Suppress[int] = 0
    device: Suppress[str] = ""


@dataclass
class BCPart(_Runtime, BCConfig):
    """Behaviour cloning (the fields of wmpo train-bc)."""

    datasets: Suppress[list[str]] = field(default_factory=list)
    output: Suppress[str] = ""


@dataclass
class WMPart(_Runtime, WMConfig):
    """World-model pretraining on the demonstrations (the fields of wmpo train-wm)."""

    datasets: Suppress[list[str]] = field(default_factory=list)
    output: Suppress[str] = ""
    init_checkpoint: Suppress[str] = ""


@dataclass
class LoopPart(_Runtime, LoopConfig):
    """The WMPO loop (the fields of wmpo loop)."""

    task: Suppress[str] = ""
    policy: Suppress[str] = ""
    world_model: Suppress[str] = ""
    demos: Suppress[str] = ""
    output: Suppress[str] = ""
