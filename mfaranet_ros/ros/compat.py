"""Every difference between the rclpy releases this package runs on, in one place.

Decided by feature detection (does the module, method or keyword exist), never by
parsing version strings. The rest of the package imports rclpy's version-dependent
names only from here.
"""
from __future__ import annotations

import inspect
from typing import Callable, Dict, List

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
    _IRON_OR_LATER = True
except ImportError:  # Humble: the same classes in rclpy.qos_event
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks
    _IRON_OR_LATER = False

__all__ = ["PublisherEventCallbacks", "SubscriptionEventCallbacks", "try_shutdown",
           "add_pre_set_parameters_callback", "has_pre_set_parameters_callback",
           "publisher_count", "localhost_discovery_env", "guard_change_state"]

_TRY_SHUTDOWN_UNINSTALLS = "uninstall_handlers" in inspect.signature(rclpy.try_shutdown).parameters


def try_shutdown() -> None:
    """Shuts the default context down if it is still up, leaving the process's signal
    handlers as they are (newer rclpy would otherwise put the default ones back)."""
    if _TRY_SHUTDOWN_UNINSTALLS:
        rclpy.try_shutdown(uninstall_handlers=False)
    else:
        rclpy.try_shutdown()


def has_pre_set_parameters_callback(node: Node) -> bool:
    """Whether rclpy can rewrite a parameter before it is set (Iron and later)."""
    return hasattr(node, "add_pre_set_parameters_callback")


def add_pre_set_parameters_callback(
        node: Node, callback: Callable[[List[Parameter]], List[Parameter]]) -> bool:
    """Registers ``callback`` to rewrite parameters before they are validated and set;
    False where rclpy has no such hook (Humble: such a parameter change is then refused
    for its type, as rclpy does by default)."""
    if not has_pre_set_parameters_callback(node):
        return False
    node.add_pre_set_parameters_callback(callback)
    return True


def publisher_count(node: Node, subscription) -> int:
    """How many publishers a subscription is matched with (``Subscription.
    get_publisher_count`` from Iron on; Humble counts the topic's publishers)."""
    if hasattr(subscription, "get_publisher_count"):
        return subscription.get_publisher_count()
    return node.count_publishers(subscription.topic_name)


def localhost_discovery_env() -> Dict[str, str]:
    """The environment that keeps DDS discovery on this host: Iron and later read
    ``ROS_AUTOMATIC_DISCOVERY_RANGE`` (``ROS_LOCALHOST_ONLY`` is deprecated there), Humble
    only ``ROS_LOCALHOST_ONLY``."""
    if _IRON_OR_LATER:
        return {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    return {"ROS_LOCALHOST_ONLY": "1"}


def guard_change_state(node) -> None:
    """A lifecycle manager's request for a transition the current state does not have,
    given by id: Humble's and Jazzy's ``LifecycleNode`` let the ``RCLError`` escape the
    ``~/change_state`` callback, which ends the executor's spin and the node with it (later
    releases answer ``success: false``). Wrapped here so every release answers false, logs
    one line, and goes on; where rclpy already catches it, the guard never fires."""
    from rclpy.impl.implementation_singleton import rclpy_implementation

    service = getattr(node, "_service_change_state", None)
    if service is None:
        service = next((s for s in node.services if s.srv_name.endswith("/change_state")),
                       None)
    if service is None:
        return
    inner = service.callback

    def change_state(request, response):
        try:
            return inner(request, response)
        except rclpy_implementation.RCLError as exc:
            node.get_logger().error(
                f"change_state refused: transition id {request.transition.id} "
                f"{request.transition.label!r} is not possible from the current state "
                f"({str(exc).splitlines()[0]})")
            response.success = False
            return response

    service.callback = change_state
