"""The node's publish path without copies of its own: the Segmenter writes labels, colour
and overlay straight into the messages' buffers, which are reused from frame to frame and
sent as they are (over DDS, to a subscriber in another context), with and without the
publishing thread; the bytearray path through rclpy that this relies on is checked on the
installed rclpy, so a release that drops it fails here."""
from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (requirements-ros-pypi.txt)")

from ros_helpers import Client, image_msg, in_process_node, reliable, to_array  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from mfaranet_ros.inference import Segmenter  # noqa: E402
from mfaranet_ros.labelmap import identity_label_map  # noqa: E402
from mfaranet_ros.ros import compat  # noqa: E402
from mfaranet_ros.ros.conversions import BufferPool, ImageBuffer, image_size  # noqa: E402
from mfaranet_ros.ros.core import SegmentationCore  # noqa: E402
from mfaranet_ros.ros.parameters import NodeConfig  # noqa: E402
from mfaranet_ros.ros.pipeline import BatchPipeline  # noqa: E402

pytestmark = pytest.mark.ros

FRAMES = 6
SHAPE = (60, 90)   # into the 32x64 input: labels and colours enlarged by a non-integer scale


def test_image_buffer_is_the_message_rclpy_would_serialize():
    from rclpy.serialization import deserialize_message

    header = Header(frame_id="front_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 34
    pool = BufferPool()
    first = pool.take(header, (4, 5, 3), "rgb8")
    assert len(first.data) == image_size(header, (4, 5, 3), "rgb8")
    first.pixels[...] = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    msg = deserialize_message(bytes(first.data), Image)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (4, 5, 15, "rgb8")
    assert msg.header == header
    np.testing.assert_array_equal(to_array(msg), first.pixels)
    pool.give(first)
    # The same bytes serve the next frame of that size: nothing is allocated again.
    header.stamp.sec = 13
    again = pool.take(header, (4, 5, 3), "rgb8")
    assert again is first and pool.allocated == 1
    assert deserialize_message(bytes(again.data), Image).header.stamp.sec == 13
    with pytest.raises(ValueError, match="cannot hold"):
        ImageBuffer(10).frame(header, (4, 5, 3), "rgb8")


def test_a_bytearray_goes_to_rclpy_without_a_copy_first():
    """compat.publish_serialized hands a bytearray to rclpy's C publisher (its public
    ``handle``) as it is; this fails on a release whose rclpy stops taking one (Humble's,
    built with pybind11 2.9.1, never did: its nodes copy into bytes, test_humble_emulation)."""
    client = Client("mfaranet_publish_direct_test")
    try:
        client.collect(Image, "/publish_direct/out", reliable(5), "out")
        pub = client.node.create_publisher(Image, "/publish_direct/out", reliable(5))
        client.wait_until(lambda: pub.get_subscription_count() > 0, 10.0, "the subscription")
        buffer = BufferPool().take(Header(frame_id="x"), (2, 3), "mono8")
        buffer.pixels[...] = 7
        compat.publish_serialized(pub, buffer.data)
        client.wait_until(lambda: client.messages("out"), 10.0, "the message")
        assert compat.serialized_publish_path() == "direct"
        np.testing.assert_array_equal(to_array(client.messages("out")[0]), 7)
    finally:
        client.close()


@pytest.fixture
def node():
    with in_process_node("publish_buffers_test") as n:
        yield n


def core_with(node, seg, cfg, label_map):
    """The node's core on the real Segmenter, its outputs created, not yet started."""
    core = SegmentationCore(node, node.create_publisher, node.destroy_publisher)
    core.cfg = cfg
    core.slot.segmenter, core.slot.max_batch = seg, 1
    core._create_outputs(cfg)
    core.label_map = label_map
    return core


@pytest.mark.parametrize("overlap", [False, True], ids=["inline", "publishing-thread"])
def test_the_node_publishes_the_buffers_the_segmenter_wrote(node, tiny_checkpoint,
                                                           inference_cache_dir, monkeypatch,
                                                           overlap):
    seg = Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", device="cpu",
                                    input_size=(32, 64), cache_dir=inference_cache_dir)
    copies = []
    original = BatchPipeline._image_message
    monkeypatch.setattr(BatchPipeline, "_image_message",
                        lambda self, *a: copies.append(a[2]) or original(self, *a))
    core = core_with(node, seg,
                     NodeConfig(device="cpu", publish_overlap="always" if overlap else "never"),
                     identity_label_map(seg.metadata.class_names,
                                        [tuple(c) for c in seg.metadata.palette]))
    client = Client("mfaranet_publish_buffers_client")
    try:
        cam = core.cameras[0]
        for name in ("labels", "color", "overlay"):
            client.collect(Image, cam.outputs.pubs[name].topic_name, reliable(FRAMES), name)
        client.wait_until(lambda: all(cam.outputs.pubs[n].get_subscription_count()
                                      for n in ("labels", "color", "overlay")), 10.0,
                          "the subscriptions")
        core._start_worker(core.cfg)
        assert core.overlap is overlap
        core.worker.activate()
        rng = np.random.default_rng(3)
        frames = [rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8) for _ in range(FRAMES)]
        for i, pixels in enumerate(frames):   # one at a time: each frame gets published
            core.worker.offer(cam, image_msg(pixels, "rgb8", stamp=(i, 0)))
            client.wait_until(lambda i=i: len(client.messages("overlay")) > i, 30.0,
                              f"frame {i}'s outputs")
        client.wait_until(lambda: all(len(client.messages(n)) == FRAMES
                                      for n in ("labels", "color")), 10.0, "every output")
        # What went out is the Segmenter's own result, frame by frame (a buffer reused too
        # early would show another frame's pixels), ...
        for name in ("labels", "color", "overlay"):
            got = {m.header.stamp.sec: to_array(m) for m in client.messages(name)}
            for i, pixels in enumerate(frames):
                np.testing.assert_array_equal(got[i], getattr(seg.segment(pixels), name))
        # ... written once, into the messages' own buffers: no copy by the node, ...
        assert copies == []
        # ... whose bytes are reused: labels, colour and overlay need one buffer each
        # (one more each while a frame is published beside the next one's inference).
        assert cam.outputs.buffers.allocated <= (6 if overlap else 3)
    finally:
        core.close()
        client.close()


