"""eval-fleet on a cluster of two Ray nodes on this machine (``ray.cluster_utils``): each
actor reserves the CPUs it runs threads on, sized from the nodes, and Ray places it only
where they are free."""
from __future__ import annotations

import os
from collections import defaultdict

import pytest

from mfaranet_ros.evaluation.fleet.manifest import parse_manifest
from mfaranet_ros.evaluation.synthbag import LABEL_TOPIC, SyntheticBagSpec, make_synthetic_bag

ray = pytest.importorskip("ray")


@pytest.fixture()
def two_nodes():
    """A head and a second node of 3 logical CPUs each (logical: this machine may have
    fewer cores; Ray schedules by the numbers it is given)."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    store = 96 * 1024 * 1024
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 3, "object_store_memory": store, "include_dashboard": False})
    cluster.add_node(num_cpus=3, object_store_memory=store)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
def test_actors_reserve_the_cpus_they_thread_on_per_node(tmp_path, two_nodes,
                                                          tiny_checkpoint):
    from mfaranet_ros.evaluation.fleet.run import FleetRun, run_fleet
    from mfaranet_ros.model import read_checkpoint

    bag = make_synthetic_bag(tmp_path / "bag", SyntheticBagSpec(frames=16, size=(32, 64)))
    manifest = parse_manifest({"bags": [bag["path"]], "unit_frames": 2,
                               "defaults": {"label_topic": LABEL_TOPIC}}, tmp_path)
    model = {"weights": str(tiny_checkpoint), "backend": "torch", "device": "cpu",
             "input_size": [32, 64]}
    doc = run_fleet(FleetRun(manifest=manifest, out=tmp_path / "out", model=model,
                             engine="ray", address=two_nodes.address, workers=2,
                             progress=False),
                    read_checkpoint(str(tiny_checkpoint)).metadata)
    assert doc["results"]["failed_units"] == 0 and doc["results"]["fleet"]["frames"] == 16
    # Nodes of 3 CPUs, one left for Ray Data: 2 CPUs per actor, so one actor per node.
    actors = {(u["worker"]["node"], u["worker"]["pid"]): u["worker"]
              for u in doc["units"].values()}
    per_node = defaultdict(float)
    for (node, _), worker in actors.items():
        assert worker["cpus"] == 2 and worker["node_cpus"] == 3
        assert worker["threads"] == min(2, len(os.sched_getaffinity(0)))
        per_node[node] += worker["cpus"]
    assert all(reserved <= 3 for reserved in per_node.values())
    assert len({node for node, _ in actors}) == len(actors)     # never two on one node
