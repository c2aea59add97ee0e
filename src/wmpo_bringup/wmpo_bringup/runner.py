"""The pip-only runner: starts a mode's graph (graph.py) as one process per NodeSpec."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from wmpo_bringup.environment import node_environment
from wmpo_bringup.graph import NodeSpec, check_parameters, graph, mode_parameters, params_file


class GraphError(RuntimeError):
    """A node process failed; the text names it and points at its log."""


class GraphProcesses:
    """The processes of one mode. Use as a context manager: nodes stop (SIGINT) on exit.

    ``overrides``: {node name: {parameter: value}}, written to an extra params file that is passed
    after the mode's own, so it wins. Logs: ``<log_dir>/<process>.log``.
    """

    def __init__(
        self,
        mode: str,
        log_dir: Path,
        params: Path | None = None,
        overrides: dict | None = None,
        env: dict | None = None,
        only: tuple[str, ...] = (),
    ):
        self.specs = tuple(s for s in graph(mode) if not only or s.executable in only)
        self.mode = mode
        self.log_dir = Path(log_dir)
        self.params = Path(params) if params else params_file(mode)
        self.overrides = overrides or {}
        self.env = env or node_environment(robot=mode == "robot", log_dir=str(self.log_dir / "ros"))
        self.processes: dict[str, subprocess.Popen] = {}

    def command(self, spec: NodeSpec, overrides_file: Path | None) -> list[str]:
        cmd = [sys.executable, "-m", spec.module(), "--ros-args", "--params-file", str(self.params)]
        if overrides_file is not None:
            cmd += ["--params-file", str(overrides_file)]
        return cmd

    def start(self) -> "GraphProcesses":
        """Start every node process; GraphError, and nothing started, for refused parameters."""
        try:
            check_parameters(self.mode, mode_parameters(self.params, overrides=self.overrides))
        except ValueError as error:
            raise GraphError(str(error)) from None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        overrides_file = None
        if self.overrides:
            overrides_file = self.log_dir / "overrides.yaml"
            overrides_file.write_text(
                yaml.safe_dump({node: {"ros__parameters": values} for node, values in self.overrides.items()})
            )
        for spec in self.specs:
            log = open(self.log_dir / f"{spec.name}.log", "w")  # noqa: SIM115  (owned by the child)
            self.processes[spec.name] = subprocess.Popen(
                self.command(spec, overrides_file), stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        return self

    def check(self) -> None:
        """Raise GraphError if any node process has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = self.log_dir / f"{name}.log"
                tail = "".join(log.read_text().splitlines(keepends=True)[-15:]) if log.exists() else ""
                raise GraphError(f"node process {name} exited with {process.returncode}; {log}:\n{tail}")

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        """SIGINT every node, then SIGKILL what is still alive after ``timeout``; return exit codes."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return {name: process.returncode for name, process in self.processes.items()}

    def __enter__(self) -> "GraphProcesses":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
