"""The Ray engine: Ray Data over the units, an actor pool where each actor holds one model.

The only module of the package that imports Ray (``pip install "mfaranet_ros[fleet]"``).
Traps this module avoids:

* an actor pool that takes every CPU leaves none for Ray Data's own tasks and can hang:
  the local Ray gets one logical CPU more than the pool uses;
* ``ray.init`` with resource arguments raises when it joins an existing cluster: they
  are passed only when this process starts its own local Ray;
* usage reporting is on by default: turned off (``RAY_USAGE_STATS_ENABLED=0``);
* the object store takes 30 % of memory by default: bounded (``OBJECT_STORE_BYTES``), so
  torch keeps its memory; unit results are small JSON strings.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Dict, Iterator, List, Optional

import numpy as np

from .units import Unit, evaluate_unit

__all__ = ["start_ray", "run_ray", "RayUnavailable", "OBJECT_STORE_BYTES"]

#: Object store of the local Ray: results are a few KB per unit.
OBJECT_STORE_BYTES = 256 * 1024 * 1024


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached (one line)."""


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable('the Ray engine needs Ray: pip install "mfaranet_ros[fleet]" '
                             '(or use --engine serial)') from None
    return ray


def start_ray(address: str = "local", workers: int = 1) -> Dict:
    """Starts a local Ray sized for ``workers`` or joins ``address``; returns its facts.

    Reuses a Ray this process already started. Returns ``{version, address, startup_s,
    cpus, gpus}``.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = _import_ray()
    t0 = time.perf_counter()
    if not ray.is_initialized():
        try:
            if address == "local":
                # address="local": a new Ray of its own, never a cluster that ray.init()
                # would otherwise find and join on this machine.
                ray.init(address="local", num_cpus=max(os.cpu_count() or 1, workers + 1),
                         include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                         log_to_driver=False, configure_logging=False)
            else:        # joining: resource arguments would raise
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailable(f"cannot start or join Ray at {address!r}: "
                                 f"{str(exc).splitlines()[0]}") from None
    res = ray.cluster_resources()
    return {"version": ray.__version__, "address": address,
            "startup_s": time.perf_counter() - t0,
            "cpus": res.get("CPU", 0.0), "gpus": res.get("GPU", 0.0)}


class UnitEvaluator:
    """Ray Data's callable class: loads the Segmenter once, then evaluates units.

    ``crash_once``: a marker file path; the first call that finds it missing creates it
    and kills this worker process (fault injection, for the tests of Ray's restarts).
    """

    def __init__(self, model: Dict, ignore_index: int, threads: int,
                 crash_once: Optional[str] = None) -> None:
        import torch

        from .model import load_model, load_spec_label_map

        # The pool shares the node's cores; never more threads than this node has. The model
        # loads and warms up on one thread: Ray Data calls the actor from another thread,
        # and a second team of OpenMP threads left by this one made every frame ~2x slower
        # there (measured: 24 ms a frame with 2 threads against 13 ms).
        self.threads = max(1, min(threads, os.cpu_count() or 1))
        torch.set_num_threads(1)
        self.torch = torch
        self.segmenter = load_model(model)
        self.label_map = load_spec_label_map(model, self.segmenter.metadata)
        self.ignore_index = ignore_index
        self.crash_once = crash_once

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """``batch["unit"]``: ``(N,)`` JSON units -> ``batch["result"]``: JSON results."""
        if self.crash_once and not os.path.exists(self.crash_once):
            open(self.crash_once, "w").close()
            os._exit(1)
        # OpenMP's thread count is per calling thread: set here, where the frames run.
        if self.torch.get_num_threads() != self.threads:
            self.torch.set_num_threads(self.threads)
        results = [json.dumps(evaluate_unit(Unit(**json.loads(u)), self.segmenter,
                                            self.ignore_index, self.label_map))
                   for u in batch["unit"]]
        return {"result": np.array(results, dtype=object)}


def run_ray(units: List[Unit], model: Dict, ignore_index: int, *, workers: int = 1,
            gpus_per_worker: float = 0.0, crash_once: Optional[str] = None) -> Iterator[Dict]:
    """Yields each unit's result as Ray finishes it (in no fixed order).

    A worker that dies is restarted by Ray and its unit redone: Ray Data's actor pool
    restarts actors and retries their tasks without limit by default (``max_restarts`` and
    ``max_task_retries`` -1 since Ray 2.5x; passing them is deprecated in 2.60), which the
    killed-worker test checks.
    """
    ray = _import_ray()
    if not units:
        return
    # Our own progress bar counts units; Ray Data's progress lines and INFO logs would
    # bury it (and the command's one-line errors) on a terminal.
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # ... nor the note that they are off (Ray Data's progress module logs only that)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    cpus = ray.cluster_resources().get("CPU", 1.0)
    # Torch threads per actor: the cores, less the one logical CPU left to Ray Data's own
    # tasks, shared by the actors (more threads than cores only slows every one down).
    threads = max(1, int((cpus - 1) // max(workers, 1)))
    items = [{"unit": json.dumps(u.to_dict())} for u in units]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    gpus = {"num_gpus": gpus_per_worker} if gpus_per_worker > 0 else {}
    ds = ds.map_batches(
        UnitEvaluator, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1, **gpus,
        fn_constructor_kwargs={"model": model, "ignore_index": ignore_index,
                               "threads": threads, "crash_once": crash_once})
    for row in ds.iter_rows():
        yield json.loads(row["result"])
