"""Benchmarks: what they share (statistics, frames, checkpoints, child processes, JSON)
and the two that need no ROS.

- :mod:`.segmenter`: every backend against torch fp32 eager, interleaved in one process
  (``mfaranet bench``);
- :mod:`.cameras`: N cameras batched in one process against N processes
  (``mfaranet bench --cameras``).

The node benchmarks (``mfaranet bench-node``) live in :mod:`mfaranet_ros.ros.tools.bench_node`
and use the helpers here. What each figure means and the JSON schema: docs/benchmarks.md.
"""
from .backends import BackendPrecision, parse_backend, parse_backends
from .checkpoint import random_checkpoint, weights_or_random
from .frames import street_frame
from .processes import WorkerError, child_env, run_workers
from .report import machine_info, write_json
from .stats import Summary, summarize

__all__ = [
    "BackendPrecision", "parse_backend", "parse_backends", "random_checkpoint",
    "weights_or_random", "street_frame", "WorkerError", "child_env", "run_workers",
    "machine_info", "write_json", "Summary", "summarize",
]
