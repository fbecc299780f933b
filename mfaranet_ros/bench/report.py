"""What every benchmark's JSON report starts with, and writing it."""
from __future__ import annotations

import json
import os
import platform
import sys
from typing import Dict, Optional

__all__ = ["machine_info", "cpu_line", "write_json"]


def machine_info() -> Dict[str, object]:
    """The command line and the conditions a figure depends on: CPUs and their matrix
    units, threads, GPU, versions."""
    import torch

    from ..inference.cpu_units import detect_cpu_units

    return {
        "command": " ".join(sys.argv),
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, "
                   f"{torch.get_num_threads()} torch threads",
        "cpu_units": detect_cpu_units().as_dict(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def cpu_line() -> str:
    """The CPU and its matrix units, printed beside bench's figures."""
    from ..inference.cpu_units import detect_cpu_units

    units = detect_cpu_units()
    return f"CPU: {units.model or platform.machine()}; matrix units: {units.describe()}"


def write_json(path: Optional[str], report: Dict[str, object]) -> Optional[str]:
    """Writes ``report`` to ``path`` (indented, UTF-8); does nothing for None."""
    if not path:
        return None
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    return path
