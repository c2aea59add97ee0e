# The two commands of this project. Both build the environment first (idempotent, fast when
# nothing changed): apt packages, .venv with pinned packages, wmpo_interfaces built into it.
VENV ?= .venv
PY := $(VENV)/bin/python
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: env demo test lint bench lock clean

env:
	@VENV=$(VENV) bash scripts/setup_env.sh

## The main job: the WMPO loop from nothing on the simulated Lift task (expert demos -> base policy
## -> world model -> collect, align, reward, GRPO in imagination, evaluate); sizes in jobs/loop_demo.yaml.
demo: env
	$(VENV)/bin/wmpo loop-demo --output runs/loop_demo

## The test suite (what CI runs), then ruff and hadolint.
test: env
	$(PY) -m pytest
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## Benchmarks (not in CI): print figures side by side.
bench: env
	$(PY) bench/recorder_throughput.py
	$(PY) bench/policy_latency.py
	$(PY) bench/imagination_throughput.py
	$(PY) bench/bc_step_cost.py

## Re-pin requirements.lock from the venv (after changing requirements.txt); local version
## labels (+cpu) are dropped so that GPU machines resolve the same versions.
lock: env
	$(VENV)/bin/pip freeze --exclude-editable | sed -E 's/\+[a-z0-9.]+$$//' > requirements.lock

clean:
	rm -rf build runs
