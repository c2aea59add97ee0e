"""Checked node parameters: every declared parameter has a check (a range, a set of choices, a
length) applied at start-up and to every run-time change, and is either run-time or read-only.

  PARAMETERS = {
      "timeout": Parameter(5.0, "seconds to wait", positive),
      "mode": Parameter("all", "what to record", one_of("all", "none")),
      "storage": Parameter("mcap", "bag storage plugin", one_of("mcap", "sqlite3"), read_only=True),
  }
  declare_parameters(node, PARAMETERS)   # raises ValueError at start-up on a bad value

A run-time change that fails its check is refused with the reason (``ros2 param set`` prints it)
and logged; a read-only parameter is refused by rclpy itself ("read-only": restart the node with
the new value). A node that acts on a change does so in ``add_post_set_parameters_callback``,
which runs only after every check passed. Cross-parameter checks (``workspace_min <
workspace_max``) go in ``consistency``: given the values after the change, it returns a reason or
None.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult

Check = Callable[[Any], str | None]  # a value -> the reason it is refused, or None


@dataclass(frozen=True)
class Parameter:
    default: Any
    doc: str
    check: Check | None = None
    read_only: bool = False


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite(value) -> str | None:
    return None if _number(value) and math.isfinite(value) else f"must be a finite number, got {value!r}"


def non_empty(value) -> str | None:
    return None if value else "must not be empty"


def positive(value) -> str | None:
    return finite(value) or (None if value > 0 else f"must be > 0, got {value!r}")


def non_negative(value) -> str | None:
    return finite(value) or (None if value >= 0 else f"must be >= 0, got {value!r}")


def in_range(low: float, high: float) -> Check:
    def check(value):
        return finite(value) or (None if low <= value <= high else f"must be in [{low}, {high}], got {value!r}")

    return check


def at_least(low: float) -> Check:
    def check(value):
        return finite(value) or (None if value >= low else f"must be >= {low}, got {value!r}")

    return check


def one_of(*choices) -> Check:
    def check(value):
        return None if value in choices else f"must be one of {', '.join(map(repr, choices))}, got {value!r}"

    return check


def vector(length: int, element: Check = finite) -> Check:
    """A list of ``length`` numbers, each passing ``element``."""

    def check(value):
        values = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else None
        if values is None or len(values) != length:
            return f"must be {length} numbers, got {value!r}"
        reasons = [element(v) for v in values]
        return next((f"element {i} {r}" for i, r in enumerate(reasons) if r), None)

    return check


def declare_parameters(
    node,
    parameters: dict[str, Parameter],
    prefix: str = "",
    consistency: Callable[[dict[str, Any]], str | None] | None = None,
) -> None:
    """Declare ``parameters`` on ``node`` (names prefixed by ``prefix``), check their start-up
    values (ValueError naming every bad one) and refuse bad run-time changes with the reason."""
    names = {f"{prefix}{key}": spec for key, spec in parameters.items()}
    for name, spec in names.items():
        descriptor = ParameterDescriptor(description=spec.doc, read_only=spec.read_only)
        node.declare_parameter(name, spec.default, descriptor)
    values = {name: node.get_parameter(name).value for name in names}
    bad = [f"{name} {reason}" for name, reason in _reasons(names, values, consistency)]
    if bad:
        raise ValueError(f"{node.get_name()}: bad parameter values: {'; '.join(bad)}")

    def on_set(changes) -> SetParametersResult:
        mine = {p.name: p.value for p in changes if p.name in names}
        if not mine:
            return SetParametersResult(successful=True)
        after = {name: node.get_parameter(name).value for name in names} | mine
        reasons = [f"{name} {reason}" for name, reason in _reasons(names, after, consistency, only=mine)]
        if reasons:
            reason = "; ".join(reasons)
            node.get_logger().error(f"refused parameter change: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


def _reasons(names, values, consistency, only=None) -> list[tuple[str, str]]:
    """(name, reason) of each failed check; the consistency check only once each value passed."""
    reasons = []
    for name, spec in names.items():
        if spec.check is not None and (only is None or name in only):
            reason = spec.check(values[name])
            if reason:
                reasons.append((name, reason))
    if consistency is not None and not reasons:
        reason = consistency(values)
        if reason:
            reasons.append(("together:", reason))
    return reasons
