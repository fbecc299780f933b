#!/usr/bin/env python3
"""Records rclpy's public Python surface at one release, for the Humble API-surface test.

Reads rclpy's Python sources (never imports them) either from a branch of a git clone
of github.com/ros2/rclpy or from a source folder, and writes JSON:

    {"source": ..., "modules": {"rclpy.node": {
        "names": [public top-level names],
        "classes": {"Node": {"bases": [...], "attributes": [...],
                             "methods": {"create_publisher": {"params": [...],
                                                              "var_keyword": false}}}}}}}

Usage (the committed fixture was made with the first form):
    python scripts/rclpy_surface.py --git /path/to/rclpy.git --ref humble \
        -o test/data/rclpy_humble_surface.json
    python scripts/rclpy_surface.py --dir /path/to/rclpy/rclpy -o surface.json
"""
from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, Tuple

PACKAGE_DIR = "rclpy/rclpy"   # the Python package inside the rclpy repository


def _git_sources(git_dir: str, ref: str) -> Iterator[Tuple[str, str]]:
    """(path relative to the rclpy package, source text) for each .py file at ``ref``."""
    listing = subprocess.run(["git", "-C", git_dir, "ls-tree", "-r", "--name-only", ref,
                              PACKAGE_DIR], check=True, capture_output=True, text=True)
    for path in listing.stdout.split():
        if path.endswith(".py"):
            text = subprocess.run(["git", "-C", git_dir, "show", f"{ref}:{path}"],
                                  check=True, capture_output=True, text=True).stdout
            yield path[len(PACKAGE_DIR) + 1:], text


def _dir_sources(root: str) -> Iterator[Tuple[str, str]]:
    """(path relative to ``root``, source text) for each .py file under ``root``."""
    for path in sorted(Path(root).rglob("*.py")):
        yield path.relative_to(root).as_posix(), path.read_text(encoding="utf-8")


def _module_name(relpath: str) -> str:
    """``lifecycle/node.py`` -> ``rclpy.lifecycle.node``; ``__init__.py`` -> its package."""
    parts = ["rclpy"] + relpath[:-3].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_public(name: str) -> bool:
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _function(node: ast.FunctionDef) -> dict:
    """A function's parameter names (self included) and whether it takes **kwargs."""
    args = node.args
    params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    if args.vararg:
        params.append("*" + args.vararg.arg)
    return {"params": params, "var_keyword": args.kwarg is not None}


def _assigned_names(stmt: ast.stmt) -> Iterator[str]:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    for target in targets:
        for leaf in ast.walk(target):
            if isinstance(leaf, ast.Name):
                yield leaf.id


def _class(node: ast.ClassDef) -> dict:
    methods: Dict[str, dict] = {}
    attributes = set()
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            methods[stmt.name] = _function(stmt)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            attributes.update(_assigned_names(stmt))
    bases = [ast.unparse(b).split(".")[-1] for b in node.bases]
    return {"bases": bases, "attributes": sorted(a for a in attributes if _is_public(a)),
            "methods": {k: v for k, v in sorted(methods.items()) if _is_public(k)}}


def _module(text: str) -> dict:
    """Public top-level names, functions and classes of one module's source."""
    names, classes, functions = set(), {}, {}
    for stmt in ast.parse(text).body:
        if isinstance(stmt, ast.ClassDef):
            names.add(stmt.name)
            classes[stmt.name] = _class(stmt)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(stmt.name)
            functions[stmt.name] = _function(stmt)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            names.update(_assigned_names(stmt))
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            # re-exported names (rclpy/__init__.py imports much of its API)
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        elif isinstance(stmt, ast.Try):   # try: import X / except ImportError: ...
            names.update(_module(ast.unparse(ast.Module(stmt.body, [])))["names"])
    return {"names": sorted(n for n in names if _is_public(n) and n != "*"),
            "functions": {k: v for k, v in sorted(functions.items()) if _is_public(k)},
            "classes": {k: v for k, v in sorted(classes.items()) if _is_public(k)}}


def surface(sources: Iterator[Tuple[str, str]], label: str) -> dict:
    """The public surface of every non-test, non-private module among ``sources``."""
    modules = {}
    for relpath, text in sources:
        name = _module_name(relpath)
        if any(part.startswith("_") for part in name.split(".")[1:]):
            continue
        modules[name] = _module(text)
    return {"source": label, "modules": dict(sorted(modules.items()))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--git", help="a git clone (or mirror) of github.com/ros2/rclpy")
    where.add_argument("--dir", help="a folder holding rclpy's Python package (rclpy/rclpy)")
    parser.add_argument("--ref", default="humble", help="branch, tag or commit (with --git)")
    parser.add_argument("-o", "--output", required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    if args.git:
        commit = subprocess.run(["git", "-C", args.git, "rev-parse", args.ref], check=True,
                                capture_output=True, text=True).stdout.strip()
        result = surface(_git_sources(args.git, args.ref),
                         f"github.com/ros2/rclpy {args.ref} {commit}")
    else:
        result = surface(_dir_sources(args.dir), args.dir)
    Path(args.output).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"{args.output}: {len(result['modules'])} modules from {result['source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
