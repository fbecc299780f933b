"""The ROS 2 adapter: the ``segmentation_node`` and the pieces it is made of.

Modules: :mod:`conversions` (numpy -> sensor_msgs for publishing; decoding is in
:mod:`mfaranet_ros.encodings`), :mod:`player` (``play-bag``), :mod:`live_eval`
(``eval-bag --live``), :mod:`runtime` (their rclpy start-up), :mod:`parameters` (declared
parameters and their validation), :mod:`stats` (latency/rate statistics and the
diagnostics status), :mod:`qos` (QoS adaptation and the Fast DDS profile),
:mod:`node` (the node itself), :mod:`bench_node` (its benchmarks; the camera side in
:mod:`bench_camera`). Only :mod:`node` and :mod:`bench_camera` import rclpy at
module level, so the rest is testable without ROS.
"""
