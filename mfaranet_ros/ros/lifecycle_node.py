"""``segmentation_lifecycle_node``: the segmentation node as a ROS 2 managed node.

The same parameters, topics and behaviour as ``segmentation_node`` (one shared
:class:`~mfaranet_ros.ros.core.SegmentationCore`), driven by the standard lifecycle
services (``~/change_state``, ``~/get_state``, ``~/get_available_states``,
``~/get_available_transitions``) and announced on ``~/transition_event``:

- ``unconfigured`` after start: nothing subscribed, no outputs; /diagnostics only.
- ``configure``: load the checkpoint, build or load the artifact, warm up, create the
  outputs. A bad checkpoint or an invalid parameter fails the transition with the reason
  logged (and in /diagnostics); fix the parameter and configure again.
- ``activate``: subscribe and publish; ``deactivate``: unsubscribe, drop the pending
  frame, keep the model warm (re-activation is immediate).
- ``cleanup``: release the model and its memory (the CUDA cache too).
- ``shutdown`` from any state: release everything and exit 0.

Parameters applied at configure (weights, backend, input_size ...) can be changed only
while unconfigured; overlay_alpha and publish_* act at once, in every state.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator, Optional

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ..labelmap import LabelMapError
from .compat import guard_change_state
from .core import NODE_NAME, RUNTIME_PARAMETERS, SegmentationCore, StartupError
from .label_outputs import node_label_map
from .node import ShutdownSignals, run
from .node_parameters import ParameterError, accept_updates, declare_parameters

__all__ = ["SegmentationLifecycleNode", "main"]

#: the states with a ``shutdown`` transition (not a transition in progress, not finalized)
_PRIMARY_STATES = ("unconfigured", "inactive", "active")


class SegmentationLifecycleNode(LifecycleNode):
    """The managed MFARANet segmentation node (see the module docstring)."""

    def __init__(self, signals: Optional[ShutdownSignals] = None, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self._signals = signals
        try:
            declare_parameters(self, managed=True)
        except ParameterError as exc:  # the node stays up: each configure checks again
            self.get_logger().error(f"invalid parameters (configure fails until they are "
                                    f"set): {exc}")
        self.core = SegmentationCore(self, self.create_lifecycle_publisher,
                                     self.destroy_lifecycle_publisher, self.state_label)
        self.finished = False
        accept_updates(self, self._refuse_update, self.core.set_runtime)
        guard_change_state(self)
        self.get_logger().info("unconfigured: waiting for configure")

    def state_label(self) -> str:
        """The current lifecycle state (``unconfigured``, ``inactive``, ``active`` ...)."""
        # rclpy has no public getter (rclcpp's get_current_state); its own
        # trigger_shutdown reads the state machine the same way
        return self._state_machine.current_state[1]

    def _refuse_update(self, name: str, value) -> Optional[str]:
        """A parameter applied at configure cannot change while configured; a label map
        file that cannot be used is refused at once (its model classes are checked at
        configure, when the model is known)."""
        if name not in RUNTIME_PARAMETERS and self.core.configured:
            return (f"{name} is applied at configure: run cleanup (back to unconfigured), "
                    f"change it, then configure")
        if name == "label_map":
            try:
                node_label_map(value, None)
            except LabelMapError as exc:
                return str(exc)
        return None

    # ------------------------------------------------------------------ transitions
    @contextlib.contextmanager
    def _said(self, transition: str) -> Iterator[None]:
        """Logs an unexpected exception of a transition: rclpy turns it into the ERROR
        outcome (then :meth:`on_error`) without a word."""
        try:
            yield
        except Exception as exc:
            self.get_logger().error(f"{transition} failed: {type(exc).__name__}: {exc}")
            raise

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Fails (the node stays unconfigured) with the reason logged and in /diagnostics.

        SIGINT / SIGTERM during the load interrupts it (StartupInterrupted, a
        BaseException, passes rclpy's transition wrapper) and the process exits.
        """
        try:
            try:
                cfg = declare_parameters(self, managed=True)  # the values now, checked
            except ParameterError as exc:
                raise StartupError(f"invalid parameters: {exc}") from None
            interruptible = (self._signals.interruptible() if self._signals
                             else contextlib.nullcontext())
            with interruptible, self._said("configure"):
                self.core.configure(cfg)
        except StartupError as exc:
            self.core.configure_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("inactive: model loaded and warm; activate to subscribe")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._said("activate"):
            self.core.activate()
        return super().on_activate(state)  # enables the lifecycle publishers

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._said("deactivate"):
            self.core.deactivate()
        self.get_logger().info("inactive: unsubscribed; the model stays loaded")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._said("cleanup"):
            self.core.cleanup()
        self.get_logger().info("unconfigured: outputs destroyed; configure loads the model "
                               "again")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.close()
        self.finished = True
        self.get_logger().info(f"shutdown from {state.label}")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """An unexpected exception in a transition: release everything, back to
        unconfigured."""
        self.get_logger().error(f"error in a transition from {state.label}; cleaning up")
        self.core.close()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """After SIGINT / SIGTERM: the ``shutdown`` transition where one is possible (its
        event goes out, as for ``ros2 lifecycle set mfaranet shutdown``), then release."""
        if not self.finished and self.state_label() in _PRIMARY_STATES:
            self.trigger_shutdown()
        self.core.close()


def main(args=None) -> int:
    """Console script ``segmentation_lifecycle_node``: starts unconfigured, follows the
    lifecycle services until the ``shutdown`` transition or SIGINT / SIGTERM; exit 0."""
    signals = ShutdownSignals()
    return run(lambda: SegmentationLifecycleNode(signals), args, signals)


if __name__ == "__main__":
    sys.exit(main())
