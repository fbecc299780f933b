"""``segmentation_node``: camera images in; labels, color, overlay and latency out.

A thin adapter around :class:`~mfaranet_ros.ros.core.SegmentationCore` (message ->
:mod:`conversions` -> Segmenter -> :mod:`conversions` -> message, on a worker thread). Its
start-up is a sequence of named steps: read and validate the parameters, load the
segmenter, warm it up at the shape frames will run at, create the outputs (the core's
configure step), decide each input's QoS from the camera's publishers and subscribe (its
activate step). ``segmentation_lifecycle_node`` runs the same steps from ROS 2 lifecycle
transitions. :func:`run` (signals, spinning, clean-up) is shared by both.

Per-frame latency goes out on ``~/latency`` (or ``<camera>/latency``) as a
``diagnostic_msgs/DiagnosticArray``: its header is the input frame's header, and its one
status carries the stage times in milliseconds as key/values, which add up to
``end_to_end_ms`` (``queue_ms``, ``decode_ms``, ``preprocess_ms``, ``inference_ms``,
``postprocess_ms``, ``wait_ms``, ``publish_ms``), then ``batch_size`` and ``outputs``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterator, Optional

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from . import qos as qos_tools
from .compat import try_shutdown
from .core import NODE_NAME, SegmentationCore, StartupError, StartupInterrupted
from .node_parameters import ParameterError, accept_updates, declare_parameters
from .parameters import NodeConfig

__all__ = ["SegmentationNode", "StartupError", "StartupInterrupted", "ShutdownSignals",
           "run", "main"]

#: after the lifecycle ``shutdown`` transition, how long the process keeps spinning so the
#: service reply and the transition event leave before the participant goes
SHUTDOWN_FLUSH_S = 0.3


class ShutdownSignals:
    """SIGINT and SIGTERM, any number of them: the first ends the node, the rest are ignored.

    A terminal's Ctrl-C reaches the whole process group and ``ros2 launch`` forwards its own
    SIGINT (then SIGTERM), so two or three signals often arrive tenths of a second apart. A
    second KeyboardInterrupt inside the clean-up would print a traceback and exit -2, and a
    signal during the interpreter's exit (which puts the default handlers back) would kill
    the process. So rclpy's handlers stay off (``SignalHandlerOptions.NO``); the first signal
    sets :attr:`received`, and each later one is ignored, the first of them with one line
    on stderr saying so and that SIGKILL forces the exit (an operator whose clean-up hangs
    learns the way out); during start-up the first also raises :class:`StartupInterrupted`
    to abandon the model load. :meth:`final` ignores them silently for the interpreter's
    exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received = threading.Event()
        self._raise_on_first = True
        self._said_ignored = False

    def install(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)

    def started(self) -> None:
        """Start-up is over: from now on a signal only sets :attr:`received`."""
        self._raise_on_first = False

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A signal inside the block raises :class:`StartupInterrupted`, as during start-up
        (the managed node's configure: a model load or engine build can take minutes)."""
        self._raise_on_first = not self.received.is_set()
        try:
            yield
        finally:
            self._raise_on_first = False

    def ignore(self) -> None:
        """No signal can interrupt what follows (the clean-up); the first one says so."""
        for sig in self.SIGNALS:
            signal.signal(sig, self._ignored)

    def final(self) -> None:
        """Ignored silently from now on: the interpreter's exit would put the default
        handlers back in place of a Python one."""
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def _ignored(self, signum, frame) -> None:
        if not self._said_ignored:
            self._said_ignored = True
            os.write(2, (f"[{NODE_NAME}] {signal.Signals(signum).name} ignored: already "
                         f"shutting down; SIGKILL (kill -9 {os.getpid()}) forces the exit\n"
                         ).encode())

    def _handle(self, signum, frame) -> None:
        self.ignore()
        self.received.set()
        if self._raise_on_first:
            self._raise_on_first = False
            raise StartupInterrupted(signal.Signals(signum).name)


class SegmentationNode(Node):
    """The MFARANet segmentation node (see the module docstring)."""

    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self.cfg = self.read_parameters()
        self.core = SegmentationCore(self, self.create_publisher, self.destroy_publisher)
        self.core.configure(self.cfg)  # the model is ready before any subscription exists
        self.core.activate()

    def read_parameters(self) -> NodeConfig:
        """Declares the parameter table; refuses bad values in one line (StartupError)."""
        try:
            cfg = declare_parameters(self)
        except ParameterError as exc:
            raise StartupError(f"invalid parameters: {exc}") from None
        # restart-only parameters are read-only here: rclpy refuses them itself
        accept_updates(self, lambda name, value: None,
                       lambda name, value: self.core.set_runtime(name, value))
        return cfg

    def close(self) -> None:
        """Stops the worker (the frame in progress finishes, at most 5 s), releases the
        model."""
        self.core.close()


def _spin_until(node: Node, stop: threading.Event) -> None:
    """Spins ``node`` until a signal sets ``stop``, the context is shut down or the node
    says it has ``finished`` (the lifecycle ``shutdown`` transition).

    Short waits, because a Python signal handler runs only between the executor's waits.
    """
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set() and node.context.ok() and not getattr(node, "finished", False):
            executor.spin_once(timeout_sec=0.1)
        deadline = time.monotonic() + SHUTDOWN_FLUSH_S
        while getattr(node, "finished", False) and time.monotonic() < deadline \
                and not stop.is_set():
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown(timeout_sec=1.0)


def run(make_node: Callable[[], Node], args=None,
        signals: Optional[ShutdownSignals] = None) -> int:
    """Applies the Fast DDS profile, starts the node ``make_node()`` returns, spins until
    SIGINT / SIGTERM (or until the node has ``finished``) and cleans up; the process exit
    code.

    0 after any number of signals, at any point; 1 with one line on stderr when start-up
    fails. The node may define ``close()`` (called before ``destroy_node``). ``signals``:
    the handler to install, when the node needs it too.
    """
    applied = qos_tools.apply_fastdds_profile()
    signals = signals or ShutdownSignals()
    signals.install()
    logger = rclpy.logging.get_logger(NODE_NAME)
    node = None
    try:
        try:
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        except RuntimeError as exc:  # rcl refuses the --ros-args (a log level, a YAML file)
            raise StartupError(f"cannot start ROS: {exc}") from None
        node = make_node()
        node.get_logger().info(qos_tools.describe_profile(
            applied, rmw=rclpy.utilities.get_rmw_implementation_identifier()))
        signals.started()
        _spin_until(node, signals.received)
    except StartupInterrupted:
        pass
    except StartupError as exc:
        logger.fatal(str(exc))
        return 1
    except ExternalShutdownException:
        pass
    finally:
        signals.ignore()  # a signal during the clean-up changes nothing
        if node is not None:
            getattr(node, "close", lambda: None)()
            node.destroy_node()
        # rclpy's default would put the default handlers back: a late signal would kill
        try_shutdown()
        signals.final()
    return 0


def main(args=None) -> int:
    """Console script ``segmentation_node``."""
    return run(SegmentationNode, args)


if __name__ == "__main__":
    sys.exit(main())
