"""The managed node with a Segmenter that can be held inside a batch, for the tests of
what the node does while inference is in flight (the node is under test, not the model).

    python test/gated_segmenter_node.py ARM GATE ENTERED --ros-args ...

Once the file ARM exists, ``segment`` / ``segment_batch`` write ENTERED and wait until
the file GATE exists, then run the real Segmenter. Before ARM (configure's warm-up) they
run at once. Files, not signals: the node's own signal handling stays as shipped.
"""
from __future__ import annotations

import functools
import os
import sys
import time


def held(method, arm: str, gate: str, entered: str):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if os.path.exists(arm) and not os.path.exists(gate):
            open(entered, "w").close()
            while not os.path.exists(gate):
                time.sleep(0.01)
        return method(self, *args, **kwargs)
    return wrapper


def main() -> int:
    arm, gate, entered = sys.argv[1:4]
    from mfaranet_ros.inference.segmenter import Segmenter

    for name in ("segment", "segment_batch"):
        setattr(Segmenter, name, held(getattr(Segmenter, name), arm, gate, entered))
    from mfaranet_ros.ros.lifecycle_node import main as node_main

    return node_main([sys.argv[0], *sys.argv[4:]])


if __name__ == "__main__":
    sys.exit(main())
