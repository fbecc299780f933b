"""The ROS command-line tools built on the node's modules; the node itself never imports them.

- :mod:`player`: ``play-bag``, a bag's image topic published at its recorded rate;
- :mod:`live_eval`: ``eval-bag --live``, a running node's outputs scored against a bag;
- :mod:`runtime`: how both start rclpy (the Fast DDS profile, signals);
- :mod:`bench_node`: ``bench-node``, the node's own cost across processes (the camera side
  in :mod:`bench_camera`);
- :mod:`participant`: an rclpy node in its own context, spun in the background (the
  benchmarks' camera and the tests' client);
- :mod:`cli`: the parsers of ``bench-node``, ``play-bag`` and the live half of
  ``eval-bag --live``.
"""
