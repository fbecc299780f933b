"""The checkpoint a benchmark times when the user gives none."""
from __future__ import annotations

import logging
import os
from typing import Optional

__all__ = ["random_checkpoint", "weights_or_random"]

log = logging.getLogger(__name__)


def random_checkpoint(directory: str) -> str:
    """A seeded random-init 19-class MFARANet saved in ``directory``; returns its path.

    Timings do not depend on the weights, so this saves shipping or downloading any.
    """
    import torch

    from ..model import MFARANet, cityscapes_metadata, save_checkpoint

    path = os.path.join(directory, "bench_random19.pth")
    torch.manual_seed(0)
    save_checkpoint(path, MFARANet(19), cityscapes_metadata(source="bench: random init"))
    return path


def weights_or_random(weights: Optional[str], directory: str) -> str:
    """``weights`` when given, else a random checkpoint written to ``directory``."""
    if weights:
        return os.fspath(weights)
    log.info("no --weights: timing a random-init 19-class MFARANet "
             "(timings do not depend on the weights)")
    return random_checkpoint(directory)
