"""Ground truth for a bag's frames: a label topic, or a folder of label PNGs.

Labels are trainIds (``0 .. C-1``, 255 = ignore), one ``(H, W)`` uint8 image per frame.
A label topic is matched to the image topic by header stamp. A folder's PNGs are matched
by the last integer in their file name: the header stamp in nanoseconds
(``1700000000100000000.png``) or the frame's index on the image topic (``000012.png``);
``match="auto"`` takes stamps when the numbers are that large. ``ids="cityscapes"``
reads Cityscapes ``*_labelIds.png`` files and maps them to trainIds.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from .bags import BagError, BagReader, decode_image, stamp_to_ns

__all__ = ["GroundTruth", "TopicGroundTruth", "StreamedGroundTruth", "FolderGroundTruth",
           "cityscapes_id_to_train_id", "LABEL_SLACK_NS"]

#: How far (ns of receive time) a label may be recorded from its image for a window of
#: eval-fleet to find it: a label is matched by header stamp and may be recorded a little
#: before or after its image (a labelling node's delay).
LABEL_SLACK_NS = 2_000_000_000

log = logging.getLogger(__name__)

_TRAILING_INT = re.compile(r"(\d+)(?!.*\d)")
# A header stamp in ns since the epoch has at least 16 digits after 1970-04-27.
_STAMP_MIN = 10 ** 15


def cityscapes_id_to_train_id() -> np.ndarray:
    """A 256-entry lookup table: Cityscapes labelId -> trainId (255 where not evaluated)."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, 255, dtype=np.uint8)
    for label in labels:
        if 0 <= label.id < 256 and 0 <= label.trainId < 255:
            lut[label.id] = label.trainId
    return lut


class GroundTruth:
    """Maps a frame (index, header stamp) to its label image, or ``None``."""

    description = "none"

    def lookup(self, index: int, stamp_ns: int) -> Optional[np.ndarray]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class TopicGroundTruth(GroundTruth):
    """Label images from a mono8 topic of the same bag, keyed by header stamp.

    Held in memory PNG-encoded (label images compress 20-50x), so a long bag at Cityscapes
    resolution costs tens of MB, not GB.
    """

    def __init__(self, bag: BagReader, topic: str) -> None:
        import cv2

        self.description = f"topic {topic}"
        self.by_stamp: Dict[int, bytes] = {}
        for frame in bag.images(topic, mono=True):
            if frame.stamp_ns in self.by_stamp:
                log.warning("label topic %s: two labels share stamp %d; keeping the last",
                            topic, frame.stamp_ns)
            ok, png = cv2.imencode(".png", frame.image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            if not ok:
                raise BagError(f"label {frame.index} on {topic!r} could not be held")
            self.by_stamp[frame.stamp_ns] = png.tobytes()
        if not self.by_stamp:
            raise BagError(f"label topic {topic!r} holds no messages")

    def lookup(self, index: int, stamp_ns: int) -> Optional[np.ndarray]:
        import cv2

        png = self.by_stamp.get(stamp_ns)
        if png is None:
            return None
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)

    def __len__(self) -> int:
        return len(self.by_stamp)


class StreamedGroundTruth(GroundTruth):
    """Labels of a label topic as one pass over the bag meets them, read in the same pass
    as the images (:meth:`.bags.BagReader.stream`): each chunk read once.

    Held undecoded (the message as deserialized) and decoded only when a frame asks for
    its stamp; a label received more than ``2 * LABEL_SLACK_NS`` before the pass's
    current time is forgotten (it can match no frame still to come), so memory is bounded
    by the labels of a few seconds.
    """

    def __init__(self, topic: str) -> None:
        self.description = f"topic {topic}"
        self.topic = topic
        self.labels: Dict[int, Tuple[int, object, str]] = {}   # stamp -> (log time, msg, type)
        self._decoded: Tuple[Optional[int], Optional[np.ndarray]] = (None, None)

    def add(self, log_time_ns: int, msg, msgtype: str) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        if stamp in self.labels:
            log.warning("label topic %s: two labels share stamp %d; keeping the last",
                        self.topic, stamp)
        self.labels[stamp] = (log_time_ns, msg, msgtype)

    def has(self, stamp_ns: int) -> bool:
        return stamp_ns in self.labels

    def forget_before(self, log_time_ns: int) -> None:
        for stamp in [s for s, (t, _, _) in self.labels.items() if t < log_time_ns]:
            del self.labels[stamp]

    def lookup(self, index: int, stamp_ns: int) -> Optional[np.ndarray]:
        if self._decoded[0] == stamp_ns:      # a frame asks twice (skip check, then scoring)
            return self._decoded[1]
        entry = self.labels.get(stamp_ns)
        if entry is None:
            return None
        labels = decode_image(entry[1], entry[2], mono=True)
        self._decoded = (stamp_ns, labels)
        return labels

    def __len__(self) -> int:
        return len(self.labels)


class FolderGroundTruth(GroundTruth):
    """Label PNGs in a folder, matched by stamp or frame index (see the module doc)."""

    MATCHES = ("auto", "stamp", "index")
    IDS = ("train", "cityscapes")

    def __init__(self, folder, match: str = "auto", ids: str = "train") -> None:
        if match not in self.MATCHES:
            raise ValueError(f"match must be one of {self.MATCHES}, got {match!r}")
        if ids not in self.IDS:
            raise ValueError(f"ids must be one of {self.IDS}, got {ids!r}")
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise BagError(f"ground-truth folder not found: {str(self.folder)!r}")
        files: Dict[int, Path] = {}
        for path in sorted(self.folder.glob("*.png")):
            m = _TRAILING_INT.search(path.stem)
            if m is None:
                log.warning("ground truth: %s has no number in its name; skipped", path.name)
                continue
            key = int(m.group(1))
            if key in files:
                raise BagError(f"ground truth: {files[key].name} and {path.name} both "
                               f"carry the number {key}")
            files[key] = path
        if not files:
            raise BagError(f"no numbered label PNGs in {str(self.folder)!r}")
        if match == "auto":
            match = "stamp" if min(files) >= _STAMP_MIN else "index"
        self.match = match
        self.files = files
        self.lut = cityscapes_id_to_train_id() if ids == "cityscapes" else None
        self.description = f"folder {self.folder} (by {match})"

    def lookup(self, index: int, stamp_ns: int) -> Optional[np.ndarray]:
        import cv2

        path = self.files.get(stamp_ns if self.match == "stamp" else index)
        if path is None:
            return None
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if labels is None:
            raise BagError(f"ground truth {path} does not decode as an image")
        if labels.ndim != 2 or labels.dtype != np.uint8:
            raise BagError(f"ground truth {path} is {labels.dtype} with shape {labels.shape}; "
                           f"expected a single-channel 8-bit label PNG")
        return self.lut[labels] if self.lut is not None else labels

    def __len__(self) -> int:
        return len(self.files)
