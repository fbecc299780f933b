"""The ROS 2 adapter: the segmentation nodes and the pieces they are made of.

Modules:

- the nodes: :mod:`node` (``segmentation_node`` and the shared :func:`~.node.run`),
  :mod:`lifecycle_node` (``segmentation_lifecycle_node``, the managed node), :mod:`entry`
  (their console entry points), :mod:`node_parameters` (the table declared on a node);
- what both nodes run: :mod:`core` (it coordinates: model, inputs, outputs, worker,
  diagnostics), :mod:`inputs` (the camera subscriptions, QoS following the publishers),
  :mod:`worker` (the one inference thread and its counters), :mod:`qos` (QoS choices and
  the Fast DDS profile), :mod:`label_outputs` (``~/label_info`` and the label map),
  :mod:`camera_info` (``~/camera_info``), :mod:`diagnostics` (the ``/diagnostics``
  statuses), :mod:`stats` (latency and rate
  statistics), :mod:`conversions` (numpy -> sensor_msgs for publishing; decoding is in
  :mod:`mfaranet_ros.encodings`), :mod:`parameters` (parameter defaults and validation);
- every difference between rclpy releases (Humble, Jazzy, Kilted): :mod:`compat`;
- the command-line tools built on these (``play-bag``, ``eval-bag --live``,
  ``bench-node``): the :mod:`tools` subpackage, which no node module imports.

Only the node modules, :mod:`core`, :mod:`inputs`, :mod:`compat`, :mod:`label_outputs`,
:mod:`camera_info`, :mod:`qos`, :mod:`diagnostics` (and, in :mod:`tools`,
``participant`` and ``bench_camera``) import ROS packages at module level, so the rest
is testable without ROS.
"""
