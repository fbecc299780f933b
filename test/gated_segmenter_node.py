"""A node whose Segmenter can be held inside a batch, for the tests of what the node does
while inference (or the warm-up) is in flight: the node is under test, not the model.

    python test/gated_segmenter_node.py ARM GATE ENTERED NODE --ros-args ...

NODE: ``segmentation_node`` or ``segmentation_lifecycle_node``. Once the file ARM exists,
``segment`` / ``segment_batch`` (the warm-up's too) write ENTERED and wait until the file
GATE exists, then run the real Segmenter; before ARM they run at once. So a test can hold
the node inside its warm-up or a batch for as long as it needs, whatever the machine's
speed. Where ARM holds a number of seconds instead, every call waits that long (a model
made slow on purpose) and GATE is not used. Files, not signals: the node's own signal
handling stays as shipped.
"""
from __future__ import annotations

import functools
import os
import sys
import time


def held(method, arm: str, gate: str, entered: str):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if os.path.exists(arm):
            delay = open(arm).read().strip()
            open(entered, "w").close()
            if delay:
                time.sleep(float(delay))
            else:
                while not os.path.exists(gate):
                    time.sleep(0.01)
        return method(self, *args, **kwargs)
    return wrapper


NODES = {"segmentation_node": "mfaranet_ros.ros.node",
         "segmentation_lifecycle_node": "mfaranet_ros.ros.lifecycle_node"}


def main() -> int:
    arm, gate, entered, node = sys.argv[1:5]
    import importlib

    from mfaranet_ros.inference.segmenter import Segmenter

    for name in ("segment", "segment_batch"):
        setattr(Segmenter, name, held(getattr(Segmenter, name), arm, gate, entered))
    return importlib.import_module(NODES[node]).main([sys.argv[0], *sys.argv[5:]])


if __name__ == "__main__":
    sys.exit(main())
