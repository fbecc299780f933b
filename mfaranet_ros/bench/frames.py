"""What the benchmarks feed the model: generated street scenes, never noise.

Timings hardly depend on the content, but label agreement between backends does: on
noise, every pixel is a near tie between classes and a rounding difference flips it; on
a street scene the comparison means what it means on a camera image.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["street_frame", "FRAME_SEED"]

#: Seed of the first benchmark frame (a scene the demo weights were not trained on).
FRAME_SEED = 424242


def street_frame(size: Tuple[int, int], index: int = 0) -> np.ndarray:
    """The ``index``-th benchmark frame: a ``(H, W, 3)`` uint8 RGB street scene."""
    from ..synthetic import generate_scene

    rgb, _labels = generate_scene(FRAME_SEED + int(index), (int(size[0]), int(size[1])))
    return rgb
