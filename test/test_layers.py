"""The layers of docs/architecture.md, as the imports really are: every import of every
module (at module level and inside functions, relative ones resolved) is read with ``ast``
and checked against the diagram.

    rank 5  ros/                       rclpy lives here and nowhere else
    rank 4  demo.py
    rank 3  training/    bench/        (not each other)
    rank 2  evaluation/
    rank 1  inference/
    rank 0  model/ synthetic/ names, labelmap, label_formats, encodings, timing, cli_args,
            lazy (the base: no torch-free module imports a torch one at import time)

A module imports only its own layer and lower ranks; a command's parser (a ``cli`` module)
is imported only by ``mfaranet_ros/cli.py`` (which loads them by name) and within its layer.
Within a layer the modules import each other without a circle, and a backend never imports
another backend (what two backends share lives beside them, e.g. ``onnx_artifacts``).
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "mfaranet_ros"

RANKS: Dict[str, int] = {
    **{name: 0 for name in ("model", "synthetic", "names", "labelmap", "label_formats",
                            "encodings", "timing", "cli_args", "lazy", "")},
    "inference": 1, "evaluation": 2, "training": 3, "bench": 3, "demo": 4, "ros": 5,
    "cli": 6,
}


def layer(module: str) -> str:
    """``mfaranet_ros.inference.backends.base`` -> ``inference``; the package itself -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path, module: str) -> Iterator[Tuple[str, int]]:
    """Every ``mfaranet_ros`` module ``path`` imports, with the line (relative resolved)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None:    # from . import x: the submodules themselves
                targets = [f"{target}.{a.name}" for a in node.names]
            else:
                targets = [target]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            if t == "mfaranet_ros" or t.startswith("mfaranet_ros."):
                yield t, node.lineno


def package_edges() -> List[Tuple[str, str, str]]:
    """``(importer, imported, "file:line")`` for every import inside the package."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for target, line in imports(path, module):
            edges.append((module, target, f"{path.relative_to(REPO)}:{line}"))
    return edges


def violations(edges) -> List[str]:
    """The edges the diagram forbids, one line each."""
    out = []
    for importer, imported, where in edges:
        a, b = layer(importer), layer(imported)
        if imported.split(".")[-1] == "cli" and importer != "mfaranet_ros.cli" and a != b:
            out.append(f"{where}: {importer} imports another layer's command module "
                       f"{imported}")
            continue
        if a == b:
            continue
        if a not in RANKS or b not in RANKS:
            out.append(f"{where}: {importer} -> {imported}: layer not in the diagram")
        elif RANKS[b] > RANKS[a]:
            out.append(f"{where}: {importer} -> {imported}: upwards ({a} is below {b})")
        elif RANKS[b] == RANKS[a] and RANKS[a] != 0:
            out.append(f"{where}: {importer} -> {imported}: sideways ({a}, {b})")
    return out


def circles(edges) -> List[str]:
    """Import circles among modules (any length), and backends importing other backends."""
    graph: Dict[str, Set[str]] = {}
    for importer, imported, _ in edges:
        if importer != imported:
            graph.setdefault(importer, set()).add(imported)
    out = [f"{where}: {a} imports {b}: one backend built on another"
           for a, b, where in edges
           if a != b and a.endswith("_backend") and b.endswith("_backend")]
    state: Dict[str, int] = {}     # 1: on the current path, 2: done
    path: List[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for nxt in sorted(graph.get(module, ())):
            if state.get(nxt) == 1:
                out.append("import circle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return out


def test_no_import_circles_and_no_backend_on_another():
    found = circles(package_edges())
    assert not found, "\n".join(found)


def test_the_circle_check_sees_the_old_ones():
    ort = "mfaranet_ros.inference.backends.onnxruntime_backend"
    old = [(ort, "mfaranet_ros.inference.quantize", "x.py:1"),
           ("mfaranet_ros.inference.quantize", ort, "x.py:2"),
           ("mfaranet_ros.inference.backends.openvino_backend", ort, "x.py:3")]
    found = circles(old)
    assert len(found) == 2 and any("circle" in f for f in found), found
    assert circles(old[:1] + old[2:]) == [f"x.py:3: {old[2][0]} imports {ort}: one backend "
                                          f"built on another"]


def test_the_package_imports_as_the_diagram_says():
    found = violations(package_edges())
    assert not found, "\n".join(found)


def test_every_top_level_module_has_a_place_in_the_diagram():
    names: Set[str] = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
                       if (p.suffix == ".py" and p.stem != "__init__")
                       or (p.is_dir() and (p / "__init__.py").exists())}
    assert names <= set(RANKS), sorted(names - set(RANKS))


def test_no_node_module_imports_the_tools():
    """ros/tools/ builds on the node's modules; a node module importing a tool would pull
    the benchmarks, the player or the live evaluation into every robot's process."""
    found = [f"{where}: {a} imports {b}" for a, b, where in package_edges()
             if a.startswith("mfaranet_ros.ros.") and not a.startswith("mfaranet_ros.ros.tools")
             and b.startswith("mfaranet_ros.ros.tools")]
    assert not found, "\n".join(found)


def test_the_check_sees_each_kind_of_forbidden_edge():
    """The edges that were there before the layers were put right, fed to the check."""
    bad = [
        ("mfaranet_ros.inference.calibration", "mfaranet_ros.evaluation.bags"),
        ("mfaranet_ros.inference.quantize", "mfaranet_ros.evaluation.metrics"),
        ("mfaranet_ros.inference.cli", "mfaranet_ros.bench"),
        ("mfaranet_ros.evaluation.cli", "mfaranet_ros.ros.tools.live_eval"),
        ("mfaranet_ros.evaluation.weights_eval", "mfaranet_ros.training.datasets"),
        ("mfaranet_ros.demo", "mfaranet_ros.evaluation.cli"),
        ("mfaranet_ros.bench.segmenter", "mfaranet_ros.training.metrics"),
        ("mfaranet_ros.model.checkpoint", "mfaranet_ros.inference.cache"),
        ("mfaranet_ros.newlayer.x", "mfaranet_ros.model"),
    ]
    found = violations([(a, b, "x.py:1") for a, b in bad])
    assert len(found) == len(bad), "\n".join(found)
    fine = [("mfaranet_ros.ros.core", "mfaranet_ros.inference"),
            ("mfaranet_ros.training.metrics", "mfaranet_ros.evaluation.metrics"),
            ("mfaranet_ros.inference.segmenter", "mfaranet_ros.names"),
            ("mfaranet_ros.evaluation.fleet.cli", "mfaranet_ros.evaluation.model_args"),
            ("mfaranet_ros.evaluation.cli", "mfaranet_ros.evaluation.fleet.cli")]
    assert violations([(a, b, "x.py:1") for a, b in fine]) == []
