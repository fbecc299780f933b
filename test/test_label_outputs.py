"""Label maps, Autoware's run-length mask format and camera_info scaling (no ROS)."""
import os
import struct

import numpy as np
import pytest

from mfaranet_ros.label_formats import (
    autoware_rle_decode,
    autoware_rle_encode,
    confidence_to_mono8,
    scale_intrinsics,
)
from mfaranet_ros.labelmap import (
    LabelMapError,
    identity_label_map,
    load_label_map,
    resolve_label_map_path,
)
from mfaranet_ros.model.metadata import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

CONFIG = os.path.join(os.path.dirname(__file__), "..", "config")
AUTOWARE_IDS = ["UNKNOWN", "BUILDING", "WALL", "OBSTACLE", "TRAFFIC_LIGHT", "TRAFFIC_SIGN",
                "PERSON", "VEHICLE", "BIKE", "ROAD", "SIDEWALK", "ROAD_PAINT", "CURBSTONE",
                "CROSSWALK", "VEGETATION", "SKY"]


def reference_rle_decode(data, height, width):
    """Independent of the package: reads each 5-byte record with struct, pixel by pixel."""
    pixels = []
    for offset in range(0, len(data), 5):
        class_id, length = struct.unpack_from("<Bi", data, offset)
        pixels.extend([class_id] * length)
    assert len(pixels) == height * width
    return np.array(pixels, dtype=np.uint8).reshape(height, width)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (37, 64)])
