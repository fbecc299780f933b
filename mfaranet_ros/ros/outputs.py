"""Each camera's output publishers: created, asked who listens, published to, destroyed.

:class:`CameraOutputs` holds one camera's publishers (``labels``, ``color``, ``overlay``,
``confidence``, ``camera_info``, ``latency`` and the latched ``label_info``). They are
created and destroyed on the executor thread (configure, cleanup) and published to from
the worker thread: :meth:`CameraOutputs.publish` and :meth:`CameraOutputs.close` share a
lock, so a publisher is never destroyed while the worker is inside ``publish()`` and never
used after it was destroyed; cleanup waits for at most one ``publish()`` call, never for
the batch.

``~/confidence`` is not advertised when the model has no confidence variant at the
configured input size (an int8 artifact built without it): a subscriber then sees no
publisher rather than a silent topic.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Tuple

from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image

from . import label_outputs
from .compat import PublisherEventCallbacks, publish_serialized
from .conversions import BufferPool, ImageBuffer

__all__ = ["IMAGE_OUTPUTS", "CameraOutputs"]

#: the image outputs whose ``publish_<name>`` parameter turns them on and off
IMAGE_OUTPUTS = ("labels", "color", "overlay")


class CameraOutputs:
    """One camera's publishers under ``prefix`` (``~/`` or ``~/<camera>/``).

    ``create(msg_type, topic, qos, event_callbacks=...)`` and ``destroy(pub)`` are the
    node's (lifecycle) publisher functions; ``on_incompatible(event, topic)`` gets each
    subscriber whose QoS an output cannot serve.
    """

    def __init__(self, node: Any, prefix: str, qos: Any, create: Callable[..., Any],
                 destroy: Callable[[Any], Any], on_incompatible: Callable[[Any, str], None],
                 confidence: bool = True):
        self._node, self._destroy = node, destroy
        self._lock = threading.Lock()
        self._closed = False
        self.pubs: Dict[str, Any] = {}
        self.buffers = BufferPool()   # the image outputs' message buffers, reused

        def output(msg_type, name):
            topic = node.resolve_topic_name(prefix + name)
            return create(msg_type, prefix + name, qos, event_callbacks=PublisherEventCallbacks(
                incompatible_qos=lambda event, t=topic: on_incompatible(event, t)))

        for name in IMAGE_OUTPUTS + (("confidence",) if confidence else ()):
            self.pubs[name] = output(Image, name)
        self.pubs["latency"] = output(DiagnosticArray, "latency")
        self.pubs["camera_info"] = output(CameraInfo, "camera_info")
        # A plain publisher even on the managed node: the latched map goes out on
        # activate, before the lifecycle publishers are enabled.
        self.label_info = label_outputs.create_label_info_output(node.create_publisher,
                                                                 prefix + "label_info")

    def topics(self) -> Dict[str, str]:
        """Every output's resolved topic name, by output."""
        topics = {name: pub.topic_name for name, pub in self.pubs.items()}
        if self.label_info is not None:
            topics["label_info"] = self.label_info.topic_name
        return topics

    def wanted(self, enabled: Dict[str, bool]) -> Dict[str, bool]:
        """Which outputs this frame needs: enabled and subscribed (the confidence costs a
        softmax, camera_info a message: both only while someone listens)."""
        with self._lock:
            if self._closed:
                return {name: False for name in IMAGE_OUTPUTS + ("confidence", "camera_info")}
            wanted = {name: enabled[name] and self.pubs[name].get_subscription_count() > 0
                      for name in IMAGE_OUTPUTS}
            conf = self.pubs.get("confidence")
            wanted["confidence"] = conf is not None and conf.get_subscription_count() > 0
            wanted["camera_info"] = self.pubs["camera_info"].get_subscription_count() > 0
            return wanted

    def buffer(self, header: Any, shape: Tuple[int, ...], encoding: str) -> ImageBuffer:
        """A message buffer for an image output: its pixels (``.pixels``) are to be
        written in place, then the buffer given to :meth:`publish`."""
        return self.buffers.take(header, shape, encoding)

    def publish(self, name: str, msg: Any, publishable: Callable[[], bool]) -> bool:
        """Publishes ``msg`` on output ``name`` unless closed or no longer ``publishable()``
        (deactivated meanwhile); whether it went out. ``msg``: a message, its serialized
        bytes, or an :class:`~.conversions.ImageBuffer` (back to the pool once sent)."""
        with self._lock:
            if self._closed or not publishable():
                return False
            if isinstance(msg, ImageBuffer):
                publish_serialized(self.pubs[name], msg.data)
                self.buffers.give(msg)
            elif isinstance(msg, (bytes, bytearray)):
                publish_serialized(self.pubs[name], msg)
            else:
                self.pubs[name].publish(msg)
            return True

    def publish_label_info(self, msg: Any) -> None:
        if self.label_info is not None:
            self.label_info.publish(msg)

    def close(self) -> None:
        """Destroys every publisher (call on the executor thread); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pubs, self.pubs = self.pubs, {}
            label_info, self.label_info = self.label_info, None
        for pub in pubs.values():
            self._destroy(pub)
        if label_info is not None:
            self._node.destroy_publisher(label_info)

    @property
    def closed(self) -> bool:
        return self._closed

