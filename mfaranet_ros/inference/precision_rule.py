"""The rule of ``precision: auto``, as a pure function of the units and what was measured.

``auto`` runs the fastest precision this machine has units for whose labels agree with
fp32's on at least :data:`AGREEMENT_THRESHOLD` of the pixels measured. The candidates,
fastest first (:func:`auto_order`):

- on a GPU: fp16, then fp32;
- on a CPU: bf16 where the CPU has AMX-BF16 or AVX-512 BF16 units (OpenVINO), then int8
  where a calibrated artifact exists (OpenVINO's, then ONNX Runtime's), then fp32.
  bf16 comes before int8: on an AMX Xeon it ran faster and labelled closer to fp32 (see
  docs/cpu_precision.md); int8 keeps about 40 % of the model's work in float.

fp32 is the reference: it needs no measurement and is always the last candidate. A
candidate is chosen only on a measured agreement (:func:`choose_precision`); one that was
not measured is never assumed to pass. No torch here: the tests drive the rule with
made-up units and agreements; :mod:`.auto_precision` measures the real ones.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Optional, Tuple, Union

from ..names import BACKEND_PRECISIONS
from .cpu_units import CpuUnits

__all__ = ["AGREEMENT_THRESHOLD", "Trial", "PrecisionChoice", "auto_order", "choose_precision"]

#: The least fraction of pixels labelled as fp32 labels them for a precision to be chosen.
AGREEMENT_THRESHOLD = 0.995
#: Why each precision is a candidate.
_WHY = {"fp16": "the GPU's half precision", "int8": "a calibrated artifact",
        "fp32": "the reference"}
_SPEED_ORDER = ("fp16", "bf16", "int8", "fp32")
#: What one measurement is: the fraction of pixels labelled as fp32 does, or why the
#: precision could not run (no artifact, no units, a runtime missing).
Measured = Union[float, str]


@dataclass(frozen=True)
class Trial:
    """What ``auto`` did with one precision: ``outcome`` is ``chosen``, ``rejected`` (it
    ran and agreed too little), ``unavailable`` (it could not run here), ``skipped`` (not a
    candidate on this machine, or not measured) or ``not tried`` (a faster one passed)."""

    precision: str
    outcome: str
    reason: str
    agreement: Optional[float] = None

    def describe(self) -> str:
        return f"{self.precision} {self.outcome} ({self.reason})"


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``precision: auto`` chose, and on what evidence.

    ``precision`` the one chosen; ``agreement`` its measured fraction of pixels labelled
    as fp32 labels them (None for fp32, the reference); ``trials`` every precision
    considered, fastest first; ``units`` the CPU's units as read; ``measured_on`` the
    frames the agreements were measured on; ``seconds`` what building and measuring the
    candidates took (the start-up cost of ``auto``).
    """

    precision: str
    agreement: Optional[float]
    threshold: float
    device: str
    units: str
    trials: Tuple[Trial, ...]
    measured_on: str = ""
    seconds: Optional[float] = None

    def describe(self) -> str:
        """One line for logs and diagnostics."""
        got = "the reference" if self.agreement is None else \
            f"{100 * self.agreement:.2f} % labels as fp32"
        return (f"auto chose {self.precision} ({got}; needs >= {100 * self.threshold:g} %) "
                f"on the {self.device}, CPU units {self.units}: "
                + "; ".join(t.describe() for t in self.trials))

    def as_dict(self) -> Dict[str, object]:
        """For JSON reports and diagnostics."""
        out = asdict(self)
        out["trials"] = [asdict(t) for t in self.trials]
        return out


def _runs(backend: str, precision: str) -> bool:
    return backend == "auto" or precision in BACKEND_PRECISIONS.get(backend, ())


def auto_order(units: CpuUnits, on_gpu: bool,
               backend: str = "auto") -> Tuple[List[Tuple[str, str]], List[Trial]]:
    """The candidates, fastest first, each with why it is one; and the precisions that
    are not candidates here, as ``skipped`` trials saying why.

    ``backend``: the backend asked for (``auto``: any that runs the precision).
    """
    order: List[Tuple[str, str]] = []
    skipped: List[Trial] = []
    lower = ("fp16",) if on_gpu else ("bf16", "int8")
    for precision in lower:
        if not _runs(backend, precision):
            skipped.append(Trial(precision, "skipped", f"backend {backend} does not run it"))
        elif precision == "bf16" and not units.known:
            skipped.append(Trial(precision, "skipped", f"the CPU's units are {units.describe()}"))
        elif precision == "bf16" and not units.bf16_units:
            skipped.append(Trial(precision, "skipped", "no AMX-BF16 or AVX-512 BF16 units"))
        elif precision == "bf16":
            order.append((precision, f"{' and '.join(units.bf16_units)} units"))
        else:
            order.append((precision, _WHY[precision]))
    order.append(("fp32", _WHY["fp32"]))
    return order, skipped


def choose_precision(units: CpuUnits, on_gpu: bool, measured: Mapping[str, Measured], *,
                     backend: str = "auto", threshold: float = AGREEMENT_THRESHOLD,
                     measured_on: str = "",
                     notes: Optional[Mapping[str, str]] = None) -> PrecisionChoice:
    """The first candidate of :func:`auto_order` whose measured agreement is at least
    ``threshold``; fp32 when none is.

    ``measured``: per precision, the fraction of pixels labelled as fp32 labels them, or
    why it could not run. A candidate missing from it is not chosen. ``notes``: per
    precision, how its agreement was measured (which runtime, on which frames).
    """
    notes = notes or {}
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    order, skipped = auto_order(units, on_gpu, backend)
    trials: List[Trial] = []
    chosen: Optional[Trial] = None
    for precision, why in order:
        value = measured.get(precision)
        if chosen is not None:
            trials.append(Trial(precision, "not tried", f"{chosen.precision} passed first"))
        elif precision == "fp32":
            chosen = Trial(precision, "chosen", "the reference; no faster precision passed"
                           if trials else "the reference; no faster candidate here")
            trials.append(chosen)
        elif value is None:
            trials.append(Trial(precision, "skipped", f"{why}; not measured"))
        elif isinstance(value, str):
            trials.append(Trial(precision, "unavailable", value))
        else:
            agreement = float(value)
            if not 0.0 <= agreement <= 1.0:
                raise ValueError(f"{precision}: agreement must be a fraction in [0, 1], "
                                 f"got {value!r}")
            passed = agreement >= threshold
            how = f" ({notes[precision]})" if notes.get(precision) else ""
            trials.append(Trial(precision, "chosen" if passed else "rejected",
                                f"{why}; {100 * agreement:.2f} % labels as fp32{how}, "
                                f"{'>=' if passed else '<'} {100 * threshold:g} %", agreement))
            chosen = trials[-1] if passed else None
    # fp32, the last candidate, is chosen when nothing before it was
    chosen = next(t for t in trials if t.outcome == "chosen")
    fastest_first = sorted(trials + skipped, key=lambda t: _SPEED_ORDER.index(t.precision))
    return PrecisionChoice(chosen.precision, chosen.agreement, threshold,
                           "GPU" if on_gpu else "CPU", units.describe(),
                           tuple(fastest_first), measured_on)
