"""Reading and writing bags without a ROS installation (the ``rosbags`` library).

Reading accepts a rosbag2 directory (sqlite3 or MCAP storage), a bare ``.mcap`` or
``.db3`` file, or a ROS 1 ``.bag``. Image messages come out as RGB arrays with their
header stamp; label images as ``(H, W)`` uint8 arrays. Writing makes rosbag2 bags
(MCAP with zstd-compressed chunks by default, or sqlite3) and ROS 1 bags, from
messages built with the ``rosbags`` type store of ROS 2 Kilted (ROS 1: Noetic).
"""
from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

__all__ = [
    "BagError",
    "IMAGE",
    "COMPRESSED_IMAGE",
    "ImageFrame",
    "BagReader",
    "BagWriter",
    "calibration_images",
    "decode_image",
    "read_errors",
    "stamp_to_ns",
]

log = logging.getLogger(__name__)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
PathLike = Union[str, os.PathLike]
LABEL_INFO = "vision_msgs/msg/LabelInfo"
#: vision_msgs' two definitions the output bags need (the ROS 2 vision_msgs package, 4.1
#: and later); rosbags' type stores do not carry vision_msgs, so they are registered.
VISION_MSGS = {
    "vision_msgs/msg/VisionClass": "uint16 class_id\nstring class_name\n",
    LABEL_INFO: "std_msgs/Header header\nVisionClass[] class_map\nfloat32 threshold\n",
}

class BagError(RuntimeError):
    """A bag that cannot be used, with the reason (and what it holds, where that helps)."""


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass
class ImageFrame:
    """One image message of a bag, decoded."""

    index: int            # position on its topic, from 0
    stamp_ns: int         # header stamp
    log_time_ns: int      # the bag's receive time
    frame_id: str
    msgtype: str          # IMAGE or COMPRESSED_IMAGE
    encoding: str         # raw encoding, or the compressed format string
    image: np.ndarray     # (H, W, 3) uint8 RGB, or (H, W) uint8 for mono8 when asked
    payload: bytes        # the message's pixel bytes as stored (to re-write it unchanged)
    step: int = 0


def decode_image(msg, msgtype: str, *, mono: bool = False) -> np.ndarray:
    """Pixels of an Image/CompressedImage message from a ``rosbags`` reader.

    Camera images go through :mod:`mfaranet_ros.encodings`, as in the live node (same
    encodings, same result); ``mono=True`` reads a label image as ``(H, W)`` uint8.
    """
    from mfaranet_ros import encodings

    if msgtype not in IMAGE_TYPES:
        raise BagError(f"messages of type {msgtype} are not images")
    if mono:
        decode = encodings.image_to_labels if msgtype == IMAGE else encodings.compressed_to_labels
    else:
        decode = encodings.image_to_rgb if msgtype == IMAGE else encodings.compressed_to_rgb
    try:
        return np.ascontiguousarray(decode(msg))
    except encodings.ImageFormatError as exc:
        raise BagError(f"{'label ' if mono else ''}image cannot be decoded: {exc}") from None


def read_errors() -> Tuple[type, ...]:
    """What a damaged bag raises inside ``rosbags``, its storage and its codecs."""
    import sqlite3

    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag1 import ReaderError as Reader1Error
    from rosbags.rosbag2 import ReaderError as Reader2Error
    from rosbags.serde import SerdeError

    return (AnyReaderError, Reader1Error, Reader2Error, SerdeError, sqlite3.Error,
            struct.error, EOFError, KeyError, ValueError, IndexError, AssertionError)


