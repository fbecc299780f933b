"""The dry run's report: which ATen ops Torch-TensorRT converts, into how many engines, and
what it would leave to PyTorch (``mfaranet build-engine --dry-run`` and the convertibility
tests print it)."""
from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, List, Optional

import torch

__all__ = ["ConversionReport", "OpCoverage"]


@dataclass
class OpCoverage:
    """Nodes of one ATen op that share a converter (``None``: no converter accepts them)."""

    op: str
    count: int
    converter: Optional[str]


@dataclass
class ConversionReport:
    """What a dry run found: the op coverage, the TensorRT engines, what PyTorch would run."""

    ops: List[OpCoverage]
    #: Number of ops in each TensorRT engine, in graph order.
    engine_ops: List[int]
    #: Nodes outside every engine: they would run in PyTorch, between engines.
    left_to_torch: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(o.count for o in self.ops)

    @property
    def convertible(self) -> int:
        return sum(o.count for o in self.ops if o.converter is not None)

    @property
    def engines(self) -> int:
        return len(self.engine_ops)

    @property
    def fully_converted(self) -> bool:
        """Every op convertible, one engine, nothing left to PyTorch."""
        return self.convertible == self.total and self.engines == 1 and not self.left_to_torch

    def summary(self) -> str:
        pct = 100.0 * self.convertible / max(1, self.total)
        return (f"{self.convertible}/{self.total} ops convertible ({pct:.1f} %), "
                f"{self.engines} TensorRT engine{'s' if self.engines != 1 else ''}, "
                f"{len(self.left_to_torch)} node{'s' if len(self.left_to_torch) != 1 else ''} "
                f"left to PyTorch")

    def table(self) -> str:
        """``op | count | converter`` as a Markdown table, most frequent op first."""
        rows = ["| op | count | converter |", "|---|---:|---|"]
        for o in sorted(self.ops, key=lambda o: (-o.count, o.op, o.converter or "")):
            rows.append(f"| `{o.op}` | {o.count} | {o.converter or '**none: runs in PyTorch**'} |")
        return "\n".join(rows)

    @classmethod
    def from_partitioned(cls, trt, partitioned: torch.fx.GraphModule) -> "ConversionReport":
        """Reads a dry run's result: ``_run_on_acc_N`` submodules become engines."""
        registry = trt.dynamo.conversion._ConverterRegistry.DYNAMO_CONVERTERS
        counts: Counter = Counter()  # (op, converter) -> nodes
        engine_ops: List[int] = []
        left: List[str] = []

        def tally(node: torch.fx.Node) -> str:
            name = _op_name(node.target)
            counts[(name, _converter_name(registry, node))] += 1
            return f"{name} ({node.name})"

        for child_name, child in partitioned.named_children():
            if not isinstance(child, torch.fx.GraphModule):
                continue
            nodes = _compute_nodes(child.graph)
            if child_name.startswith("_run_on_acc"):
                engine_ops.append(len(nodes))
                for node in nodes:
                    tally(node)
            else:  # the fast partitioner's PyTorch submodules
                left.extend(tally(node) for node in nodes)
        top = [n for n in _compute_nodes(partitioned.graph)
               if not (n.op == "call_module" or n.target is operator.getitem)]
        left.extend(tally(node) for node in top)
        ops = [OpCoverage(op, n, converter) for (op, converter), n in counts.items()]
        return cls(ops, engine_ops, left)


def _compute_nodes(graph: torch.fx.Graph) -> List[torch.fx.Node]:
    return [n for n in graph.nodes if n.op in ("call_function", "call_method", "call_module")]


def _op_name(target: Any) -> str:
    """``aten.convolution.default`` for ``torch.ops.aten.convolution.default``."""
    if isinstance(target, str):
        return target
    name = str(target) if isinstance(target, torch._ops.OpOverload) else getattr(
        target, "__name__", str(target))
    return name.removeprefix("torch.ops.")


def _converter_name(registry, node: torch.fx.Node) -> Optional[str]:
    """The converter TensorRT would use for ``node`` (validators applied), or None."""
    try:
        implementation = registry[node][0]
    except KeyError:
        return None
    return getattr(implementation, "__name__", repr(implementation))
