"""rclpy start-up and shut-down for the package's command-line ROS tools.

``play-bag`` and ``eval-bag --live`` start rclpy the same way: with the package's Fast
DDS profile (large shared memory) and Python's own SIGINT handling.
"""
from __future__ import annotations

from ...evaluation.bags import COMPRESSED_IMAGE, IMAGE, BagError

__all__ = ["init_rclpy", "shutdown", "interrupts", "image_message_class"]


def init_rclpy():
    """rclpy, initialised with the package's Fast DDS profile (large shared memory).

    The profile matters on the publishing side: a best-effort frame larger than Fast DDS's
    default shared-memory segment is otherwise lost (see ``mfaranet_ros.ros.qos``).
    """
    try:
        import rclpy
    except ImportError as exc:
        raise BagError(f"the live path needs rclpy (a ROS 2 install, or the PyPI wheels in "
                       f"requirements-ros-pypi.txt): {exc}") from None
    from rclpy.signals import SignalHandlerOptions

    from ..qos import apply_fastdds_profile

    apply_fastdds_profile()
    if not rclpy.ok():
        # Python's own SIGINT handling: Ctrl-C raises KeyboardInterrupt wherever the loop
        # is (rclpy's handler would shut the context down under a publishing loop).
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    return rclpy


def shutdown(rclpy, node) -> None:
    """Destroys ``node`` and shuts rclpy down, if Ctrl-C has not done so already."""
    node.destroy_node()
    rclpy.try_shutdown()   # Ctrl-C may have shut the context down already


def interrupts():
    """What Ctrl-C raises in an rclpy loop: KeyboardInterrupt, or rclpy's own shutdown."""
    from rclpy.executors import ExternalShutdownException

    return (KeyboardInterrupt, ExternalShutdownException)


def image_message_class(msgtype: str):
    """The rclpy message class of a bag's image type name."""
    if msgtype == IMAGE:
        from sensor_msgs.msg import Image

        return Image
    if msgtype == COMPRESSED_IMAGE:
        from sensor_msgs.msg import CompressedImage

        return CompressedImage
    raise BagError(f"cannot publish {msgtype}: not an image type")
