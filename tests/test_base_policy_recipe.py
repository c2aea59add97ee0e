"""`wmpo base-policy`'s recipe per task: the YAML's value, an explicit option over it, clear refusals."""

import pytest

from wmpo_bringup import cli
from wmpo_jobs.base_policy import RECIPES


def test_the_embedded_recipe_covers_every_task_and_options_override_it():
    from wmpo_robot_io.sim.tasks import TASKS

    jobs = dict(cli.build("base-policy", ["--tasks", *TASKS]))
    for task, job in jobs.items():
        assert job.recipe.demos > 0 and job.recipe.bc.vision_tower == "efficientnet_lite0", task
    overridden = dict(cli.build("base-policy", ["--tasks", "Lift", "--recipe.bc.steps", "7", "--recipe.demos", "3"]))
    assert (overridden["Lift"].recipe.bc.steps, overridden["Lift"].recipe.demos) == (7, 3)
    assert overridden["Lift"].recipe.bc.text_layers == jobs["Lift"].recipe.bc.text_layers  # not given: the recipe's
    assert RECIPES.is_file()


def test_unknown_tasks_and_fields_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="no recipe for 'Stack'"):
        cli.build("base-policy", ["--tasks", "Stack"])
    (tmp_path / "r.yaml").write_text("Lift:\n  demos: 3\n  bc: {stepz: 4}\n")
    with pytest.raises(SystemExit, match="Lift: recipe: bc: unknown fields stepz of BCPart"):
        cli.build("base-policy", ["--tasks", "Lift", "--recipes", str(tmp_path / "r.yaml")])
    (tmp_path / "r.yaml").write_text("Lift:\n  bc: {output: elsewhere}\n")  # the job's own folders
    with pytest.raises(SystemExit, match="unknown fields output"):
        cli.build("base-policy", ["--tasks", "Lift", "--recipes", str(tmp_path / "r.yaml")])