def test_a_label_map_writes_the_mapped_labels_into_their_buffer(node, tiny_checkpoint,
                                                                inference_cache_dir):
    """With a label map the labels are mapped into their message buffer (one pass) and the
    colours still go straight into theirs."""
    seg = Segmenter.from_checkpoint(tiny_checkpoint, backend="torch", device="cpu",
                                    input_size=(32, 64), cache_dir=inference_cache_dir)
    from mfaranet_ros.labelmap import LabelMap

    names = seg.metadata.class_names
    mapping = LabelMap({i: names[i] for i in range(len(names))},
                       {i: (i, i, i) for i in range(len(names))},
                       np.array([(i + 1) % 256 for i in range(256)], np.uint8), "test")
    core = core_with(node, seg, NodeConfig(device="cpu"), mapping)
    client = Client("mfaranet_publish_labelmap_client")
    try:
        cam = core.cameras[0]
        client.collect(Image, cam.outputs.pubs["labels"].topic_name, reliable(2), "labels")
        client.wait_until(lambda: cam.outputs.pubs["labels"].get_subscription_count(), 10.0,
                          "the subscription")
        core._start_worker(core.cfg)
        core.worker.activate()
        pixels = np.random.default_rng(4).integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
        core.worker.offer(cam, image_msg(pixels, "rgb8"))
        client.wait_until(lambda: client.messages("labels"), 30.0, "the labels")
        np.testing.assert_array_equal(to_array(client.messages("labels")[0]),
                                      mapping.apply(seg.segment(pixels).labels))
    finally:
        core.close()
        client.close()


def test_buffers_are_safe_to_fill_while_another_is_published():
    """The pool hands out distinct buffers to two threads and takes both back."""
    pool, header, taken = BufferPool(), Header(), []

    def take():
        taken.append(pool.take(header, (8, 8), "mono8"))
    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert taken[0] is not taken[1] and pool.allocated == 2
    for b in taken:
        pool.give(b)
    assert {id(pool.take(header, (8, 8), "mono8")) for _ in range(2)} == {id(b) for b in taken}
    assert pool.allocated == 2
