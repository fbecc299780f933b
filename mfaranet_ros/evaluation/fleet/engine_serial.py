"""The serial engine: every unit in this process, one after another (no Ray).

The reference the Ray engine must equal: both call :func:`.units.evaluate_unit`.
"""
from __future__ import annotations

from typing import Dict, Iterator, List

from .units import Unit, evaluate_unit

__all__ = ["run_serial"]


def run_serial(units: List[Unit], model: Dict, ignore_index: int) -> Iterator[Dict]:
    """Yields each unit's result as it finishes; ``model``: :func:`.model.model_spec`."""
    import torch

    from .model import load_model, load_spec_label_map

    segmenter = load_model(model)
    label_map = load_spec_label_map(model, segmenter.metadata)
    worker = {"node": "local", "threads": torch.get_num_threads()}
    for unit in units:
        yield evaluate_unit(unit, segmenter, ignore_index, label_map, worker)


