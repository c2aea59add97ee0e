"""`wmpo base-policy`'s recipe per task: the YAML's value, an explicit option over it, clear refusals."""

import pytest

from wmpo_bringup.base_policy import RECIPES, BasePolicyConfig


def test_the_embedded_recipe_covers_every_task_and_options_override_it(tmp_path):
    from wmpo_robot_io.sim.tasks import TASKS

    for task in TASKS:
        config = BasePolicyConfig.for_task(task, str(tmp_path / task))
        assert config.demos > 0 and config.vision_tower == "efficientnet_lite0"
    overridden = BasePolicyConfig.for_task("Lift", "out", bc_steps=7, text_layers=None, demos=3)
    assert (overridden.bc_steps, overridden.demos) == (7, 3)
    assert overridden.text_layers == BasePolicyConfig.for_task("Lift", "out").text_layers  # None: not given
    assert RECIPES.is_file()


def test_unknown_tasks_and_fields_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no recipe for 'Stack'"):
        BasePolicyConfig.for_task("Stack", "out")
    (tmp_path / "r.yaml").write_text("Lift:\n  demos: 3\n  bc_stepz: 4\n")
    with pytest.raises(ValueError, match="unknown fields bc_stepz"):
        BasePolicyConfig.for_task("Lift", "out", tmp_path / "r.yaml")
