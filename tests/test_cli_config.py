"""Each command's config dataclass is its command line: the defaults of ``wmpo COMMAND`` are the
dataclass defaults (restated nowhere), every field is an option with its doc in --help,
``--config FILE.yaml`` sets fields under the options and refuses what does not fit, and every
README command line parses."""

import ast
import dataclasses
import re
import shlex
import typing
from pathlib import Path

import pytest
import yaml
from tyro.conf import Positional

from wmpo_bringup import cli
from wmpo_bringup.config_cli import _suppressed, from_mapping, load_config
from wmpo_jobs.base_policy import RECIPES, BasePolicyJob
from wmpo_jobs.loop_demo import DEFAULT_CONFIG, LoopDemoConfig

ROOT = Path(__file__).resolve().parents[1]
_POSITIONAL = typing.get_args(Positional[int])[1:]


def _positional(hint) -> bool:
    return typing.get_origin(hint) is typing.Annotated and any(m in _POSITIONAL for m in hint.__metadata__)


def _sample(hint):
    """A value of a required field's type, and its command-line words."""
    hint = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)[0], [typing.get_args(hint)[0]]
    if typing.get_origin(hint) is list:
        return ["some/folder"], ["some/folder"]
    return "some/folder", ["some/folder"]


def required_args(cls) -> tuple[list[str], dict]:
    """Command-line words that give every required field of ``cls``, and the fields' values."""
    hints = typing.get_type_hints(cls, include_extras=True)
    words, values, positional = [], {}, []
    for field in dataclasses.fields(cls):
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            value, given = _sample(hints[field.name])
            values[field.name] = value
            if _positional(hints[field.name]):
                positional += given
            else:
                words += [f"--{field.name.replace('_', '-')}", *given]
    return positional + words, values


