"""Action goals: the client sends again when a goal is not answered, one goal runs however the
answers arrive, feedback comes from the chosen goal only, and a server is never left busy."""

import threading
import time

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

from wmpo_common.ros.action_goals import OneGoalAtATime, send_goal
from wmpo_interfaces.action import TrainWMPO


class SlowFirstAnswerServer:
    """A real action server that withholds its answer to the first goal until ``release_first``
    (as if it had been lost) and keeps the running goal going until ``finish``. A goal accepted
    beside the running one waits for the client's cancel (the arm has no claim of its own)."""

    def __init__(self, context):
        self.node = Node("slow_first_answer", context=context)
        self.one_goal = OneGoalAtATime()
        self.release_first, self.finish, self.cancel_asked = threading.Event(), threading.Event(), threading.Event()
        self.goals_seen, self.completed, self.canceled_beside = 0, 0, 0
        ActionServer(
            self.node,
            TrainWMPO,
            "train",
            execute_callback=self.run,
            goal_callback=self.accept,
            handle_accepted_callback=self.one_goal.claim,
            cancel_callback=self.on_cancel,
            callback_group=ReentrantCallbackGroup(),
        )
        self.executor = MultiThreadedExecutor(num_threads=6, context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)

    def accept(self, goal) -> GoalResponse:
        self.goals_seen += 1
        busy = self.one_goal.busy
        if self.goals_seen == 1:
            assert self.release_first.wait(30.0), "the test never released the first answer"
        return GoalResponse.REJECT if busy else GoalResponse.ACCEPT

    def on_cancel(self, goal_handle) -> CancelResponse:
        self.cancel_asked.set()
        return CancelResponse.ACCEPT

    def run(self, goal_handle):
        goal_handle.publish_feedback(TrainWMPO.Feedback(phase="started"))
        if not self.one_goal.owns(goal_handle):  # accepted beside the running goal: the client cancels it
            self.canceled_beside += self.cancel_asked.wait(30.0)
            goal_handle.abort()  # valid whether or not the cancel has been processed yet
            return TrainWMPO.Result(message="already running")
        try:
            self.finish.wait(30.0)
            self.completed += 1
            goal_handle.succeed()
            return TrainWMPO.Result(success=True)
        finally:
            self.one_goal.release()

    def close(self):
        self.release_first.set()
        self.finish.set()
        self.executor.shutdown()
        self.node.destroy_node()


class Sender:
    """The client side: a node spun by this thread; ``wait`` counts the tries of ``send_goal``."""

    def __init__(self, context, action: str):
        self.node = Node("goal_sender", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.client = ActionClient(self.node, TrainWMPO, action)
        self.waits = []

    def wait(self, future, timeout: float) -> None:
        self.waits.append(timeout)
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)

    def spin_until(self, predicate, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def result(self, handle):
        result = handle.get_result_async()
        self.executor.spin_until_future_complete(result, timeout_sec=30.0)
        return result.result()

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


def test_an_unanswered_goal_is_sent_again_and_only_the_chosen_one_runs(rclpy_context):
    server = SlowFirstAnswerServer(rclpy_context)
    server.thread.start()
    sender, feedback = Sender(rclpy_context, "train"), []
    try:
        assert sender.client.wait_for_server(timeout_sec=30.0)
        goal = TrainWMPO.Goal(task="Lift")
        handle = send_goal(sender.client, goal, sender.wait, feedback.append, answer_timeout=0.3, tries=100)
        assert handle is not None and handle.accepted
        assert len(sender.waits) >= 2 and server.goals_seen >= 2  # the first try got no answer: sent again

        # The first try is answered late, accepted beside the running goal: the client cancels it.
        server.release_first.set()
        assert sender.spin_until(lambda: server.canceled_beside == 1)
        server.finish.set()
        result = sender.result(handle)
        assert result.status == GoalStatus.STATUS_SUCCEEDED and result.result.success
        assert server.completed == 1 and not server.one_goal.busy
        assert [bytes(f.goal_id.uuid) for f in feedback] == [bytes(handle.goal_id.uuid)]

        # Nothing is left claimed: the next goal is answered at its first try.
        sender.waits.clear()
        again = send_goal(sender.client, goal, sender.wait, answer_timeout=10.0)
        assert again is not None and again.accepted and len(sender.waits) == 1
        assert sender.result(again).status == GoalStatus.STATUS_SUCCEEDED and server.completed == 2
    finally:
        server.close()
        sender.close()


def test_a_goal_nobody_answers_gives_none_after_its_tries(rclpy_context):
    sender = Sender(rclpy_context, "nobody/train")
    try:
        assert send_goal(sender.client, TrainWMPO.Goal(task="Lift"), sender.wait, answer_timeout=0.1, tries=3) is None
        assert sender.waits == [0.1, 0.1, 0.1]
    finally:
        sender.close()
