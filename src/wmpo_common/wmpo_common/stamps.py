"""Stamps (builtin_interfaces/Time) from other nodes, checked before use: rclpy's ``Time.from_msg``
raises ValueError on negative seconds, which in a callback ended the node's process, and a
nanosec of 1e9 or more is not a time either (it no longer fits an int32 once normalised)."""

SECOND = 1_000_000_000


class BadStamp(ValueError):
    """A builtin_interfaces/Time that is not a time; the text says why."""


def stamp_ns(stamp, what: str = "stamp") -> int:
    """Nanoseconds since the epoch of ``stamp`` (sec >= 0, 0 <= nanosec < 1e9), or BadStamp."""
    if stamp.sec < 0:
        raise BadStamp(f"{what} {stamp.sec} s is not a time (negative seconds)")
    if stamp.nanosec >= SECOND:
        raise BadStamp(f"{what} nanosec {stamp.nanosec} must be < {SECOND}")
    return stamp.sec * SECOND + stamp.nanosec
