"""Action goals that survive an answer lost right after discovery, on both sides.

Right after a client is discovered, a Fast DDS server can lose its answer to the first goal: it
waits 100 ms for the client's reply reader to match, then gives up ("client will not receive
response"), and an rclpy server then drops the goal too. The client would wait for an answer that
never comes (seen on a loaded 2-core CI machine), and a server that had marked itself busy when it
accepted would refuse every later goal.

- Client: ``send_goal`` sends the goal again when no answer came within ``answer_timeout``. Should
  an earlier try be answered late, the first answer wins and any other accepted try is canceled.
- Server: ``OneGoalAtATime`` becomes busy only once the acceptance has reached the client.
"""

import threading
from collections.abc import Callable

from rclpy.action import ActionClient
from rclpy.action.client import ClientGoalHandle
from rclpy.task import Future


def send_goal(
    client: ActionClient,
    goal,
    wait: Callable[[Future, float], object],
    feedback_callback: Callable | None = None,
    answer_timeout: float = 5.0,
    tries: int = 6,
) -> ClientGoalHandle | None:
    """Send ``goal``; return the goal handle (accepted or rejected) of the first try answered, or
    None when no try was answered within ``answer_timeout`` seconds of being sent.

    ``wait(future, timeout)`` returns once ``future`` is done or ``timeout`` s have passed; it spins
    the client's node if no other thread does (e.g. ``executor.spin_until_future_complete``).
    ``feedback_callback`` gets the feedback of the chosen goal only.
    """
    answered: Future = Future()
    lock = threading.Lock()

    def on_answer(attempt: Future) -> None:
        handle = attempt.result()
        with lock:
            first = not answered.done()
            if first:
                answered.set_result(handle)
        if not first and handle is not None and handle.accepted:
            handle.cancel_goal_async()

    def on_feedback(message) -> None:
        chosen = answered.result() if answered.done() else None
        if chosen is not None and bytes(chosen.goal_id.uuid) == bytes(message.goal_id.uuid):
            feedback_callback(message)

    for _ in range(tries):
        attempt = client.send_goal_async(goal, feedback_callback=on_feedback if feedback_callback else None)
        attempt.add_done_callback(on_answer)
        wait(answered, answer_timeout)
        if answered.done():
            return answered.result()
    return None


class OneGoalAtATime:
    """An action server's claim: one goal runs at a time, claimed once its acceptance has reached
    the client (rclpy calls ``handle_accepted_callback`` only then), so a dropped goal never blocks
    the next.

      ActionServer(..., goal_callback=...  # reject when one_goal.busy
                   handle_accepted_callback=one_goal.claim, execute_callback=run)
      run(goal_handle): abort unless one_goal.owns(goal_handle); one_goal.release() when done
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._owner = None  # the goal handle that runs

    @property
    def busy(self) -> bool:
        return self._owner is not None

    def claim(self, goal_handle) -> None:
        """Claim for ``goal_handle`` if no goal runs, then execute it (it aborts if it lost)."""
        with self._lock:
            if self._owner is None:
                self._owner = goal_handle
        goal_handle.execute()

    def owns(self, goal_handle) -> bool:
        """Whether ``goal_handle`` holds the claim (False for a goal accepted beside another)."""
        return self._owner is goal_handle

    def release(self) -> None:
        self._owner = None
