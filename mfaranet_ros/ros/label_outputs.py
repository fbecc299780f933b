"""``~/label_info`` (vision_msgs/LabelInfo): the class map a label image's ids mean.

Consumers such as Nav2's semantic segmentation costmap layer map class names to costs
from this topic, and may start after the node: it is reliable + transient local, depth 1,
published when the outputs come up. The map is the checkpoint's classes (id -> name)
plus 255 -> "unlabeled", as vision_msgs recommends for uint8 masks.

vision_msgs is optional: where it is not importable the node says so once and runs
without the topic (``scripts/build_vision_msgs.sh`` builds it for a PyPI-wheel venv).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence, Tuple

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ..label_formats import autoware_rle_encode
from ..labelmap import LabelMap, label_map_for
from ..model.weights import package_models_dir

try:
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:  # not installed: the node runs without ~/label_info
    LabelInfo = VisionClass = None

__all__ = ["LABEL_INFO_QOS", "label_info_available", "label_info_message",
           "create_label_info_output", "MISSING_VISION_MSGS", "autoware_rle_image",
           "node_label_map"]

#: Latched: a subscriber that starts later still gets the class map.
LABEL_INFO_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                            reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
MISSING_VISION_MSGS = ("vision_msgs is not installed: running without ~/label_info "
                       "(apt-get install ros-$ROS_DISTRO-vision-msgs)")


def label_info_available() -> bool:
    return LabelInfo is not None


def label_info_message(header: Any, class_map: Sequence[Tuple[int, str]]) -> Any:
    """A LabelInfo with ``class_map`` ``[(id, name), ...]``; threshold 0 (none applied)."""
    msg = LabelInfo()
    msg.header = header
    msg.class_map = [VisionClass(class_id=int(i), class_name=str(n)) for i, n in class_map]
    msg.threshold = 0.0
    return msg


def create_label_info_output(create_output: Callable[..., Any],
                             topic: str) -> Optional[Any]:
    """The LabelInfo publisher on ``topic``, or None where vision_msgs is missing."""
    if LabelInfo is None:
        return None
    return create_output(LabelInfo, topic, LABEL_INFO_QOS)


def autoware_rle_image(header: Any, labels: Any) -> Image:
    """``(H, W)`` uint8 labels as Autoware's mask: mono8, the mask's size, run-length data.

    ``step`` is the run-length record size (5), as the data is not rows of pixels.
    """
    height, width = labels.shape
    return Image(header=header, height=int(height), width=int(width), encoding="mono8",
                 is_bigendian=0, step=5, data=autoware_rle_encode(labels))


def node_label_map(path: str, metadata: Any) -> LabelMap:
    """The ``label_map`` parameter's map for the checkpoint ``metadata`` (identity if empty;
    ``metadata`` None: the file's own checks only, for a ``ros2 param set`` before configure).

    Raises :class:`~mfaranet_ros.labelmap.LabelMapError` (one line: file and problem).
    """
    config_dir = os.path.join(os.path.dirname(package_models_dir()), "config")
    if metadata is None:             # no model yet: what the file alone can tell
        return label_map_for(path, None, [], config_dir)
    return label_map_for(path, metadata.class_names, metadata.palette, config_dir)
