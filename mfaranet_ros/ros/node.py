"""``segmentation_node``: camera images in; labels, color, overlay and latency out.

A thin adapter around :class:`~mfaranet_ros.ros.core.SegmentationCore`: at start-up it
declares the parameters, loads and warms up the model, then subscribes; it runs until
SIGINT. (``segmentation_lifecycle_node`` runs the same core step by step, from ROS 2
lifecycle transitions.)

Per-frame latency goes out on ``~/latency`` (or ``<camera>/latency``) as a
``diagnostic_msgs/DiagnosticArray``: its header is the input frame's header, and its one
status carries the stage times in milliseconds as key/values (``decode_ms``,
``preprocess_ms``, ``inference_ms``, ``postprocess_ms``, ``publish_ms``,
``end_to_end_ms``, ``queue_ms``, ``batch_size``, ``outputs``).
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from . import qos as qos_tools
from .core import (NODE_NAME, SegmentationCore, StartupError, StartupInterrupted,
                   declare_parameters, read_config)
from .parameters import validate_parameter

__all__ = ["SegmentationNode", "StartupError", "main"]


class SegmentationNode(Node):
    """The MFARANet segmentation node (see the module docstring)."""

    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        refused = declare_parameters(self, applied_at="restart")
        if refused:
            raise StartupError("invalid parameters: " + "; ".join(refused.values()))
        self.cfg = read_config(self)
        self.core = SegmentationCore(self, self.create_publisher, self.destroy_publisher)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.core.configure(self.cfg)  # the model is ready before any subscription exists
        self.core.activate()

    def _on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        for p in params:
            reason = validate_parameter(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for p in params:
            self.core.set_runtime(p.name, p.value)
        return SetParametersResult(successful=True)

    def close(self) -> None:
        self.core.close()


def _start(profile: Optional[str]) -> Optional[SegmentationNode]:
    """Build the node; None when a signal (SIGINT, SIGTERM) ended start-up."""
    try:
        node = SegmentationNode()
    except StartupInterrupted:
        return None
    log_fastdds_profile(node, profile)
    return node


def log_fastdds_profile(node: Node, profile: Optional[str]) -> None:
    """Say which Fast DDS profile the node's participant runs with."""
    if profile:
        node.get_logger().info(f"Fast DDS profile: {profile} (large shared-memory segment)")
    elif os.environ.get(qos_tools.PROFILE_ENV):
        node.get_logger().info(
            f"Fast DDS profile: {os.environ[qos_tools.PROFILE_ENV]} (the user's, from "
            f"{qos_tools.PROFILE_ENV}; the shipped large shared-memory profile is not applied)")


def main(args=None) -> int:
    """Console script: apply the Fast DDS profile, start the node, spin until SIGINT."""
    profile = qos_tools.apply_fastdds_profile()
    rclpy.init(args=args)
    node = None
    try:
        node = _start(profile)
        if node is not None:
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            executor.spin()
    except StartupError as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(exc))
        print(f"{NODE_NAME}: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
