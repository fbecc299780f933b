"""Evaluation without ROS: metrics, bag reading/writing, ground truth, reports.

Nothing here imports :mod:`mfaranet_ros.ros` or rclpy; the live path (``play-bag``,
``eval-bag --live``) lives in :mod:`mfaranet_ros.ros.tools.player` and
:mod:`mfaranet_ros.ros.tools.live_eval` and builds on these modules. Submodules (imported on
use, so ``mfaranet --help`` stays fast):

- :mod:`.metrics`      confusion matrix, per-class IoU, mIoU (Cityscapes' rule), latency
- :mod:`.bags`         rosbag2 (MCAP, sqlite3) and ROS 1 reading and writing via ``rosbags``
- :mod:`.groundtruth`  labels from a topic (by header stamp) or a PNG folder (stamp or index)
- :mod:`.inputs`       the cheap checks of a bag and its topics, before any model is loaded
- :mod:`.accumulator`  what an evaluation gathers per frame (offline and live alike)
- :mod:`.report`       the one report builder; report.json and report.md
- :mod:`.plots`        per-class IoU bars, latency histogram, overlay strip
- :mod:`.offline`      ``eval-bag``: every frame through the Segmenter, output bag, report
- :mod:`.weights_eval` ``eval-weights``: a checkpoint's mIoU on image/label pairs
- :mod:`.model_args`   the model options of the offline tools (``--input-size`` and co.)
- :mod:`.synthbag`     synthetic driving bags with ground truth (``make-bag``, the demo)
- :mod:`.cli`          the commands ``eval-bag``, ``eval-weights``, ``play-bag``, ``make-bag``
"""