class BagReader:
    """A bag opened for reading: topics, image frames and label images.

    Use as a context manager::

        with BagReader("drive_bag") as bag:
            for frame in bag.images("/camera/image_raw"):
                ...
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self._reader = None

    def __enter__(self) -> "BagReader":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        if not self.path.exists():
            raise BagError(f"bag not found: {str(self.path)!r}")
        try:
            reader = AnyReader([self.path],
                               default_typestore=get_typestore(Stores.ROS2_KILTED))
            reader.open()
        except FileNotFoundError as exc:
            raise BagError(
                f"{str(self.path)!r} is not a bag: expected a rosbag2 folder with "
                f"metadata.yaml, a .mcap or .db3 file, or a ROS 1 .bag ({exc})") from None
        except read_errors() as exc:
            raise BagError(
                f"cannot open bag {str(self.path)!r}: it is damaged or not a bag "
                f"({type(exc).__name__}: {exc})") from None
        self._reader = reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def reader(self):
        if self._reader is None:
            raise BagError("bag is not open")
        return self._reader

    def topics(self) -> Dict[str, str]:
        """``{topic: message type}`` of every topic in the bag."""
        return {name: str(info.msgtype) for name, info in sorted(self.reader.topics.items())}

    def describe_topics(self) -> str:
        counts = {name: info.msgcount for name, info in self.reader.topics.items()}
        return "\n".join(f"  {name}  [{typ}]  {counts.get(name, 0)} messages"
                         for name, typ in self.topics().items()) or "  (no topics)"

    def image_topics(self) -> List[str]:
        return [t for t, typ in self.topics().items() if typ in IMAGE_TYPES]

    def require_topic(self, topic: str, what: str = "image") -> str:
        """The topic's message type; a :class:`BagError` listing the bag's topics if absent."""
        topics = self.topics()
        if topic not in topics:
            raise BagError(
                f"{what} topic {topic!r} is not in {str(self.path)!r}; it holds:\n"
                f"{self.describe_topics()}")
        if topics[topic] not in IMAGE_TYPES:
            raise BagError(f"{what} topic {topic!r} carries {topics[topic]}, not "
                           f"sensor_msgs/Image or sensor_msgs/CompressedImage")
        return topics[topic]

    @property
    def start_time_ns(self) -> int:
        """The receive time of the bag's first message (``ros2 bag info``'s "Start")."""
        return int(self.reader.start_time)

    def message_count(self, topic: str) -> int:
        info = self.reader.topics.get(topic)
        return int(info.msgcount) if info is not None else 0

    def log_times(self, topic: str) -> List[int]:
        """Receive times (ns) of every message of ``topic``, in the order :meth:`images`
        yields them, read from the storage's index: no message is read or decoded.

        rosbag2 MCAP: the Message Index records that follow each chunk (one
        ``(log_time, offset)`` pair per message); rosbag2 sqlite3: the ``timestamp``
        column; ROS 1: the bag's index records, which ``rosbags`` reads when it opens the
        bag. A storage without an index (an unchunked MCAP, a file-compressed rosbag2)
        falls back to reading the messages' raw bytes, still without deserializing them.
        """
        self.require_topic(topic, "image")
        conns = [c for c in self.reader.connections if c.topic == topic]
        try:
            times = _indexed_log_times(self.reader, topic, conns)
        except read_errors() + (OSError,) as exc:
            raise BagError(f"bag {str(self.path)!r}: the index of {topic!r} cannot be read "
                           f"({type(exc).__name__}: {exc})") from None
        if times is None or len(times) != self.message_count(topic):
            log.debug("%s: no usable index for %s; reading its messages' times", self.path,
                      topic)
            times = self._scanned_log_times(conns, topic)
        return sorted(times)

    def _scanned_log_times(self, conns, topic: str) -> List[int]:
        times = []
        try:
            for _, log_time, _ in self.reader.messages(connections=conns):
                times.append(int(log_time))
        except read_errors() as exc:
            raise BagError(f"bag {str(self.path)!r} is damaged: reading {topic!r} failed after "
                           f"{len(times)} messages ({type(exc).__name__}: {exc})") from None
        return times

    def messages(self, topic: str, *, what: str = "image", start_ns: Optional[int] = None,
                 stop_ns: Optional[int] = None) -> Iterator[Tuple[int, object, str]]:
        """``(receive time, deserialized message, type)`` of one image topic, in log-time
        order, pixels not decoded (:func:`decode_image` does that).

        ``start_ns`` / ``stop_ns``: only the messages received at ``start_ns <= t <
        stop_ns`` are read (``rosbags`` seeks there through the storage's index: chunks and
        rows outside the range are never read).
        """
        for _, log_time, msg, msgtype in self.stream({topic: what}, start_ns=start_ns,
                                                     stop_ns=stop_ns):
            yield log_time, msg, msgtype

    def stream(self, topics: Dict[str, str], *, start_ns: Optional[int] = None,
               stop_ns: Optional[int] = None) -> Iterator[Tuple[str, int, object, str]]:
        """``(topic, receive time, message, type)`` of several image topics (``{topic:
        "image" or "label"}``) in one pass, in log-time order: where they share chunks, as
        a recorded camera and label topic do, each chunk is read once."""
        types = {t: self.require_topic(t, what) for t, what in topics.items()}
        reader = self.reader
        conns = [c for c in reader.connections if c.topic in types]
        errors = read_errors()
        it = reader.messages(connections=conns, start=start_ns, stop=stop_ns)
        count = 0
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except errors as exc:
                raise BagError(
                    f"bag {str(self.path)!r} is damaged: reading {', '.join(types)} failed "
                    f"after {count} messages ({type(exc).__name__}: {exc})") from None
            conn, log_time, raw = item
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except errors as exc:
                raise BagError(f"a message on {conn.topic!r} does not deserialize as "
                               f"{conn.msgtype} ({exc})") from None
            yield conn.topic, int(log_time), msg, types[conn.topic]
            count += 1

    def frame(self, msg, msgtype: str, index: int, log_time_ns: int, *,
              mono: bool = False) -> ImageFrame:
        """A message of :meth:`stream` decoded into an :class:`ImageFrame`."""
        return ImageFrame(
            index=index,
            stamp_ns=stamp_to_ns(msg.header.stamp),
            log_time_ns=log_time_ns,
            frame_id=str(msg.header.frame_id),
            msgtype=msgtype,
            encoding=str(msg.encoding if msgtype == IMAGE else msg.format),
            image=decode_image(msg, msgtype, mono=mono),
            payload=bytes(np.asarray(msg.data, dtype=np.uint8)),
            step=int(msg.step) if msgtype == IMAGE else 0,
        )

    def images(self, topic: str, *, mono: bool = False, start_ns: Optional[int] = None,
               stop_ns: Optional[int] = None, first_index: int = 0) -> Iterator[ImageFrame]:
        """Decoded frames of one topic, in log-time order.

        ``start_ns`` / ``stop_ns``: a receive-time range, as :meth:`messages`;
        ``first_index``: the topic index of its first frame (see :meth:`log_times`).
        """
        index = first_index
        for log_time, msg, msgtype in self.messages(topic, what="label" if mono else "image",
                                                    start_ns=start_ns, stop_ns=stop_ns):
            yield self.frame(msg, msgtype, index, log_time, mono=mono)
            index += 1


def _indexed_log_times(reader, topic: str, conns) -> Optional[List[int]]:
    """The topic's receive times from every storage's index; None where one has none.

    Uses the storages ``rosbags`` opened (0.10 and 0.11: ``Reader1.indexes``; rosbag2's
    ``storage`` / ``storages`` with their MCAP chunk list or sqlite3 connection).
    """
    times: List[int] = []
    for bag in reader.readers:
        indexes = getattr(bag, "indexes", None)
        if indexes is not None:                       # ROS 1
            for conn in bag.connections:
                if conn.topic == topic:
                    times += [int(entry.time) for entry in indexes.get(conn.id, [])]
            continue
        storage = getattr(bag, "storage", None)
        for part in getattr(storage, "storages", None) or [storage]:
            found = _storage_log_times(part, topic)
            if found is None:
                return None
            times += found
    return times


def _storage_log_times(storage, topic: str) -> Optional[List[int]]:
    """One rosbag2 storage file's index: MCAP chunks' message indexes, or sqlite3 rows."""
    dbconn = getattr(storage, "dbconn", None)
    if dbconn is not None:
        rows = dbconn.execute(
            "SELECT messages.timestamp FROM messages JOIN topics ON "
            "messages.topic_id = topics.id WHERE topics.name = ?", (topic,))
        return [int(t) for (t,) in rows]
    chunks, bio = getattr(storage, "chunks", None), getattr(storage, "bio", None)
    if not chunks or bio is None:
        return None
    ids = {c.id for c in getattr(storage, "connections", []) if c.topic == topic}
    times: List[int] = []
    for chunk in chunks:
        for channel, offset in chunk.message_index_offsets.items():
            if channel in ids:
                times += _mcap_message_index(bio, offset, channel)
    return times


def _mcap_message_index(bio, offset: int, channel: int) -> List[int]:
    """Log times of one MCAP Message Index record (MCAP spec: opcode 0x07; uint16 channel
    id, then a uint32-prefixed array of ``(uint64 log_time, uint64 offset)`` pairs)."""
    bio.seek(offset)
    head = bio.read(15)
    if len(head) != 15 or head[0] != 0x07:
        raise ValueError(f"no MCAP message index at offset {offset}")
    record_channel, size = struct.unpack_from("<HI", head, 9)
    if record_channel != channel:
        raise ValueError(f"message index at {offset} is for channel {record_channel}, "
                         f"not {channel}")
    pairs = np.frombuffer(bio.read(size), dtype="<u8")
    if pairs.size * 8 != size or pairs.size % 2:
        raise ValueError(f"truncated MCAP message index at offset {offset}")
    return pairs[0::2].astype(np.int64).tolist()


# ------------------------------------------------------------------------------ writing

STORAGES = ("mcap", "sqlite3", "ros1")


class BagWriter:
    """Writes Image/CompressedImage (and a few other standard) messages to a new bag.

    Args:
        path: the bag to create (rosbag2: a folder; ROS 1: a ``.bag`` file). Must not exist.
        storage: ``"mcap"`` (rosbag2, zstd-compressed chunks), ``"sqlite3"`` (rosbag2) or
            ``"ros1"``.
    """

    def __init__(self, path: PathLike, storage: str = "mcap", *, compress: bool = True) -> None:
        from rosbags.typesys import Stores, get_typestore

        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{str(self.path)!r} exists already; bags are never overwritten")
        self.storage = storage
        self.ros1 = storage == "ros1"
        self.typestore = get_typestore(Stores.ROS1_NOETIC if self.ros1 else Stores.ROS2_KILTED)
        if self.ros1:
            from rosbags.rosbag1 import Writer

            self._writer = Writer(self.path)
        else:
            from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

            plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
            self._writer = Writer(self.path, version=9, storage_plugin=plugin)
            if compress and storage == "mcap":
                self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._writer.open()
        self._connections: Dict[str, object] = {}
        self._seq: Dict[str, int] = {}
        self.closed = False

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        # Close (never abort): whatever was written stays a valid bag, also on Ctrl-C.
        self.close()

    @property
    def mcap_file(self) -> Optional[Path]:
        """The ``.mcap`` file inside a rosbag2 MCAP bag (what Foxglove opens)."""
        return self.path / f"{self.path.name}.mcap" if self.storage == "mcap" else None

    def topics(self) -> Dict[str, str]:
        """``{topic: message type}`` written so far."""
        return {t: c.msgtype for t, c in self._connections.items()}

    def _types(self, name: str):
        return self.typestore.types[name]

    def header(self, topic: str, stamp_ns: int, frame_id: str):
        Header = self._types("std_msgs/msg/Header")
        Time = self._types("builtin_interfaces/msg/Time")
        stamp = Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))
        if self.ros1:
            seq = self._seq.get(topic, 0)
            self._seq[topic] = seq + 1
            return Header(seq=seq, stamp=stamp, frame_id=frame_id)
        return Header(stamp=stamp, frame_id=frame_id)

    def write(self, topic: str, msgtype: str, log_time_ns: int, msg) -> None:
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise BagError(f"topic {topic!r} already carries {conn.msgtype}, not {msgtype}")
        if self.ros1:
            data = self.typestore.serialize_ros1(msg, msgtype)
        else:
            data = self.typestore.serialize_cdr(msg, msgtype)
        self._writer.write(conn, int(log_time_ns), data)

    def write_image(self, topic: str, log_time_ns: int, stamp_ns: int, frame_id: str,
                    pixels: np.ndarray, encoding: Optional[str] = None) -> None:
        """A raw sensor_msgs/Image: ``(H, W, 3)`` uint8 as rgb8 (default) or ``(H, W)`` mono8."""
        from mfaranet_ros.encodings import raw_layout

        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        encoding, step = raw_layout(pixels, encoding)
        h, w = pixels.shape[:2]
        self.write_raw_image(topic, log_time_ns, stamp_ns, frame_id, h, w, encoding, step,
                             pixels.reshape(-1))

    def write_raw_image(self, topic: str, log_time_ns: int, stamp_ns: int, frame_id: str,
                        height: int, width: int, encoding: str, step: int,
                        data: Union[bytes, np.ndarray]) -> None:
        Image = self._types(IMAGE)
        msg = Image(header=self.header(topic, stamp_ns, frame_id), height=int(height),
                    width=int(width), encoding=encoding, is_bigendian=0, step=int(step),
                    data=np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes)
                    else np.asarray(data, dtype=np.uint8))
        self.write(topic, IMAGE, log_time_ns, msg)

    def write_compressed(self, topic: str, log_time_ns: int, stamp_ns: int, frame_id: str,
                         data: bytes, fmt: str) -> None:
        Compressed = self._types(COMPRESSED_IMAGE)
        msg = Compressed(header=self.header(topic, stamp_ns, frame_id), format=fmt,
                         data=np.frombuffer(data, dtype=np.uint8))
        self.write(topic, COMPRESSED_IMAGE, log_time_ns, msg)

    def write_frame(self, topic: str, frame: ImageFrame) -> None:
        """Re-writes a frame read by :class:`BagReader` as it was stored."""
        if frame.msgtype == COMPRESSED_IMAGE:
            self.write_compressed(topic, frame.log_time_ns, frame.stamp_ns, frame.frame_id,
                                  frame.payload, frame.encoding)
        else:
            h, w = frame.image.shape[:2]
            self.write_raw_image(topic, frame.log_time_ns, frame.stamp_ns, frame.frame_id,
                                 h, w, frame.encoding, frame.step, frame.payload)

    def write_label_info(self, topic: str, log_time_ns: int, stamp_ns: int, frame_id: str,
                         class_map: List[Tuple[int, str]], threshold: float = 0.0) -> None:
        """A vision_msgs/LabelInfo: the class map ``[(id, name), ...]``, as the node
        publishes it on ``~/label_info`` (ROS 2 bags only: ROS 1 has no LabelInfo)."""
        if self.ros1:
            raise BagError("vision_msgs/LabelInfo exists in ROS 2 only; write a rosbag2 bag")
        if LABEL_INFO not in self.typestore.types:
            from rosbags.typesys import get_types_from_msg

            for name, text in VISION_MSGS.items():
                self.typestore.register(get_types_from_msg(text, name))
        VisionClass = self._types("vision_msgs/msg/VisionClass")
        LabelInfo = self._types(LABEL_INFO)
        msg = LabelInfo(header=self.header(topic, stamp_ns, frame_id),
                        class_map=[VisionClass(class_id=int(i), class_name=str(n))
                                   for i, n in class_map],
                        threshold=float(threshold))
        self.write(topic, LABEL_INFO, log_time_ns, msg)

    def write_latency(self, topic: str, log_time_ns: int, stamp_ns: int, frame_id: str,
                      times_ms: Dict[str, float], name: str, hardware_id: str = "") -> None:
        """Per-frame stage times as the node publishes them on ``~/latency``.

        A diagnostic_msgs/DiagnosticArray whose header is the frame's header and whose one
        status carries ``<stage>_ms`` key/values (strings, milliseconds).
        """
        Array = self._types("diagnostic_msgs/msg/DiagnosticArray")
        Status = self._types("diagnostic_msgs/msg/DiagnosticStatus")
        KeyValue = self._types("diagnostic_msgs/msg/KeyValue")
        values = [KeyValue(key=f"{k}_ms", value=f"{float(v):.3f}") for k, v in times_ms.items()]
        status = Status(level=Status.OK, name=name,
                        message="stage times in ms", hardware_id=hardware_id, values=values)
        msg = Array(header=self.header(topic, stamp_ns, frame_id), status=[status])
        self.write(topic, "diagnostic_msgs/msg/DiagnosticArray", log_time_ns, msg)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()


def calibration_images(path, topic: Optional[str], count: int) -> Tuple[List[np.ndarray], str]:
    """The first ``count`` RGB frames of a bag's image topic (None: its only one) and where
    they came from: int8 calibration frames (given to the inference layer, which reads no
    bags itself). Raises ValueError naming the topics where the choice is not clear."""
    with BagReader(path) as bag:
        if topic is None:
            topics = bag.image_topics()
            if len(topics) != 1:
                raise ValueError(f"bag {str(path)!r} has {len(topics)} image topics "
                                 f"({', '.join(topics) or 'none'}); pick one with "
                                 f"--calibration-topic")
            topic = topics[0]
        images = []
        for frame in bag.images(topic):
            images.append(frame.image)
            if len(images) == count:
                break
    return images, f"bag {Path(path).name}, topic {topic}"
