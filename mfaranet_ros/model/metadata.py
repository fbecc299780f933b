"""Metadata that travels with every set of weights (classes, palette, normalisation...)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .variants import PAPER, Architecture

__all__ = [
    "ModelMetadata",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "cityscapes_metadata",
]

#: The 19 Cityscapes evaluation classes, indexed by trainId.
CITYSCAPES_CLASSES: Tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
)

#: The official Cityscapes colours of those classes (RGB), indexed by trainId.
CITYSCAPES_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

#: ImageNet normalisation on the 0..255 scale, RGB order (what the official recipe uses).
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclass
class ModelMetadata:
    """What a checkpoint is: stored in the project's checkpoint format and exported files.

    ``mean``/``std`` apply to RGB pixel values on the 0..255 scale:
    ``x = (rgb - mean) / std``.
    """

    class_names: List[str]
    palette: List[List[int]]
    mean: List[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: List[float] = field(default_factory=lambda: list(IMAGENET_STD))
    input_size: Optional[List[int]] = None  # [H, W] the weights were trained at
    ignore_index: int = 255
    source: str = "unknown"
    dataset: str = "unknown"
    metrics: Dict[str, float] = field(default_factory=dict)
    #: the variant of each part (:class:`~.variants.Architecture`); a file without one
    #: holds the paper's model
    architecture: Dict[str, str] = field(default_factory=lambda: PAPER.to_dict())

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def validate(self) -> None:
        if not self.class_names:
            raise ValueError("metadata: class_names is empty")
        if len(self.palette) != len(self.class_names):
            raise ValueError(
                f"metadata: palette has {len(self.palette)} colours for "
                f"{len(self.class_names)} classes"
            )
        for colour in self.palette:
            if len(colour) != 3 or not all(0 <= int(c) <= 255 for c in colour):
                raise ValueError(f"metadata: palette entry {colour!r} is not an RGB triple")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"metadata: mean/std need 3 values, got {self.mean} / {self.std}")
        if any(float(s) <= 0 for s in self.std):
            raise ValueError(f"metadata: std must be positive, got {self.std}")
        if self.input_size is not None and (
            len(self.input_size) != 2 or min(int(v) for v in self.input_size) < 1
        ):
            raise ValueError(f"metadata: input_size must be [H, W], got {self.input_size}")
        # a complete, known set of parts (a partial one is completed with the paper's)
        self.architecture = self.model_architecture().to_dict()

    def model_architecture(self) -> Architecture:
        """The :class:`~.variants.Architecture` these weights belong to."""
        try:
            return Architecture.from_dict(self.architecture)
        except ValueError as exc:
            raise ValueError(f"metadata: {exc}") from None

    def to_dict(self) -> Dict:
        """Plain Python types only, so ``torch.load(weights_only=True)`` can read it."""
        d = asdict(self)
        d["palette"] = [[int(c) for c in col] for col in self.palette]
        d["mean"] = [float(v) for v in self.mean]
        d["std"] = [float(v) for v in self.std]
        d["metrics"] = {str(k): float(v) for k, v in self.metrics.items()}
        d["architecture"] = {str(k): str(v) for k, v in self.architecture.items()}
        return d

    @classmethod
    def from_dict(cls, d: Dict) -> "ModelMetadata":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"metadata: unknown fields {sorted(unknown)}")
        return cls(**{k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()})


def cityscapes_metadata(source: str = "unknown", input_size: Optional[Sequence[int]] = None,
                        **extra) -> ModelMetadata:
    """Metadata of a 19-class Cityscapes model."""
    return ModelMetadata(
        class_names=list(CITYSCAPES_CLASSES),
        palette=[list(c) for c in CITYSCAPES_PALETTE],
        input_size=list(input_size) if input_size is not None else None,
        source=source,
        dataset="cityscapes",
        **extra,
    )
