"""Synthetic driving bags: generated street scenes with their ground-truth labels.

``make_synthetic_bag`` writes a camera topic (raw rgb8 or JPEG CompressedImage) at a fixed
rate and, by default, a mono8 label topic with the same header stamps; or, instead of the
topic, a folder of label PNGs named by stamp or frame index. Any storage the
:class:`~mfaranet_ros.evaluation.bags.BagWriter` knows: rosbag2 MCAP / sqlite3, ROS 1.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

from .bags import BagWriter

__all__ = ["SyntheticBagSpec", "make_synthetic_bag", "IMAGE_TOPIC", "LABEL_TOPIC",
           "START_STAMP_NS"]

log = logging.getLogger(__name__)

IMAGE_TOPIC = "/camera/image_raw"
LABEL_TOPIC = "/camera/labels"
FRAME_ID = "camera"
#: First header stamp of a synthetic bag (2023-11-14 22:13:20 UTC): fixed, so bags are
#: reproducible and stamps in file names are recognisable.
START_STAMP_NS = 1_700_000_000 * 1_000_000_000


@dataclass
class SyntheticBagSpec:
    frames: int = 100
    size: Tuple[int, int] = (512, 1024)     # (H, W)
    rate_hz: float = 10.0
    seed: int = 0                          # frame i is scene frame_seed(seed, i)
    storage: str = "mcap"                  # mcap | sqlite3 | ros1
    compressed: bool = False               # JPEG CompressedImage instead of raw rgb8
    labels: str = "topic"                  # topic | none | folder-stamp | folder-index
    image_topic: Optional[str] = None
    label_topic: str = LABEL_TOPIC

    def resolved_image_topic(self) -> str:
        if self.image_topic:
            return self.image_topic
        return IMAGE_TOPIC + ("/compressed" if self.compressed else "")

    def to_dict(self) -> Dict:
        d = asdict(self)
        d["size"] = list(self.size)
        d["image_topic"] = self.resolved_image_topic()
        return d


def make_synthetic_bag(path, spec: SyntheticBagSpec, *, gt_folder=None,
                       progress: bool = False) -> Dict:
    """Writes the bag (and label PNGs into ``gt_folder`` for the folder modes).

    Returns a summary: path, topics, frame count, stamps of the first and last frame.
    """
    import cv2
    from tqdm import tqdm

    from mfaranet_ros.encodings import encode_compressed
    from mfaranet_ros.synthetic import frame_seed, generate_scene

    if spec.frames < 1:
        raise ValueError(f"frames must be >= 1, got {spec.frames}")
    if spec.rate_hz <= 0:
        raise ValueError(f"rate_hz must be > 0, got {spec.rate_hz}")
    if spec.labels.startswith("folder"):
        if gt_folder is None:
            raise ValueError(f"labels={spec.labels!r} needs a gt_folder")
        gt_folder = Path(gt_folder)
        gt_folder.mkdir(parents=True, exist_ok=True)
    elif spec.labels not in ("topic", "none"):
        raise ValueError(f"labels must be topic, none, folder-stamp or folder-index, "
                         f"got {spec.labels!r}")
    image_topic = spec.resolved_image_topic()
    period_ns = int(round(1e9 / spec.rate_hz))
    h, w = (int(v) for v in spec.size)
    with BagWriter(path, spec.storage) as writer:
        for i in tqdm(range(spec.frames), disable=not progress, unit="frame",
                      desc="synthetic bag"):
            rgb, labels = generate_scene(frame_seed(spec.seed, i), size=(h, w))
            stamp = START_STAMP_NS + i * period_ns
            if spec.compressed:
                writer.write_compressed(image_topic, stamp, stamp, FRAME_ID,
                                        encode_compressed(rgb, "jpeg", 92), "jpeg")
            else:
                writer.write_image(image_topic, stamp, stamp, FRAME_ID, rgb, "rgb8")
            if spec.labels == "topic":
                writer.write_image(spec.label_topic, stamp, stamp, FRAME_ID, labels, "mono8")
            elif spec.labels == "folder-stamp":
                cv2.imwrite(str(gt_folder / f"{stamp}.png"), labels)
            elif spec.labels == "folder-index":
                cv2.imwrite(str(gt_folder / f"{i:06d}.png"), labels)
        bag_path = writer.path
        mcap = writer.mcap_file
    return {
        "path": str(bag_path),
        "mcap": str(mcap) if mcap else None,
        "image_topic": image_topic,
        "label_topic": spec.label_topic if spec.labels == "topic" else None,
        "gt_folder": str(gt_folder) if spec.labels.startswith("folder") else None,
        "frames": spec.frames,
        "first_stamp_ns": START_STAMP_NS,
        "last_stamp_ns": START_STAMP_NS + (spec.frames - 1) * period_ns,
        "spec": spec.to_dict(),
    }
