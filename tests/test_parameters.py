"""Checked node parameters (wmpo_common.ros.parameters) on a real rclpy node."""

import math
import re

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter as RosParameter

from wmpo_common.ros.parameters import Parameter, declare_parameters, in_range, one_of, positive, vector

SPECS = {
    "timeout": Parameter(5.0, "seconds", positive),
    "mode": Parameter("all", "what", one_of("all", "none")),
    "share": Parameter(0.5, "share", in_range(0.0, 1.0)),
    "low": Parameter([0.0, 0.0], "box low", vector(2)),
    "high": Parameter([1.0, 1.0], "box high", vector(2)),
    "storage": Parameter("mcap", "plugin", one_of("mcap", "sqlite3"), read_only=True),
}


def box_ordered(values):
    low, high = values["low"], values["high"]
    return None if all(a < b for a, b in zip(low, high, strict=True)) else f"low {low} must be below high {high}"


def test_bad_run_time_values_are_refused_with_the_reason_and_change_nothing(rclpy_context):
    node = Node("checked", context=rclpy_context)
    try:
        declare_parameters(node, SPECS, consistency=box_ordered)
        for name, value, reason in [
            ("timeout", -1.0, "must be > 0"),
            ("timeout", math.nan, "finite"),
            ("mode", "garbage", "must be one of"),
            ("share", 5.0, r"\[0.0, 1.0\]"),
            ("low", [0.0], "must be 2 numbers"),
            ("low", [2.0, 2.0], "must be below"),
            ("storage", "sqlite3", "read-only"),
        ]:
            (result,) = node.set_parameters([RosParameter(name, value=value)])
            assert not result.successful
            assert re.search(reason, result.reason), (name, result.reason)
        assert node.get_parameter("timeout").value == 5.0 and node.get_parameter("mode").value == "all"
        assert list(node.get_parameter("low").value) == [0.0, 0.0]
        (ok,) = node.set_parameters([RosParameter("timeout", value=2.0)])
        assert ok.successful and node.get_parameter("timeout").value == 2.0
    finally:
        node.destroy_node()


def test_bad_start_up_values_fail_loudly_naming_each(rclpy_context):
    node = Node(
        "checked_start",
        context=rclpy_context,
        parameter_overrides=[RosParameter("timeout", value=0.0), RosParameter("mode", value="x")],
    )
    try:
        with pytest.raises(ValueError, match="timeout must be > 0.*mode must be one of"):
            declare_parameters(node, SPECS)
    finally:
        node.destroy_node()