def option_fields(cls, prefix: str = "") -> list[str]:
    """How --help shows each option of ``cls`` (nested dataclasses prefixed; positional ones by
    their metavar; the fields a composite job fills in itself left out)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    plain = typing.get_type_hints(cls)
    out = []
    for field in dataclasses.fields(cls):
        hint, name = hints[field.name], prefix + field.name.replace("_", "-")
        if _suppressed(hint):
            continue
        if _positional(hint):
            required = field.default is dataclasses.MISSING
            out.append(field.name.upper() if required else f"[{field.name.upper()}]")
        elif dataclasses.is_dataclass(plain[field.name]):
            out += option_fields(plain[field.name], name + ".")
        elif plain[field.name] is bool:
            head, _, tail = name.rpartition(".")
            out.append(f"--{name}, --{head}.no-{tail}" if head else f"--{name}, --no-{name}")
        else:
            out.append(f"--{name}")
    return out


PLAIN = [name for name, command in cli.COMMANDS.items() if command.parse is None and command.default_file is None]


@pytest.mark.parametrize("name", PLAIN)
def test_the_command_line_defaults_are_the_dataclass_defaults(name):
    cls = cli.COMMANDS[name].config_class()
    args, values = required_args(cls)
    assert cli.build(name, args) == cls(**values)


def test_loop_demo_defaults_are_its_yaml_over_the_dataclass():
    config = cli.build("loop-demo", [])
    assert config == load_config(LoopDemoConfig, DEFAULT_CONFIG)
    assert config.loop.budget == 16 and config.loop.grpo.group_size == 4 and config.base.bc.steps == 800
    # what the YAML leaves out is the dataclasses' (the measured RL rate and mini-batch included)
    assert config.loop.grpo.learning_rate == 5e-5 and config.loop.grpo.mini_batch == 32
    assert config.base.bc.text_layers == 2 and config.world_model.context_noise_level == 15


def test_base_policy_builds_one_job_per_task_with_its_recipe_under_the_options():
    recipes = yaml.safe_load(RECIPES.read_text())
    jobs = cli.build("base-policy", [])
    assert [task for task, _ in jobs] == BasePolicyJob().tasks
    for task, job in jobs:
        assert job == from_mapping(BasePolicyJob, {"recipe": recipes[task]})
    square = dict(jobs)["NutAssemblySquare"].recipe
    assert (square.demos, square.bc.steps, square.bc.batch_size, square.bc.text_layers) == (150, 3000, 32, 2)
    jobs = dict(cli.build("base-policy", ["--tasks", "NutAssemblySquare", "--recipe.bc.steps", "5000"]))
    assert jobs["NutAssemblySquare"].recipe.bc.steps == 5000  # the option over the task's recipe
    assert jobs["NutAssemblySquare"].recipe.demos == 150
    with pytest.raises(SystemExit, match="no recipe for 'Stack'"):
        cli.build("base-policy", ["--tasks", "Stack"])


def help_text(name: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_field_is_an_option_with_its_doc_in_help(name, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # one column of options, read in order
    cls = cli.COMMANDS[name].config_class()
    text = help_text(name, capsys)
    shown = option_fields(cls)
    assert shown
    for option in shown:
        found = re.search(re.escape(option) + r"(?![\w.-])", text)
        assert found, f"wmpo {name} --help has no {option}"
        segment = re.split(r"\((?:default|required)", text[found.end() :], maxsplit=1)[0]
        doc = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b[A-Z]+\b|\|", "", segment)
        assert re.search(r"[a-z]{2}", doc), f"wmpo {name} --help: {option} has no help text: {segment!r}"


def test_help_imports_no_training_library():
    """``wmpo COMMAND --help`` reads the command's config only: the configs live in light modules
    (wmpo_*.configs), the code that runs a job imports torch and the rest when it runs."""
    import subprocess
    import sys

    heavy = ("torch", "transformers", "diffusers", "rclpy", "robosuite", "rosbags", "matplotlib", "ray")
    code = (
        "import sys\nfrom wmpo_bringup import cli\n"
        "for command in cli.COMMANDS.values():\n    command.config_class()\n"
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"reading the configs imports {result.stdout.strip()}"


def test_wmpo_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for name, command in cli.COMMANDS.items():
        assert f"{name}  " in text and command.summary in text


def test_a_config_file_sets_fields_and_the_options_override_it(tmp_path):
    (tmp_path / "wm.yaml").write_text("datasets: [a, b]\nsteps: 7\nlearning_rate: 5e-4\nbatch_size: 4\n")
    config = cli.build("train-wm", ["--config", str(tmp_path / "wm.yaml"), "--batch-size", "3"])
    assert (config.datasets, config.steps, config.batch_size, config.learning_rate) == (["a", "b"], 7, 3, 5e-4)
    (tmp_path / "loop.yaml").write_text("task: Lift\npolicy: p\nworld_model: w\ndemos: d\ngrpo: {group_size: 2}\n")
    config = cli.build("loop", [f"--config={tmp_path / 'loop.yaml'}", "--grpo.start-states", "3", "--device", "cuda"])
    assert (config.grpo.group_size, config.grpo.start_states, config.device) == (2, 3, "cuda")
    assert config.grpo.learning_rate == 5e-5  # the rest of the nested config keeps its defaults
    (tmp_path / "demo.yaml").write_text("loop: {budget: 2}\n")
    demo = cli.build("loop-demo", ["--config", str(tmp_path / "demo.yaml")])
    assert demo.loop.budget == 2 and demo.base == LoopDemoConfig().base  # a file replaces the default YAML


@pytest.mark.parametrize(
    ("command", "text", "reason"),
    [
        ("train-wm", "datasets: [a]\nstepz: 3\n", "unknown fields stepz of WMConfig"),
        ("loop", "task: Lift\ngrpo: {group_sise: 2}\n", "grpo: unknown fields group_sise of GRPOConfig"),
        ("loop-demo", "loop: {policy: mine}\n", "loop: unknown fields policy of LoopPart"),  # the job fills it
        ("train-wm", "datasets: [a]\nsteps: many\n", "steps: 'many' is not a <class 'int'>"),
        ("train-wm", "datasets: a\n", "datasets: 'a' is not a list"),
        ("train-wm", "- a\n", "expected a mapping"),
    ],
)
def test_a_config_file_that_does_not_fit_is_refused_with_the_reason(tmp_path, command, text, reason):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(SystemExit, match=re.escape(reason)):
        cli.build(command, ["--config", str(tmp_path / "bad.yaml")])


def test_required_fields_come_from_the_file_or_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.build("train-wm", [])
    assert "--datasets" in capsys.readouterr().err
    (tmp_path / "wm.yaml").write_text("datasets: [a]\n")
    assert cli.build("train-wm", ["--config", str(tmp_path / "wm.yaml")]).datasets == ["a"]


def test_the_rl_learning_rate_and_mini_batch_are_the_measured_ones_everywhere():
    from wmpo_jobs.configs import LoopConfig
    from wmpo_trainer.configs import DPOConfig, GRPOConfig

    assert GRPOConfig().learning_rate == DPOConfig.learning_rate == 5e-5  # Table 1's (README)
    assert GRPOConfig().mini_batch == 32
    loop = LoopConfig(task="Lift", policy="p", world_model="w", demos="d")
    assert loop.grpo == GRPOConfig()
    for name in ("loop", "online-grpo", "dpo", "train-wmpo", "loop-demo"):
        cls = cli.COMMANDS[name].config_class()
        assert any(f.name == "device" for f in dataclasses.fields(cls)), f"wmpo {name} has no --device"


# -- defaults restated nowhere -----------------------------------------------------------------
def test_no_argparse_in_the_packages():
    """Every command line of the packages is built from its dataclass (wmpo_bringup.config_cli)."""
    users = [
        p for p in (ROOT / "src").rglob("*.py") if re.search(r"^\s*import argparse|add_argument\(", p.read_text(), re.M)
    ]
    assert not users, f"argparse in {users}: make the options a config dataclass"


def test_no_node_parameter_restates_a_config_default():
    """A node parameter that mirrors a config field (the trainer node's loop settings) defaults to
    that field's dataclass default, and no params file sets one to a copy of it."""
    from wmpo_bringup.graph import MODES, params_file
    from wmpo_jobs.configs import LoopConfig
    from wmpo_jobs.trainer_node import PARAMETERS
    from wmpo_trainer.configs import GRPOConfig

    mirrored = {
        field.name: (cls.__name__, field.default)
        for cls in (LoopConfig, GRPOConfig)
        for field in dataclasses.fields(cls)
        if field.name in PARAMETERS and field.default is not dataclasses.MISSING
    }
    assert set(mirrored) == set(PARAMETERS) - {"data_root"}  # every loop setting of the node is a config field
    for name, (cls, default) in mirrored.items():
        assert PARAMETERS[name].default == default, f"trainer {name}: {PARAMETERS[name].default} != {cls}.{name}"
    source = ast.parse((ROOT / "src" / "wmpo_jobs" / "wmpo_jobs" / "trainer_node.py").read_text())
    table = next(n.value for n in source.body if isinstance(n, ast.Assign) and n.targets[0].id == "PARAMETERS")
    for key, value in zip(table.keys, table.values, strict=True):
        if key.value in mirrored:  # Parameter(LoopConfig.align_steps, ...), not Parameter(500, ...)
            assert ast.unparse(value.args[0]) == f"{mirrored[key.value][0]}.{key.value}", ast.unparse(value)
    for mode in MODES:
        node = yaml.safe_load(params_file(mode).read_text()).get("trainer") or {}
        values = node.get("ros__parameters") or {}
        copies = [f"{name}: {values[name]}" for name in mirrored if values.get(name) == mirrored[name][1]]
        assert not copies, f"params/{mode}.yaml restates the config defaults {copies}"


ADD_ARGUMENT = re.compile(r"add_argument\(\s*\"--([a-z0-9-]+)\"(.*?)\)\n", re.S)
LITERAL_DEFAULT = re.compile(r"default=([-+0-9.e]+|\"[^\"]*\"|'[^']*'|True|False)\s*[,)]")
IMPORTED_CONFIG = re.compile(r"from (wmpo_\w+(?:\.\w+)*) import ([^\n]*Config\b[^\n]*)")


def test_no_script_restates_a_default_of_the_configs_it_builds():
    """A bench script's option that sets a field of a config it imports takes that field's default
    from the dataclass (default=GRPOConfig.learning_rate), never a copy of its value."""
    import importlib

    copies = []
    for script in sorted((ROOT / "bench").glob("*.py")):
        source = script.read_text()
        defaults = {}
        for module, names in IMPORTED_CONFIG.findall(source):
            for name in re.findall(r"\b\w*Config\b", names):
                cls = getattr(importlib.import_module(module), name, None)
                if dataclasses.is_dataclass(cls):
                    for field in dataclasses.fields(cls):
                        if field.default is not dataclasses.MISSING:
                            defaults.setdefault(field.name, []).append((name, field.default))
        for flag, rest in ADD_ARGUMENT.findall(source + "\n"):
            literal = LITERAL_DEFAULT.search(rest + ")")
            field = flag.replace("-", "_")
            if literal and field in defaults:
                value = ast.literal_eval(literal.group(1))
                copies += [f"{script.name}: --{flag} {value} = {n}.{field}" for n, d in defaults[field] if d == value]
    assert not copies, "restated config defaults: " + "; ".join(copies)


# -- the README's command lines parse ------------------------------------------------------------
FENCED_BASH = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.S | re.M)
WMPO_LINE = re.compile(r"(?:^|[\s;&|(])(?:\.venv/bin/wmpo|wmpo|\$W)\s+([a-z][a-z0-9-]*)((?:\s+[^\s;&|#]+)*)")


