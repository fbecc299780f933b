"""Evaluation on bags: metrics, bag reading/writing, ground truth, reports, live replay.

Submodules (imported on use, so ``mfaranet --help`` stays fast):

- :mod:`.metrics`      confusion matrix, per-class IoU, mIoU, pixel accuracy, latency stats
- :mod:`.bags`         rosbag2 (MCAP, sqlite3) and ROS 1 reading and writing via ``rosbags``
- :mod:`.groundtruth`  labels from a topic (by header stamp) or a PNG folder (stamp or index)
- :mod:`.offline`      ``eval-bag``: every frame through the Segmenter, output bag, report
- :mod:`.report`       report.json, report.md and the PNG plots
- :mod:`.synthbag`     synthetic driving bags with ground truth (``make-bag``, the demo)
- :mod:`.live`         ``play-bag`` and ``eval-bag --live`` over ROS 2
"""
