"""The ROS 2 adapter: the segmentation nodes and the pieces they are made of.

Modules: :mod:`conversions` (numpy -> sensor_msgs for publishing; decoding is in
:mod:`mfaranet_ros.encodings`), :mod:`player` (``play-bag``), :mod:`live_eval`
(``eval-bag --live``), :mod:`runtime` (their rclpy start-up), :mod:`parameters` (declared
parameters and their validation), :mod:`stats` (latency/rate statistics and the
diagnostics status), :mod:`qos` (QoS adaptation and the Fast DDS profile),
:mod:`core` (the pipeline both nodes run: model, inputs, outputs, worker, diagnostics),
:mod:`node_parameters` (the table declared on a node), :mod:`node` (``segmentation_node``
and the shared :func:`~.node.run`), :mod:`lifecycle_node` (``segmentation_lifecycle_node``,
the managed node), :mod:`bench_node` (the node benchmarks; the camera side in
:mod:`bench_camera`). Only the node modules, :mod:`bench_camera`, :mod:`qos` and
:mod:`diagnostics` import ROS packages at module level, so the rest is testable without ROS.
"""
