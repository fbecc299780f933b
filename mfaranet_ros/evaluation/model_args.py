"""The model options of the offline tools (``eval-bag``, ``eval-weights``, the demo).

Same names and defaults as the node's parameters. ``--input-size`` takes ``HxW``,
``checkpoint`` (the default: the size the weights record, full resolution where they
record none) or ``full``; the size chosen, and why, is logged and goes into the report.
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Optional

from ..cli_args import parse_input_size
from ..model.weights import DEFAULT_WEIGHTS, resolve_weights
from ..names import BACKENDS, PRECISION_CHOICES

__all__ = ["add_segmenter_options", "existing_weights", "load_segmenter",
           "add_label_map_option", "load_cli_label_map"]

log = logging.getLogger(__name__)

def add_segmenter_options(p: argparse.ArgumentParser) -> None:
    """The node's model parameters, as options (same names, same defaults)."""
    g = p.add_argument_group("model (the node's parameters)")
    g.add_argument("--weights", default=None,
                   help=f"checkpoint; relative paths resolve against the package's models/ "
                        f"(default: {DEFAULT_WEIGHTS})")
    g.add_argument("--backend", default="auto", choices=BACKENDS)
    g.add_argument("--device", default="", help="cpu, cuda, cuda:N (default: CUDA if present)")
    g.add_argument("--precision", default="fp32", choices=PRECISION_CHOICES,
                   help="auto: the fastest precision this machine has units for whose labels "
                        "agree with fp32's on >= 99.5 %% of the pixels, measured at load "
                        "(default: fp32)")
    add_input_size_option(g)
    g.add_argument("--pruned", action="store_true", help="the pruned network variant")
    g.add_argument("--cache-dir", default=None, help="engine / exported-model cache")


def add_input_size_option(group) -> None:
    group.add_argument("--input-size", type=parse_input_size, default="checkpoint",
                       metavar="HxW|checkpoint|full",
                       help="network input size: HxW; 'checkpoint' (default): the size the "
                            "weights record, full resolution where they record none; 'full': "
                            "every frame at its own resolution")


def existing_weights(requested: Optional[str]) -> str:
    """The weights file's absolute path; a :class:`CheckpointError` if there is none."""
    from mfaranet_ros.model import CheckpointError

    weights = resolve_weights(requested)
    if not os.path.isfile(weights):
        raise CheckpointError(f"weights not found: {weights} (pass --weights)")
    return weights


def load_segmenter(args: argparse.Namespace):
    """``(segmenter, weights path, input-size reason)`` from the model options."""
    from mfaranet_ros.inference import Segmenter

    weights = existing_weights(args.weights)
    seg = Segmenter.from_checkpoint(
        weights, backend=args.backend, device=args.device or None, precision=args.precision,
        input_size=args.input_size, pruned=args.pruned, cache_dir=args.cache_dir)
    log.info("network input %s", seg.input_size_reason)
    return seg, weights, seg.input_size_reason


def add_label_map_option(p) -> None:
    """``--label-map``: the node's ``label_map`` parameter, for the offline tools."""
    p.add_argument("--label-map", default="", metavar="YAML",
                   help="map the model's classes to a consumer's (as the node's label_map "
                        "parameter): predictions and ground truth are both mapped and every "
                        "figure is over the map's classes; a relative path is looked for in "
                        "the working directory, then in the package's config/ (e.g. "
                        "label_maps/autoware.yaml)")


def load_cli_label_map(path: str, metadata):
    """``--label-map``'s :class:`~mfaranet_ros.labelmap.LabelMap`, or None where not given.

    Raises :class:`~mfaranet_ros.labelmap.LabelMapError` (one line: file and problem).
    """
    from ..labelmap import label_map_for
    from ..model.weights import package_models_dir

    if not path:
        return None
    expanded = os.path.expanduser(path)
    if os.path.exists(expanded):
        expanded = os.path.abspath(expanded)
    config_dir = os.path.join(os.path.dirname(package_models_dir()), "config")
    return label_map_for(expanded, metadata.class_names, metadata.palette, config_dir)