def test_autoware_rle_round_trip_against_an_independent_decoder(shape):
    rng = np.random.default_rng(0)
    # Blocks of a few classes, so runs cross row ends as in a real mask.
    labels = np.repeat(rng.integers(0, 16, size=(shape[0], (shape[1] + 3) // 4), dtype=np.uint8),
                       4, axis=1)[:, : shape[1]]
    labels[0, 0] = 255
    data = autoware_rle_encode(labels)
    assert len(data) % 5 == 0
    np.testing.assert_array_equal(reference_rle_decode(data, *shape), labels)
    np.testing.assert_array_equal(autoware_rle_decode(data, *shape), labels)


def test_autoware_rle_records_are_class_then_little_endian_int32():
    labels = np.array([[9, 9, 9], [9, 7, 7]], dtype=np.uint8)
    assert autoware_rle_encode(labels) == struct.pack("<BiBi", 9, 4, 7, 2)


def test_autoware_rle_decode_rejects_a_wrong_size():
    data = autoware_rle_encode(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="2x3"):
        autoware_rle_decode(data, 2, 3)
    with pytest.raises(ValueError, match="5-byte"):
        autoware_rle_decode(data[:-1], 2, 2)


def test_shipped_autoware_map_gives_autowares_ids():
    path = resolve_label_map_path("label_maps/autoware.yaml", CONFIG)
    label_map = load_label_map(path, CITYSCAPES_CLASSES)
    assert [name for _, name in label_map.class_map()[:-1]] == AUTOWARE_IDS
    assert label_map.class_map()[-1] == (255, "unlabeled")
    model = np.array([[CITYSCAPES_CLASSES.index(n) for n in ("road", "car", "bicycle")]
                      + [255]], dtype=np.uint8)
    np.testing.assert_array_equal(label_map.apply(model), [[9, 7, 8, 255]])
    assert len(label_map.palette()) == 16


def test_shipped_navigation_map_and_its_default():
    path = resolve_label_map_path("label_maps/navigation.yaml", CONFIG)
    label_map = load_label_map(path, CITYSCAPES_CLASSES)
    names = dict(label_map.class_map())
    sky = CITYSCAPES_CLASSES.index("sky")  # left out of the mapping: the default, "other"
    assert names[int(label_map.lut[sky])] == "other"
    assert names[int(label_map.lut[CITYSCAPES_CLASSES.index("truck")])] == "vehicle"


def test_identity_map_leaves_labels_unchanged():
    label_map = identity_label_map(CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)
    labels = np.arange(19, dtype=np.uint8).reshape(1, 19)
    assert label_map.apply(labels) is labels
    assert label_map.class_map()[0] == (0, "road")


BAD_MAPS = {
    "unknown model class": ("default: 0\nclasses: [{id: 0, name: a}]\nmapping: {roads: a}\n",
                            "unknown model class 'roads'"),
    "unknown output class": ("default: 0\nclasses: [{id: 0, name: a}]\nmapping: {road: b}\n",
                             "'b', which is not in 'classes'"),
    "duplicate id": ("default: 0\nclasses: [{id: 0, name: a}, {id: 0, name: b}]\n",
                     "duplicate class id 0"),
    "id out of range": ("default: 0\nclasses: [{id: 255, name: a}]\n", "out of range 0..254"),
    "bad default": ("default: 3\nclasses: [{id: 0, name: a}]\n", "'default' 3"),
    "bad colour": ("default: 0\nclasses: [{id: 0, name: a, colour: [1, 2]}]\n", "colour"),
    "not yaml": ("classes: [\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_MAPS))
def test_bad_label_map_is_one_line_naming_file_and_problem(tmp_path, case):
    text, problem = BAD_MAPS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(LabelMapError) as err:
        load_label_map(str(path), CITYSCAPES_CLASSES)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and problem in message


def test_missing_label_map_file(tmp_path):
    with pytest.raises(LabelMapError, match="cannot be read"):
        load_label_map(str(tmp_path / "none.yaml"), CITYSCAPES_CLASSES)


def test_camera_info_scaled_to_network_resolution():
    k = [2000.0, 0, 1024.0, 0, 2000.0, 512.0, 0, 0, 1]
    p = [2000.0, 0, 1024.0, -100.0, 0, 2000.0, 512.0, 0, 0, 0, 1, 0]
    k2, p2 = scale_intrinsics(k, p, (1024, 2048), (512, 1024))
    np.testing.assert_allclose(k2, [1000, 0, 512, 0, 1000, 256, 0, 0, 1])
    np.testing.assert_allclose(p2, [1000, 0, 512, -50, 0, 1000, 256, 0, 0, 0, 1, 0])
    # A point projects to the same relative place in both images.
    u, v = k[0] * 0.3 + k[2], k[4] * -0.2 + k[5]
    u2, v2 = k2[0] * 0.3 + k2[2], k2[4] * -0.2 + k2[5]
    assert (u2 / 1024, v2 / 512) == pytest.approx((u / 2048, v / 1024))
    # Camera resolution: unchanged.
    k3, p3 = scale_intrinsics(k, p, (1024, 2048), (1024, 2048))
    np.testing.assert_allclose(k3, k)
    np.testing.assert_allclose(p3, p)


def test_confidence_to_mono8_is_rounded_probability_times_255():
    out = confidence_to_mono8(np.array([[0.0, 0.5, 1.0, 1.2]], np.float32))
    assert out.dtype == np.uint8 and out.tolist() == [[0, 128, 255, 255]]


def test_a_map_checked_without_a_model_finds_the_files_own_faults(tmp_path):
    """Before configure (``ros2 param set`` on the unconfigured managed node) only the file
    can be checked; the model's class names are checked at configure."""
    good = tmp_path / "good.yaml"
    good.write_text("default: 0\nclasses: [{id: 0, name: a}, {id: 1, name: b}]\n"
                    "mapping: {no_such_model_class: b}\n")
    load_label_map(str(good), None)                       # fine without a model ...
    with pytest.raises(LabelMapError, match="unknown model class 'no_such_model_class'"):
        load_label_map(str(good), CITYSCAPES_CLASSES)     # ... refused with one
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: 0\nclasses: [{id: 0, name: a}]\nmapping: {road: b}\n")
    with pytest.raises(LabelMapError, match="'road' maps to 'b', which is not in 'classes'"):
        load_label_map(str(bad), None)


def test_camera_info_topic_and_its_copy_for_the_labels():
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from mfaranet_ros.ros.camera_info import camera_info_topic, for_labels, size_mismatch

    assert camera_info_topic("/cam/image_raw") == "/cam/camera_info"
    assert camera_info_topic("/front/cam/image_raw/compressed") == "/front/cam/camera_info"
    assert camera_info_topic("/image") == "/camera_info"
    info = CameraInfo(height=480, width=640, k=[500.0, 0, 320, 0, 500, 240, 0, 0, 1],
                      p=[500.0, 0, 320, 0, 0, 500, 240, 0, 0, 0, 1, 0])
    assert size_mismatch(info, (480, 640)) == ""
    assert "640x480 but the image is 320x240" in size_mismatch(info, (240, 320))
    header = Header(frame_id="x")
    same = for_labels(info, header, (480, 640))
    assert same.header.frame_id == "x" and list(same.k) == list(info.k)
    half = for_labels(info, header, (240, 320))
    assert (half.height, half.width) == (240, 320)
    assert list(half.k) == [250.0, 0, 160, 0, 250, 120, 0, 0, 1]
