"""The jobs: what composes the packages below into a run. The WMPO loop and the trainer node that
runs it through a graph, the collectors of real episodes, the base policy from nothing, the loop
demo (make demo), the world-model study and Table 1. Jobs that need a sim graph of their own take
an ``EpisodeRunner`` (wmpo_jobs.collector; wmpo_bringup.sim_episodes.run_sim_episodes), so this
package sits below wmpo_bringup, which launches the trainer node."""

from importlib import resources
from pathlib import Path

JOBS = Path(str(resources.files(__name__) / "jobs"))  # the jobs' embedded YAML files
