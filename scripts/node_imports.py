#!/usr/bin/env python3
"""Runs the segmentation node for real and lists the packages its process imported.

    python scripts/node_imports.py [--managed] [--backend torch] [--json FILE]

The node (or, with ``--managed``, the lifecycle node, configured and activated through its
services) runs in its own process from its console script's entry point, with its default
weights at a small network size. This script publishes camera frames until labels come
back, then stops the node with SIGINT; the node's process writes ``sys.modules`` at exit.
It prints the distributions behind the imported top-level modules and fails (exit 1) when
one of them belongs only to evaluation, training or the tests: the node's runtime must not
need them (requirements.txt). Needs rclpy (a ROS 2 install, or the PyPI wheels).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "/mfaranet_imports"
#: distributions only evaluation, training or the tests use (requirements-eval.txt,
#: -train.txt, -fleet.txt, -test.txt): the node must import none of them
NOT_RUNTIME = ("cityscapesscripts", "matplotlib", "tqdm", "rosbags", "ray", "mcap",
               "mcap-ros2-support", "pytest", "pandas")
#: runs the node's entry point, noting for each top-level module the file that first imported
#: it; at exit that goes to a file as JSON {module: importer}
_NODE = """
import atexit, json, sys
out = sys.argv.pop(1)
importers = {}
class _Note:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in importers:
            frame = sys._getframe(1)
            while frame and frame.f_code.co_filename.startswith("<frozen"):
                frame = frame.f_back
            importers[top] = frame.f_code.co_filename if frame else "?"
        return None
sys.meta_path.insert(0, _Note())
def _record():
    with open(out, "w") as f:
        json.dump({m: importers.get(m, "?") for m in
                   {m.partition(".")[0] for m in list(sys.modules)}}, f)
atexit.register(_record)
from mfaranet_ros.ros import entry
sys.exit(getattr(entry, sys.argv.pop(1))())
"""


def distributions(importers: Dict[str, str]) -> Dict[str, List[str]]:
    """distribution -> the imported top-level modules it provides (the standard library and
    this package left out; a module no distribution claims is listed under its own name)."""
    import importlib.metadata

    owners = importlib.metadata.packages_distributions()
    found: Dict[str, List[str]] = {}
    for module in sorted(importers):
        if module in sys.stdlib_module_names or module == "mfaranet_ros" or \
                module.startswith("_") or module == "cython_runtime":
            continue
        for dist in owners.get(module, [module]):
            found.setdefault(dist.lower().replace("_", "-"), []).append(module)
    return found


def own_imports(importers: Dict[str, str], found: Dict[str, List[str]]) -> List[str]:
    """The distributions of NOT_RUNTIME that the package's own code imported ("tqdm by
    mfaranet_ros/x.py"); a package that another one imports only because it is installed
    (torch.hub takes tqdm where it finds it) does not count."""
    package = str(REPO / "mfaranet_ros")
    hits = []
    for dist in NOT_RUNTIME:
        for module in found.get(dist, []):
            where = importers[module]
            if where.startswith(package) or "/mfaranet_ros/" in where:
                hits.append(f"{dist} (by {where})")
    return hits


def _activate(node, timeout_s: float) -> None:
    """configure, then activate the lifecycle node through its change_state service."""
    import rclpy
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = node.create_client(ChangeState, f"{NAMESPACE}/mfaranet/change_state")
    if not client.wait_for_service(timeout_sec=timeout_s):
        raise TimeoutError("the lifecycle node's change_state service did not appear")
    for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout_s)
        if not future.done() or not future.result().success:
            raise RuntimeError(f"lifecycle transition {transition} failed")


def run_node(managed: bool, backend: str, timeout_s: float) -> Dict[str, str]:
    """Starts the node, gets labels for a published frame, stops it; its imported top-level
    modules, each with the file that first imported it."""
    import rclpy
    from sensor_msgs.msg import Image

    entry = "segmentation_lifecycle_node" if managed else "segmentation_node"
    with tempfile.TemporaryDirectory(prefix="mfaranet-imports-") as tmp:
        record = Path(tmp, "modules.json")
        env = dict(os.environ, MFARANET_CACHE_DIR=str(Path(tmp, "cache")))
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        command = [sys.executable, "-c", _NODE, str(record), entry, "--ros-args",
                   "-r", f"__ns:={NAMESPACE}", "-p", f"backend:={backend}",
                   "-p", "device:=cpu", "-p", "input_size:=[64,128]"]
        proc = subprocess.Popen(command, env=env, cwd=tmp)
        rclpy.init()
        node = rclpy.create_node("mfaranet_imports_camera", namespace=NAMESPACE)
        try:
            labels: List[Image] = []
            node.create_subscription(Image, f"{NAMESPACE}/mfaranet/labels", labels.append, 10)
            pub = node.create_publisher(Image, f"{NAMESPACE}/image", 10)
            if managed:
                _activate(node, timeout_s)
            frame = Image(height=120, width=160, encoding="rgb8", step=480,
                          data=bytes(range(256)) * 225)
            deadline = time.monotonic() + timeout_s
            while not labels:
                if proc.poll() is not None:
                    raise RuntimeError(f"the node exited ({proc.returncode}) before labels")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no labels within {timeout_s:.0f} s")
                pub.publish(frame)
                rclpy.spin_once(node, timeout_sec=0.2)
            print(f"labels: {labels[0].width}x{labels[0].height} {labels[0].encoding}")
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.returncode != 0 or not record.is_file():
            raise RuntimeError(f"the node exited {proc.returncode} without recording its imports")
        return json.loads(record.read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--managed", action="store_true", help="the lifecycle node")
    parser.add_argument("--backend", default="torch", help="the node's backend (default torch)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    try:
        importers = run_node(args.managed, args.backend, args.timeout)
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    found = distributions(importers)
    own = own_imports(importers, found)
    optional = sorted(d for d in found if d in NOT_RUNTIME)
    print(f"{'segmentation_lifecycle_node' if args.managed else 'segmentation_node'} "
          f"(backend {args.backend}) imported: {', '.join(sorted(found))}")
    if optional and not own:
        print(f"  of those, {', '.join(optional)}: not by the package's code (another "
              "package's optional import of an installed package)")
    if args.json:
        args.json.write_text(json.dumps({"distributions": found, "not_runtime": own},
                                        indent=1))
    if own:
        print(f"error: the node imported {'; '.join(own)}: only evaluation, training or "
              "the tests need it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
