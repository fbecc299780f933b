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
           "publish_serialized", "serialized_publish_path",
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


# A serialized message goes out through ``Publisher.publish(bytes)``, whose C side
# (``publish_raw``, a pybind11 ``std::string`` argument) copies it once. That C function
# also takes a ``bytearray`` where rclpy is built with pybind11 2.10 or later (its
# changelog: "Support bytearray casting to string"): Jazzy's and Kilted's rclpy are
# (pybind11_vendor 2.11.1), Humble's is not (2.9.1). That lets the node send a buffer it
# wrote its pixels into without first copying it into ``bytes``. The Python wrapper accepts
# ``bytes`` only, so the bytearray goes to the C publisher it wraps, which its public
# ``handle`` property returns (Humble to Kilted), under that handle's lock as ``publish``
# takes it. Where the function refuses a bytearray, the message is copied into ``bytes``
# once and for all (the Humble emulation refuses it as pybind11 2.9.1 does);
# test_publish_buffers fails when the direct path stops working on a release that has it.
_DIRECT: Dict[str, bool] = {}


def serialized_publish_path() -> str:
    """How :func:`publish_serialized` has sent a bytearray in this process: ``direct``
    (no copy before rclpy's), ``bytes`` (one copy first) or ``untried``."""
    if "ok" not in _DIRECT:
        return "untried"
    return "direct" if _DIRECT["ok"] else "bytes"


def publish_serialized(publisher, data) -> None:
    """Publishes a serialized message (``bytes`` or ``bytearray``) on ``publisher`` (a
    plain or lifecycle publisher of the message's type); a lifecycle publisher that is
    not activated publishes nothing, as its ``publish`` does."""
    if isinstance(data, bytes) or _DIRECT.get("ok") is False:
        publisher.publish(bytes(data))
        return
    if not getattr(publisher, "is_activated", True):
        return
    handle = publisher.handle
    with handle:
        try:
            handle.publish_raw(data)
        except TypeError:   # pybind11 before 2.10: std::string from bytes only
            if _DIRECT.get("ok"):
                raise
            _DIRECT["ok"] = False
            handle.publish_raw(bytes(data))
            return
    _DIRECT["ok"] = True
