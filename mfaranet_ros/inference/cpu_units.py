"""Which matrix units this CPU has, from the kernel's x86 feature flags (no torch).

Lower precisions are only worth running where the processor has units for them: bf16
needs AVX-512 BF16 or AMX, and int8 gains most with VNNI or AMX (about 2x fp32's rate on
AVX2 alone, see docs/cpu_precision.md). :func:`detect_cpu_units` reads the ``flags`` line
of ``/proc/cpuinfo`` (Linux, x86); elsewhere (macOS, an aarch64 kernel, whose
``/proc/cpuinfo`` lists ``Features`` instead) the units are *unknown*, and say why.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional, Tuple

__all__ = ["CpuUnits", "UNITS", "detect_cpu_units", "parse_cpuinfo"]

CPUINFO = "/proc/cpuinfo"
#: ``(name shown, Linux x86 flag)`` of every unit reported, slowest first.
UNITS: Tuple[Tuple[str, str], ...] = (
    ("AVX2", "avx2"),
    ("AVX-VNNI", "avx_vnni"),
    ("AVX-512", "avx512f"),
    ("AVX-512 VNNI", "avx512_vnni"),
    ("AVX-512 BF16", "avx512_bf16"),
    ("AMX-BF16", "amx_bf16"),
    ("AMX-INT8", "amx_int8"),
)
_FLAG = {name: flag for name, flag in UNITS}


@dataclass(frozen=True)
class CpuUnits:
    """The units of one CPU: ``flags`` as the kernel lists them, ``known`` False (and
    ``note`` saying why) where no x86 flags could be read, ``model`` its name."""

    flags: FrozenSet[str] = frozenset()
    known: bool = True
    model: str = ""
    note: str = ""

    def has(self, unit: str) -> bool:
        """Whether the unit named as in :data:`UNITS` (``"AMX-BF16"``) is present."""
        return _FLAG[unit] in self.flags

    @property
    def units(self) -> Tuple[str, ...]:
        """The units present, by their names in :data:`UNITS`."""
        return tuple(name for name, flag in UNITS if flag in self.flags)

    @property
    def bf16_units(self) -> Tuple[str, ...]:
        """The units that run bf16 (AMX-BF16, AVX-512 BF16); empty: bf16 would run as fp32."""
        return tuple(u for u in ("AMX-BF16", "AVX-512 BF16") if self.has(u))

    def describe(self) -> str:
        """One line: ``"AVX2 (no AVX-512, AVX-512 VNNI, AVX-512 BF16, AMX)"``."""
        if not self.known:
            return f"unknown ({self.note})"
        if not self.units:
            return "none of " + ", ".join(name for name, _ in UNITS)
        absent = [name for name, flag in UNITS if flag not in self.flags]
        if "AMX-BF16" in absent and "AMX-INT8" in absent:  # one word for both
            absent = [name for name in absent if not name.startswith("AMX")] + ["AMX"]
        return ", ".join(self.units) + (f" (no {', '.join(absent)})" if absent else "")

    def as_dict(self) -> Dict[str, object]:
        """For JSON reports: the model, the units present, whether bf16 has units."""
        return {"model": self.model or None, "known": self.known, "units": list(self.units),
                "bf16_units": list(self.bf16_units), "note": self.note or None}


def parse_cpuinfo(text: str, where: str = CPUINFO) -> CpuUnits:
    """The units listed in the text of ``/proc/cpuinfo`` (its first processor's entry)."""
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key and key not in fields:
            fields[key] = value.strip()
    model = fields.get("model name", "")
    if "flags" not in fields:
        arch = "aarch64" if "Features" in fields else "no x86 flags"
        return CpuUnits(frozenset(), False, model,
                        f"{where} lists no x86 flags ({arch}); matrix units not detected")
    return CpuUnits(frozenset(fields["flags"].split()), True, model)


def detect_cpu_units(path: Optional[str] = None) -> CpuUnits:
    """This machine's units, from ``/proc/cpuinfo`` (or ``path``); unknown elsewhere."""
    path = path or CPUINFO
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        return CpuUnits(frozenset(), False, "",
                        f"{path} unreadable on {sys.platform} ({exc.strerror or exc})")
    return parse_cpuinfo(text, path)
