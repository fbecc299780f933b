"""Every difference between the rclpy releases this package runs on, in one place.

Decided by feature detection (does the module, method or keyword exist), never by
parsing version strings. The rest of the package imports rclpy's version-dependent
names only from here.
"""
from __future__ import annotations

import inspect
from typing import Callable, List

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble: the same classes in rclpy.qos_event
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

__all__ = ["PublisherEventCallbacks", "SubscriptionEventCallbacks", "try_shutdown",
           "add_pre_set_parameters_callback"]

_TRY_SHUTDOWN_UNINSTALLS = "uninstall_handlers" in inspect.signature(rclpy.try_shutdown).parameters


def try_shutdown() -> None:
    """Shuts the default context down if it is still up, leaving the process's signal
    handlers as they are (newer rclpy would otherwise put the default ones back)."""
    if _TRY_SHUTDOWN_UNINSTALLS:
        rclpy.try_shutdown(uninstall_handlers=False)
    else:
        rclpy.try_shutdown()


def add_pre_set_parameters_callback(
        node: Node, callback: Callable[[List[Parameter]], List[Parameter]]) -> None:
    """Registers ``callback`` to rewrite parameters before they are validated and set."""
    node.add_pre_set_parameters_callback(callback)
