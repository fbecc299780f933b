"""The Ray engine: Ray Data over the units, an actor pool where each actor holds one model.

The only module of the package that imports Ray (``pip install "mfaranet_ros[fleet]"``).
Traps this module avoids:

* an actor pool that takes every CPU leaves none for Ray Data's own tasks and can hang:
  the local Ray gets one logical CPU more than the pool uses;
* ``ray.init`` with resource arguments raises when it joins an existing cluster: they
  are passed only when this process starts its own local Ray;
* usage reporting is on by default: turned off (``RAY_USAGE_STATS_ENABLED=0``);
* the object store takes 30 % of memory by default: bounded (``OBJECT_STORE_BYTES``), so
  torch keeps its memory; unit results are small JSON strings;
* threads sized from the whole cluster (its total CPUs over the workers) oversubscribe a
  node that holds two actors: each actor reserves the CPUs it runs threads on
  (:func:`cpus_per_worker`, from the nodes' own CPUs, one left for Ray Data's own tasks),
  and sets its thread count from that reservation and the node it landed on.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Dict, Iterator, List, Optional

import numpy as np

from .units import Unit, evaluate_unit

__all__ = ["start_ray", "run_ray", "RayUnavailable", "OBJECT_STORE_BYTES", "cpus_per_worker"]

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


def start_ray(address: str = "local", workers: int = 1,
              cpus_per_worker: Optional[int] = None) -> Dict:
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
                pool = workers * (cpus_per_worker or 1)
                ray.init(address="local", num_cpus=max(os.cpu_count() or 1, pool + 1),
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


def cpus_per_worker(node_cpus: List[float], workers: int) -> int:
    """CPUs each actor reserves (and runs torch threads on), from the nodes' own CPUs.

    The most CPUs per actor such that ``workers`` actors fit on the nodes as they are
    (``sum(node // r) >= workers``), one CPU of the largest node left for Ray Data's own
    tasks. An actor then runs as many threads as it reserved, and Ray places it only where
    that many CPUs are free: no node runs more threads than it has CPUs. Never the
    cluster's total over the workers: two actors on one 16-core node of a 4-node cluster
    would then run 32 threads on 16 cores.
    """
    nodes = sorted((int(c) for c in node_cpus if c >= 1), reverse=True)
    if not nodes:
        return 1
    nodes[0] -= 1
    for per_actor in range(max(nodes), 0, -1):
        if sum(n // per_actor for n in nodes) >= workers:
            return per_actor
    return 1


def _node_cpus(ray) -> List[float]:
    return [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]


def _where_am_i(ray, reserved: int) -> Dict:
    """This actor's node, the CPUs it reserved, its node's CPUs and its thread count."""
    ctx = ray.get_runtime_context()
    node = ctx.get_node_id()
    assigned = ctx.get_assigned_resources().get("CPU", reserved)
    node_cpus = next((n["Resources"].get("CPU", 0.0) for n in ray.nodes()
                      if n["NodeID"] == node), 0.0)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:       # not Linux
        cores = os.cpu_count() or 1
    threads = max(1, min(int(assigned), int(node_cpus) or cores, cores))
    return {"node": node, "cpus": assigned, "node_cpus": node_cpus, "threads": threads,
            "pid": os.getpid()}


class UnitEvaluator:
    """Ray Data's callable class: loads the Segmenter once, then evaluates units.

    ``crash_once``: a marker file path; the first call that finds it missing creates it
    and kills this worker process (fault injection, for the tests of Ray's restarts).
    """

    def __init__(self, model: Dict, ignore_index: int, cpus: int,
                 crash_once: Optional[str] = None) -> None:
        import ray
        import torch

        from .model import load_model, load_spec_label_map

        # As many threads as CPUs this actor reserved, never more than its node has. The
        # model loads and warms up on one thread: Ray Data calls the actor from another
        # thread, and a second team of OpenMP threads left by this one made every frame ~2x
        # slower there (measured: 24 ms a frame with 2 threads against 13 ms).
        self.worker = _where_am_i(ray, cpus)
        self.threads = self.worker["threads"]
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
                                            self.ignore_index, self.label_map, self.worker))
                   for u in batch["unit"]]
        return {"result": np.array(results, dtype=object)}


def run_ray(units: List[Unit], model: Dict, ignore_index: int, *, workers: int = 1,
            gpus_per_worker: float = 0.0, cpus: Optional[int] = None,
            crash_once: Optional[str] = None) -> Iterator[Dict]:
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
    cpus = cpus or cpus_per_worker(_node_cpus(ray), workers)
    items = [{"unit": json.dumps(u.to_dict())} for u in units]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    gpus = {"num_gpus": gpus_per_worker} if gpus_per_worker > 0 else {}
    ds = ds.map_batches(
        UnitEvaluator, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus, **gpus,
        fn_constructor_kwargs={"model": model, "ignore_index": ignore_index,
                               "cpus": cpus, "crash_once": crash_once})
    for row in ds.iter_rows():
        yield json.loads(row["result"])
