"""The body of a node's entry point, shared by the nodes of every wmpo package (they all depend on
wmpo_episodes): ``main()`` of a node is one call to :func:`spin_node`."""

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def spin_node(
    make_node: Callable[[], Node],
    name: str,
    args: list[str] | None = None,
    num_threads: int = 2,
    fatal: tuple[type[Exception], ...] = (ValueError,),
    on_exit: Callable[[Node], None] | None = None,
) -> None:
    """rclpy.init(args), build the node, spin it on a MultiThreadedExecutor of ``num_threads``
    until Ctrl-C or an external shutdown. An exception of a ``fatal`` type while building the node
    (a wrong parameter, a checkpoint that does not load) is logged under ``name`` and exits with
    status 1. ``on_exit(node)`` runs first on the way out (keep what is half done)."""
    rclpy.init(args=args)
    try:
        node = make_node()
    except fatal as error:
        rclpy.logging.get_logger(name).fatal(str(error))
        rclpy.try_shutdown()
        raise SystemExit(1) from None
    executor = MultiThreadedExecutor(num_threads=num_threads)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if on_exit is not None:
            on_exit(node)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
