"""Entry point of the benchmarks' child processes (see :mod:`.processes` for the protocol).

    python -m mfaranet_ros.bench.worker package.module:function '{"spec": ...}'

Kept apart from the package's other modules so that ``-m`` runs a module nobody imported.
"""
from __future__ import annotations

import importlib
import json
import logging
import sys
from typing import Callable, Dict, List, Optional


def _send(message: Dict) -> None:
    # stdout is the channel to the parent: one JSON object per line.
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _ready() -> None:
    _send({"ready": True})
    sys.stdin.readline()


def _resolve(target: str) -> Callable[[Dict, Callable[[], None]], Dict]:
    module, sep, name = target.partition(":")
    if not sep:
        raise ValueError(f"worker target must be module:function, got {target!r}")
    return getattr(importlib.import_module(module), name)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.stderr.write("internal entry point of the benchmarks; use `mfaranet bench` "
                         "or `mfaranet bench-node`\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _send(_resolve(argv[0])(json.loads(argv[1]), _ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
