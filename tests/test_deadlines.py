"""Deadlines: one steady timer cancels the awaited futures that are past their deadline."""

import time

from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.task import Future

from wmpo_common.ros.deadlines import Deadlines


def test_futures_past_their_deadline_are_canceled_and_answered_ones_are_kept(rclpy_context):
    node = Node("deadlines_test", context=rclpy_context)
    executor = MultiThreadedExecutor(num_threads=2, context=rclpy_context)
    executor.add_node(node)
    looks = []
    deadlines = Deadlines(node, tick=0.01, before_check=lambda: looks.append(1))
    answered, short, long = Future(), Future(), Future()
    outcomes = {}

    async def wait(name: str, future: Future, timeout: float):
        await deadlines.watch(future, timeout)
        outcomes[name] = "canceled" if future.cancelled() else future.result()

    try:
        for name, future, timeout in (("answered", answered, 0.05), ("short", short, 0.05), ("long", long, 60.0)):
            executor.create_task(wait, name, future, timeout)
        answered.set_result("answer")
        assert spin_until_outcomes(executor, outcomes, {"answered", "short"})
        assert outcomes == {"answered": "answer", "short": "canceled"}
        assert not long.done() and looks  # the long wait is still running; every tick had its look
    finally:
        executor.shutdown()
        node.destroy_node()


def spin_until_outcomes(executor, outcomes: dict, names: set, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not names <= outcomes.keys():
        executor.spin_once(timeout_sec=0.05)
    return names <= outcomes.keys()
