"""The inputs of an evaluation, checked before anything expensive happens.

:func:`check_bag_inputs` opens the bag, picks the image topic, checks the label topic or
the ground-truth folder, and decodes the first frame: a missing topic, a damaged file or
an unreadable encoding fails here, in well under a second, instead of after a model load
(seconds; minutes with a TensorRT build). ``eval-bag``, its ``--live`` mode, ``play-bag``
and the demo call it first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .bags import BagError, BagReader
from .groundtruth import FolderGroundTruth, GroundTruth, TopicGroundTruth

__all__ = ["BagInputs", "check_bag_inputs", "choose_image_topic", "open_ground_truth"]


@dataclass(frozen=True)
class BagInputs:
    """What :func:`check_bag_inputs` found: all of it read from the bag's index and its
    first frame."""

    path: str
    image_topic: str
    image_type: str                 # sensor_msgs/msg/Image or .../CompressedImage
    messages: int                   # on the image topic, as the bag's index says
    frame_shape: Tuple[int, int]    # (H, W) of the first frame
    label_topic: Optional[str] = None
    gt_folder: Optional[str] = None


def choose_image_topic(bag: BagReader, image_topic: Optional[str] = None,
                       label_topic: Optional[str] = None) -> str:
    """``image_topic`` if the bag has it, else the bag's only camera topic.

    A bag with ground truth usually records it on a ``.../labels`` image topic, so image
    topics whose last name starts with ``label`` are not candidates when another one is.
    """
    if image_topic:
        bag.require_topic(image_topic, "image")
        return image_topic
    candidates = [t for t in bag.image_topics() if t != label_topic]
    if len(candidates) > 1:
        cameras = [t for t in candidates if not t.rsplit("/", 1)[-1].startswith("label")]
        candidates = cameras if len(cameras) == 1 else candidates
    if len(candidates) != 1:
        raise BagError(
            f"{'several' if candidates else 'no'} image topics in {str(bag.path)!r}; name "
            f"one with --image-topic. The bag holds:\n{bag.describe_topics()}")
    return candidates[0]


def _check_truth_sources(label_topic: Optional[str], gt_folder: Optional[str]) -> None:
    if label_topic and gt_folder:
        raise BagError("give ground truth either by --label-topic or by --gt-folder, not both")


def open_ground_truth(bag: BagReader, label_topic: Optional[str] = None,
                      gt_folder: Optional[str] = None, gt_match: str = "auto",
                      gt_ids: str = "train") -> Optional[GroundTruth]:
    """The ground truth the options name (a label topic of ``bag``, or a PNG folder)."""
    _check_truth_sources(label_topic, gt_folder)
    if label_topic:
        return TopicGroundTruth(bag, label_topic)
    if gt_folder:
        return FolderGroundTruth(gt_folder, gt_match, gt_ids)
    return None


def _first_frame_shape(bag: BagReader, topic: str, *, mono: bool = False) -> Tuple[int, int]:
    for frame in bag.images(topic, mono=mono):
        return tuple(frame.image.shape[:2])
    raise BagError(f"{'label' if mono else 'image'} topic {topic!r} of {str(bag.path)!r} "
                   f"holds no messages")


def check_bag_inputs(bag_path, image_topic: Optional[str] = None,
                     label_topic: Optional[str] = None, gt_folder: Optional[str] = None,
                     gt_match: str = "auto", gt_ids: str = "train") -> BagInputs:
    """Checks that the bag opens and holds what the evaluation needs; cheap.

    Raises :class:`BagError` (one line, or the topic list where that helps) when the
    bag is missing or damaged, the image or label topic is absent or empty, the first
    frame does not decode, or the ground-truth folder holds no label PNGs.
    """
    _check_truth_sources(label_topic, gt_folder)
    with BagReader(bag_path) as bag:
        topic = choose_image_topic(bag, image_topic, label_topic)
        shape = _first_frame_shape(bag, topic)
        if label_topic:
            bag.require_topic(label_topic, "label")
            _first_frame_shape(bag, label_topic, mono=True)
        inputs = BagInputs(path=str(bag_path), image_topic=topic,
                           image_type=bag.topics()[topic], messages=bag.message_count(topic),
                           frame_shape=shape, label_topic=label_topic, gt_folder=gt_folder)
    if gt_folder:
        FolderGroundTruth(gt_folder, gt_match, gt_ids)   # lists the folder; reads no PNG
    return inputs
