"""MFARANet's parts as switches: the paper's model and the variants its ablations compare.

An :class:`Architecture` names one choice per part. The default is the paper's model
(deep-stem ResNet-18, MFAM, RAM, ASFM) with the official state-dict keys; the others
replace one part at a time:

- ``backbone``: ``resnet18`` (the paper's), ``resnet50``, ``resnet101`` (deep stem,
  Bottleneck blocks).
- ``aggregation``: ``mfam`` (top-down + bottom-up, the paper's), ``fpn`` (the top-down
  path only), ``none`` (the 1x1 lateral projections only).
- ``alignment``: ``ram`` (recursive flow warps, the paper's), ``direct`` (each scale
  warped straight to 1/4 by a flow of its own), ``bilinear`` (plain upsampling).
- ``fusion``: ``asfm`` (attention, the paper's), ``mean``, ``max``, ``concat`` (a 1x1
  classifier on the concatenated aligned features), or one scale alone, ``s1`` .. ``s4``
  (MFARANet-Pruned is the full model's weights with ``s2``).

The architecture travels in a checkpoint's metadata, so every loader builds the right
graph with no option.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Dict, Mapping, Tuple

__all__ = [
    "AGGREGATIONS", "ALIGNMENTS", "ALL_SCALES", "Architecture", "BACKBONES", "FUSIONS",
    "PAPER", "SINGLE_SCALES",
]

ALL_SCALES = ("s1", "s2", "s3", "s4")
BACKBONES = ("resnet18", "resnet50", "resnet101")
AGGREGATIONS = ("mfam", "fpn", "none")
ALIGNMENTS = ("ram", "direct", "bilinear")
SINGLE_SCALES = ALL_SCALES
FUSIONS = ("asfm", "mean", "max", "concat") + SINGLE_SCALES

_CHOICES = {"backbone": BACKBONES, "aggregation": AGGREGATIONS, "alignment": ALIGNMENTS,
            "fusion": FUSIONS}
_SHORT = {"resnet18": "r18", "resnet50": "r50", "resnet101": "r101"}


@dataclass(frozen=True)
class Architecture:
    """One choice per part of MFARANet; the defaults are the paper's model."""

    backbone: str = "resnet18"
    aggregation: str = "mfam"
    alignment: str = "ram"
    fusion: str = "asfm"

    def __post_init__(self) -> None:
        for part, choices in _CHOICES.items():
            value = getattr(self, part)
            if value not in choices:
                raise ValueError(f"architecture: {part} {value!r} is unknown; use one of "
                                 f"{', '.join(choices)}")

    @property
    def is_paper(self) -> bool:
        return self == PAPER

    @property
    def scales(self) -> Tuple[str, ...]:
        """The scales whose heads are built: all four, or the one a single-scale fusion keeps."""
        return (self.fusion,) if self.fusion in SINGLE_SCALES else ALL_SCALES

    @property
    def name(self) -> str:
        """A short label, e.g. ``r18-mfam-ram-asfm``."""
        return "-".join((_SHORT[self.backbone], self.aggregation, self.alignment, self.fusion))

    def pruned(self) -> "Architecture":
        """The same weights read through branch 2 alone (MFARANet-Pruned)."""
        if self.fusion in SINGLE_SCALES and self.fusion != "s2":
            raise ValueError(f"pruned keeps branch 2, but this {self.name} model has only "
                             f"branch {self.fusion[1]}; load it without pruned")
        return replace(self, fusion="s2")

    def to_dict(self) -> Dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, str]) -> "Architecture":
        """Builds from a mapping; a missing part is the paper's, an unknown key is an error."""
        if not isinstance(values, Mapping):
            raise ValueError(f"architecture: expected a mapping of parts, got {values!r}")
        unknown = set(values) - set(_CHOICES)
        if unknown:
            raise ValueError(f"architecture: unknown parts {sorted(unknown)}; the parts are "
                             f"{', '.join(_CHOICES)}")
        return cls(**{k: str(v) for k, v in values.items()})


#: The paper's model.
PAPER = Architecture()
