"""Deadlines for awaited rclpy futures, kept by one steady timer per node.

A node awaiting service answers, action results or observations under a MultiThreadedExecutor
cancels each future that is not done by its deadline. One timer checks them all every ``tick``
seconds, instead of a timer created and destroyed per wait. With a timer per wait, a few long
episodes in a hundred ended waiting for an answer that their bag shows was sent (a camera frame at
the policy server, an action result at the episode manager).

  deadlines = Deadlines(node, before_check=look_again)   # in the node's __init__
  await deadlines.watch(future, timeout)                 # in a coroutine callback
"""

import threading
import time
from collections.abc import Callable

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.task import Future


class Deadlines:
    def __init__(self, node: Node, tick: float = 0.05, before_check: Callable[[], None] | None = None):
        """``before_check`` runs at every tick before expired futures are canceled (a last look)."""
        self._lock = threading.Lock()
        self._watched: list[tuple[float, Future]] = []  # (monotonic deadline [s], future)
        self._before_check = before_check
        node.create_timer(tick, self._check, callback_group=ReentrantCallbackGroup())

    def watch(self, future: Future, timeout: float) -> Future:
        """Cancel ``future`` if it is not done ``timeout`` seconds from now; returns it."""
        with self._lock:
            self._watched.append((time.monotonic() + timeout, future))
        return future

    def _check(self) -> None:
        if self._before_check is not None:
            self._before_check()
        now = time.monotonic()
        with self._lock:
            expired = [future for deadline, future in self._watched if deadline <= now]
            self._watched = [(d, future) for d, future in self._watched if d > now and not future.done()]
        for future in expired:
            if not future.done():
                future.cancel()