def readme_command_lines() -> list[tuple[str, list[str]]]:
    lines = []
    for document in (ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))):
        for block in FENCED_BASH.findall(document.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #", 1)[0]
                for name, rest in WMPO_LINE.findall(line):
                    if "..." not in rest and name in cli.COMMANDS:
                        lines.append((name, shlex.split(rest)))
    return lines


@pytest.mark.parametrize(("name", "args"), readme_command_lines(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_documented_command_line_parses(name, args):
    cli.build(name, args)  # SystemExit on an unknown or misspelt option


# -- a continued world model keeps its architecture ----------------------------------------------
def test_continuing_a_world_model_takes_its_architecture_and_refuses_a_conflicting_option(tmp_path):
    import json

    import numpy as np
    from test_world_model import TOY_SIZE, tiny_pipeline, toy_episode

    from wmpo_episodes.dataset import write_dataset
    from wmpo_worldmodel.pipeline import WorldModelPipeline

    checkpoint = tiny_pipeline(frames_per_pass=4, context_noise_level=0).save_atomically(tmp_path / "wm")
    write_dataset(tmp_path / "toy", [toy_episode(np.random.default_rng(i)) for i in range(2)])
    base = ["--datasets", str(tmp_path / "toy"), "--init-checkpoint", str(checkpoint), "--threads", "1"]
    for conflict, named in [
        (["--frames-per-pass", "2"], "frames_per_pass 2 (the checkpoint's: 4)"),
        (["--context-noise-level", "30"], "context_noise_level 30 (the checkpoint's: 0)"),
        (["--image-size", "32"], f"image_size 32 (the checkpoint's: {TOY_SIZE})"),
        (["--vae", str(tmp_path / "vae")], "vae"),
    ]:
        with pytest.raises(SystemExit, match=re.escape(named)):
            cli.main(["train-wm", *base, "--output", str(tmp_path / "refused"), *conflict])
    # Left out (the defaults) or the same as the checkpoint's: continued as it is.
    args = [*base, "--output", str(tmp_path / "aligned"), "--steps", "1", "--batch-size", "2", "--sampler-steps", "1"]
    assert cli.main(["train-wm", *args, "--frames-per-pass", "4"]) == 0
    aligned = WorldModelPipeline.load(tmp_path / "aligned" / "checkpoints" / "step_1")
    assert (aligned.unet.config.frames_per_pass, aligned.config.context_noise_level) == (4, 0)
    recorded = json.loads((tmp_path / "aligned" / "wm_config.json").read_text())
    assert (recorded["frames_per_pass"], recorded["context_noise_level"], recorded["image_size"]) == (4, 0, TOY_SIZE)


# -- a continued policy or reward model keeps its architecture, as a world model does --------------
def test_continuing_a_policy_takes_its_architecture_and_refuses_a_conflicting_option(tmp_path):
    import json

    import numpy as np
    from test_vla_model import INSTRUCTIONS, small_policy

    from wmpo_episodes.dataset import write_dataset

    checkpoint = small_policy().save_pretrained(tmp_path / "vla")  # SigLIP, 64 px, 2 + 2 layers, parallel
    rng = np.random.default_rng(0)
    summary = {"task": "Lift", "instruction": INSTRUCTIONS[0], "outcome": "success", "success_step": 9}
    arrays = {
        "frames": rng.integers(0, 256, (11, 64, 64, 3), dtype=np.uint8),
        "frame_stamps": np.arange(11),
        "actions": rng.uniform(-1, 1, (10, 7)),
        "commanded": rng.uniform(-1, 1, (10, 7)),
    }
    write_dataset(tmp_path / "data", [({**summary, "episode_id": "e0", "policy_id": "expert"}, arrays)])
    base = ["--datasets", str(tmp_path / "data"), "--init-checkpoint", str(checkpoint), "--threads", "1"]
    for conflict, named in [
        (["--text-layers", "3"], "text_layers 3 (the checkpoint's: 2)"),
        (["--vision-tower", "conv_keypoints"], "vision_tower 'conv_keypoints' (the checkpoint's: 'siglip')"),
        (["--image-size", "32"], "image_size 32 (the checkpoint's: 64)"),
        (["--decoding", "autoregressive"], "decoding 'autoregressive' (the checkpoint's: 'parallel')"),
        (["--model-overrides", "{projector_hidden_size: 32}"], "model_overrides"),
    ]:
        with pytest.raises(SystemExit, match=re.escape(named)):
            cli.main(["train-bc", *base, "--output", str(tmp_path / "refused"), *conflict])
        assert not (tmp_path / "refused").exists()  # refused before anything is written
    # Left out (the defaults) or the same as the checkpoint's: continued as it is.
    args = [*base, "--output", str(tmp_path / "bc"), "--steps", "1", "--batch-size", "2", "--text-layers", "2"]
    assert cli.main(["train-bc", *args]) == 0
    recorded = json.loads((tmp_path / "bc" / "bc_config.json").read_text())
    assert (recorded["vision_tower"], recorded["image_size"], recorded["text_layers"]) == ("siglip", 64, 2)


def test_continuing_a_reward_model_takes_its_architecture_and_refuses_a_conflicting_option(tmp_path):
    import json

    from test_reward_model import SIZE, toy_episode

    from wmpo_episodes.dataset import write_dataset
    from wmpo_worldmodel.reward_model import VideoRewardModel

    checkpoint = VideoRewardModel.tiny(image_size=SIZE, num_frames=4).save_pretrained(tmp_path / "rm")
    write_dataset(tmp_path / "toy", [toy_episode(i, success=i % 2 == 0) for i in range(4)])
    base = ["--datasets", str(tmp_path / "toy"), "--init-checkpoint", str(checkpoint), "--threads", "1"]
    for conflict, named in [
        (["--num-frames", "6"], "num_frames 6 (the checkpoint's: 4)"),
        (["--image-size", "48"], f"image_size 48 (the checkpoint's: {SIZE})"),
    ]:
        with pytest.raises(SystemExit, match=re.escape(named)):
            cli.main(["train-reward", *base, "--output", str(tmp_path / "refused"), *conflict])
        assert not (tmp_path / "refused").exists()
    args = [*base, "--output", str(tmp_path / "reward"), "--steps", "1", "--batch-size", "2", "--num-frames", "4"]
    assert cli.main(["train-reward", *args]) == 0
    recorded = json.loads((tmp_path / "reward" / "reward_report.json").read_text())["config"]
    assert (recorded["backbone"], recorded["num_frames"], recorded["image_size"]) == ("videomae", 4, SIZE)
