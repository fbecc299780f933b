"""Bag reading and writing on tiny bags the tests write: every storage, raw and compressed."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mfaranet_ros.evaluation.bags import BagError, BagReader, BagWriter, decode_image
from mfaranet_ros.evaluation.groundtruth import (
    FolderGroundTruth,
    TopicGroundTruth,
    cityscapes_id_to_train_id,
)
from mfaranet_ros.evaluation.synthbag import START_STAMP_NS, SyntheticBagSpec, make_synthetic_bag
from mfaranet_ros.synthetic import frame_seed, generate_scene

SIZE = (32, 64)
FRAMES = 4


def _bag_path(tmp_path, storage, name="bag"):
    return tmp_path / (name + (".bag" if storage == "ros1" else ""))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3", "ros1"])
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "compressed"])
def test_synthetic_bag_round_trip(tmp_path, storage, compressed):
    spec = SyntheticBagSpec(frames=FRAMES, size=SIZE, rate_hz=20.0, seed=3, storage=storage,
                            compressed=compressed)
    summary = make_synthetic_bag(_bag_path(tmp_path, storage), spec)
    with BagReader(summary["path"]) as bag:
        topics = bag.topics()
        expected_type = ("sensor_msgs/msg/CompressedImage" if compressed
                         else "sensor_msgs/msg/Image")
        assert topics[summary["image_topic"]] == expected_type
        assert topics["/camera/labels"] == "sensor_msgs/msg/Image"
        frames = list(bag.images(summary["image_topic"]))
        truth = TopicGroundTruth(bag, "/camera/labels")
    assert [f.index for f in frames] == list(range(FRAMES))
    assert [f.stamp_ns for f in frames] == [START_STAMP_NS + i * 50_000_000
                                            for i in range(FRAMES)]
    for f in frames:
        rgb, labels = generate_scene(frame_seed(3, f.index), size=SIZE)
        assert f.image.shape == (*SIZE, 3) and f.image.dtype == np.uint8
        if compressed:  # JPEG: close, not equal
            assert np.abs(f.image.astype(int) - rgb).mean() < 12
        else:
            np.testing.assert_array_equal(f.image, rgb)
        np.testing.assert_array_equal(truth.lookup(-1, f.stamp_ns), labels)
    assert truth.lookup(0, START_STAMP_NS + 1) is None   # matched by stamp, not by index


@pytest.mark.parametrize("labels", ["folder-stamp", "folder-index"])
def test_ground_truth_folder(tmp_path, labels):
    spec = SyntheticBagSpec(frames=3, size=SIZE, seed=5, labels=labels)
    summary = make_synthetic_bag(tmp_path / "bag", spec, gt_folder=tmp_path / "gt")
    with BagReader(summary["path"]) as bag:
        assert "/camera/labels" not in bag.topics()
        frames = list(bag.images(summary["image_topic"]))
    truth = FolderGroundTruth(tmp_path / "gt")                 # auto detects the naming
    assert truth.match == labels.split("-")[1] and len(truth) == 3
    for f in frames:
        _, expected = generate_scene(frame_seed(5, f.index), size=SIZE)
        np.testing.assert_array_equal(truth.lookup(f.index, f.stamp_ns), expected)
    other = 9 if labels == "folder-index" else 0
    assert truth.lookup(other, START_STAMP_NS + 7) is None


def test_ground_truth_folder_cityscapes_label_ids(tmp_path):
    # Cityscapes labelIds: road is 7 (trainId 0), car 26 (trainId 13), static 4 (ignored).
    cv2.imwrite(str(tmp_path / "aachen_000000_000019_gtFine_labelIds.png"),
                np.array([[7, 26, 4]], np.uint8))
    truth = FolderGroundTruth(tmp_path, match="index", ids="cityscapes")
    # The trailing number of that name is 19: Cityscapes' frame number.
    np.testing.assert_array_equal(truth.lookup(19, 0), [[0, 13, 255]])
    assert cityscapes_id_to_train_id()[7] == 0


def test_missing_topic_lists_the_bags_topics(tmp_path):
    summary = make_synthetic_bag(tmp_path / "bag", SyntheticBagSpec(frames=1, size=SIZE))
    with BagReader(summary["path"]) as bag:
        with pytest.raises(BagError) as err:
            list(bag.images("/front/image"))
    text = str(err.value)
    assert "'/front/image' is not in" in text
    assert "/camera/image_raw  [sensor_msgs/msg/Image]  1 messages" in text
    assert "/camera/labels" in text


@pytest.mark.parametrize("storage", ["mcap", "sqlite3", "ros1"])
def test_corrupt_bag_fails_clearly(tmp_path, storage):
    summary = make_synthetic_bag(_bag_path(tmp_path, storage),
                                 SyntheticBagSpec(frames=3, size=SIZE, storage=storage))
    if storage == "ros1":
        target = tmp_path / "bag.bag"
    else:
        target = next(p for p in (tmp_path / "bag").iterdir() if p.suffix in (".mcap", ".db3"))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])                 # truncated, as by a crash
    with pytest.raises(BagError, match="damaged or not a bag"):
        with BagReader(summary["path"]) as bag:
            list(bag.images("/camera/image_raw"))


def test_not_a_bag(tmp_path):
    with pytest.raises(BagError, match="bag not found"):
        BagReader(tmp_path / "nothing").open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="metadata.yaml"):
        BagReader(tmp_path / "empty").open()


def test_writer_never_overwrites(tmp_path):
    (tmp_path / "bag").mkdir()
    with pytest.raises(BagError, match="exists already"):
        BagWriter(tmp_path / "bag")


def _msg(encoding, h, w, step, data):
    return SimpleNamespace(encoding=encoding, height=h, width=w, step=step,
                           data=np.frombuffer(bytes(data), np.uint8))


def test_decode_raw_encodings_with_row_padding():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    pad = np.zeros((3, 2), np.uint8)

    def padded(arr):  # rows of 5 pixels plus 2 bytes of padding
        return np.concatenate([arr.reshape(3, -1), pad], axis=1).tobytes()

    np.testing.assert_array_equal(
        decode_image(_msg("rgb8", 3, 5, 17, padded(rgb)), "sensor_msgs/msg/Image"), rgb)
    np.testing.assert_array_equal(
        decode_image(_msg("bgr8", 3, 5, 17, padded(rgb[:, :, ::-1])),
                     "sensor_msgs/msg/Image"), rgb)
    rgba = np.concatenate([rgb, np.full((3, 5, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(
        decode_image(_msg("rgba8", 3, 5, 22, padded(rgba)), "sensor_msgs/msg/Image"), rgb)
    mono = rgb[:, :, 0]
    np.testing.assert_array_equal(
        decode_image(_msg("mono8", 3, 5, 7, padded(mono)), "sensor_msgs/msg/Image",
                     mono=True), mono)
    with pytest.raises(BagError, match="'32FC1'"):
        decode_image(_msg("32FC1", 3, 5, 20, bytes(60)), "sensor_msgs/msg/Image")
    with pytest.raises(BagError, match="step too small"):
        decode_image(_msg("rgb8", 3, 5, 10, bytes(30)), "sensor_msgs/msg/Image")
    with pytest.raises(BagError, match="expected mono8"):
        decode_image(_msg("rgb8", 3, 5, 15, rgb.tobytes()), "sensor_msgs/msg/Image", mono=True)


def test_writer_output_read_by_independent_mcap_readers(tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    with BagWriter(tmp_path / "out", "mcap") as w:
        w.write_image("/cam", 1_000, 2_000, "cam", rgb)
        w.write_latency("/lat", 1_000, 2_000, "cam", {"inference": 1.5}, "/lat", "cpu")
        mcap_file = w.mcap_file
    with open(mcap_file, "rb") as f:
        decoded = {ch.topic: (schema.name, msg.log_time, dec) for schema, ch, msg, dec in
                   make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()}
    name, log_time, img = decoded["/cam"]
    assert name == "sensor_msgs/msg/Image" and log_time == 1_000
    assert (img.height, img.width, img.encoding, img.step) == (2, 3, "rgb8", 9)
    assert img.header.stamp.nanosec == 2_000 and img.header.frame_id == "cam"
    np.testing.assert_array_equal(np.frombuffer(bytes(img.data), np.uint8), rgb.reshape(-1))
    name, _, lat = decoded["/lat"]
    assert name == "diagnostic_msgs/msg/DiagnosticArray"
    assert [(kv.key, kv.value) for kv in lat.status[0].values] == [("inference_ms", "1.500")]
