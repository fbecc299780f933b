"""``eval-bag --live`` runs in the ROS layer: it registers its evaluation here when the
``mfaranet`` command is built (``ros/tools/cli.py``), so this layer calls it without importing
ROS. Without it (a build of the command without the ROS commands) --live says so."""
from __future__ import annotations

from typing import Callable, Optional

__all__ = ["register_live_evaluation", "live_evaluation"]

_LIVE: Optional[Callable] = None


def register_live_evaluation(evaluate: Callable) -> None:
    """``evaluate(args, metadata) -> report``: eval-bag --live's implementation
    (``metadata()`` gives the checkpoint's classes, read only when needed)."""
    global _LIVE
    _LIVE = evaluate


def live_evaluation() -> Callable:
    if _LIVE is None:
        raise RuntimeError("eval-bag --live needs the ROS commands (rclpy), which this "
                           "mfaranet was built without")
    return _LIVE
