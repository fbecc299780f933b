"""Deep-stem ResNet encoders: ResNet-18 ("resnet18-deep-inplane128", the paper's), -50, -101.

The stem is three 3x3 convolutions (64-64-128 channels, the first with stride 2)
instead of ResNet's single 7x7. Layers 3 and 4 dilate the stride-1 3x3
convolution of every block (2 and 4) while keeping all strides, so the output
strides stay 4/8/16/32 and only the receptive field grows (docs/model.md, encoder).

Parameter names follow the ImageNet backbone file ``resnet18-deep-inplane128.pth``
(``conv1.0/1/3/4/6``, ``bn1``, ``layer1..4``), so that file loads unchanged. The deeper
variants keep the same stem and names with torchvision's Bottleneck blocks (stage
channels 256/512/1024/2048), as the official ResNet-50 deep-stem backbone does.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "DeepStemResNet", "DeepStemResNet18", "ENCODER_CHANNELS",
           "encoder_channels"]

#: Channels of the four encoder stages E1..E4 (strides 4, 8, 16, 32) of ResNet-18.
ENCODER_CHANNELS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """torchvision-style residual block; ``dilation`` applies to ``conv2`` only."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: Optional[nn.Sequential] = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision-style bottleneck (1x1, 3x3, 1x1 x4); ``dilation`` applies to the 3x3."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: Optional[nn.Sequential] = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = Union[Type[BasicBlock], Type[Bottleneck]]

#: block type and blocks per stage of each backbone.
_DEPTHS: Dict[str, Tuple[Block, Tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}


def encoder_channels(backbone: str = "resnet18") -> Tuple[int, int, int, int]:
    """Channels of E1..E4 of ``backbone``."""
    block = _DEPTHS[backbone][0]
    return tuple(c * block.expansion for c in ENCODER_CHANNELS)  # type: ignore[return-value]


def _make_stage(block: Block, inplanes: int, planes: int, blocks: int, stride: int,
                dilation: int) -> nn.Sequential:
    # Dilation goes on the stride-1 3x3s only: a BasicBlock's conv2 (its conv1 may be
    # strided); in a Bottleneck the 3x3 is conv2 in every block, so the strided first
    # block keeps dilation 1, as BasicBlock's strided conv1 does.
    first = block(inplanes, planes, stride=stride,
                  dilation=dilation if block is BasicBlock or stride == 1 else 1)
    rest = [block(planes * block.expansion, planes, dilation=dilation)
            for _ in range(blocks - 1)]
    return nn.Sequential(first, *rest)


class DeepStemResNet(nn.Module):
    """Returns the four stage features ``[E1, E2, E3, E4]`` of a ``(B, 3, H, W)`` input.

    Args:
        depth: ``resnet18`` (the paper's), ``resnet50`` or ``resnet101``.
        use_dilation: dilate ``conv2`` of layer3/layer4 by 2/4 (the released configs do).
        dropout: optional ``Dropout2d`` rates ``[stem, layer1, ..., layer4]`` (training only;
            the official ``Scale_Choice`` recipe suggests ``[0, .05, .05, .05, .05]``).
            Dropout holds no parameters, so the state-dict layout is unchanged.
    """

    def __init__(self, depth: str = "resnet18", use_dilation: bool = True,
                 dropout: Sequence[float] = (0.0,) * 5) -> None:
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"backbone {depth!r} is unknown; use one of {', '.join(_DEPTHS)}")
        block, blocks = _DEPTHS[depth]
        self.channels = encoder_channels(depth)
        if len(dropout) != 5:
            raise ValueError(f"dropout needs 5 rates [stem, layer1..layer4], got {list(dropout)}")
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 128, 3, padding=1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(128)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.use_dilation = bool(use_dilation)
        d3, d4 = (2, 4) if use_dilation else (1, 1)
        e = block.expansion
        self.layer1 = _make_stage(block, 128, 64, blocks[0], stride=1, dilation=1)
        self.layer2 = _make_stage(block, 64 * e, 128, blocks[1], stride=2, dilation=1)
        self.layer3 = _make_stage(block, 128 * e, 256, blocks[2], stride=2, dilation=d3)
        self.layer4 = _make_stage(block, 256 * e, 512, blocks[3], stride=2, dilation=d4)
        self.dropout_rates = tuple(float(p) for p in dropout)

    def _drop(self, x: torch.Tensor, index: int) -> torch.Tensor:
        p = self.dropout_rates[index]
        return F.dropout2d(x, p, self.training) if p > 0 else x

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self._drop(self.relu(self.bn1(self.conv1(x))), 0)
        x = self.maxpool(x)
        feats = []
        for i, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4), start=1):
            x = self._drop(stage(x), i)
            feats.append(x)
        return feats


class DeepStemResNet18(DeepStemResNet):
    """The paper's encoder: :class:`DeepStemResNet` with ``depth="resnet18"``."""

    def __init__(self, use_dilation: bool = True, dropout: Sequence[float] = (0.0,) * 5) -> None:
        super().__init__("resnet18", use_dilation=use_dilation, dropout=dropout)
