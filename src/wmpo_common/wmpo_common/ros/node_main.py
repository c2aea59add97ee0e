"""The body of a node's entry point, shared by the nodes of every wmpo package: ``main()`` of a
node is one call to :func:`spin_node`."""

from collections.abc import Callable, Sequence
from typing import TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from wmpo_common.cpu_memory import reuse_freed_memory

N = TypeVar("N", bound=Node | Sequence[Node])


def spin_node(
    make_node: Callable[[], N],
    name: str,
    args: list[str] | None = None,
    num_threads: int = 2,
    fatal: tuple[type[Exception], ...] = (ValueError,),
    on_exit: Callable[[N], None] | None = None,
) -> None:
    """rclpy.init(args), build the node (or the nodes of one process, a sequence of them) and spin
    it on a MultiThreadedExecutor of ``num_threads`` until Ctrl-C or an external shutdown. An
    exception of a ``fatal`` type while building it (a wrong parameter, a checkpoint that does not
    load, a backend that does not start) is logged under ``name`` and exits with status 1.
    ``on_exit(what make_node returned)`` runs first on the way out (keep what is half done, release
    a backend). Freed memory stays in the process for its tensors (``reuse_freed_memory``)."""
    reuse_freed_memory()
    rclpy.init(args=args)
    try:
        made = make_node()
    except fatal as error:
        rclpy.logging.get_logger(name).fatal(str(error))
        rclpy.try_shutdown()
        raise SystemExit(1) from None
    nodes = [made] if isinstance(made, Node) else list(made)
    executor = MultiThreadedExecutor(num_threads=num_threads)
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if on_exit is not None:
            on_exit(made)
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
