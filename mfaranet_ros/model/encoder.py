"""Deep-stem ResNet-18 encoder ("resnet18-deep-inplane128").

The stem is three 3x3 convolutions (64-64-128 channels, the first with stride 2)
instead of ResNet's single 7x7. Layers 3 and 4 dilate the stride-1 3x3
convolution of every block (2 and 4) while keeping all strides, so the output
strides stay 4/8/16/32 and only the receptive field grows (docs/model.md, encoder).

Parameter names follow the ImageNet backbone file ``resnet18-deep-inplane128.pth``
(``conv1.0/1/3/4/6``, ``bn1``, ``layer1..4``), so that file loads unchanged.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "DeepStemResNet18", "ENCODER_CHANNELS"]

#: Channels of the four encoder stages E1..E4 (strides 4, 8, 16, 32).
ENCODER_CHANNELS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """torchvision-style residual block; ``dilation`` applies to ``conv2`` only."""

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


def _make_stage(inplanes: int, planes: int, blocks: int, stride: int,
                dilation: int) -> nn.Sequential:
    layers = [BasicBlock(inplanes, planes, stride=stride, dilation=dilation)]
    layers += [BasicBlock(planes, planes, dilation=dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class DeepStemResNet18(nn.Module):
    """Returns the four stage features ``[E1, E2, E3, E4]`` of a ``(B, 3, H, W)`` input.

    Args:
        use_dilation: dilate ``conv2`` of layer3/layer4 by 2/4 (the released configs do).
        dropout: optional ``Dropout2d`` rates ``[stem, layer1, ..., layer4]`` (training only;
            the official ``Scale_Choice`` recipe suggests ``[0, .05, .05, .05, .05]``).
            Dropout holds no parameters, so the state-dict layout is unchanged.
    """

    def __init__(self, use_dilation: bool = True, dropout: Sequence[float] = (0.0,) * 5) -> None:
        super().__init__()
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
        d3, d4 = (2, 4) if use_dilation else (1, 1)
        self.layer1 = _make_stage(128, 64, 2, stride=1, dilation=1)
        self.layer2 = _make_stage(64, 128, 2, stride=2, dilation=1)
        self.layer3 = _make_stage(128, 256, 2, stride=2, dilation=d3)
        self.layer4 = _make_stage(256, 512, 2, stride=2, dilation=d4)
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
