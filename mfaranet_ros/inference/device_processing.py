"""The processing steps as torch ops on the backend's device (the GPU implementation).

On a GPU the frame goes up once (uint8), is letterboxed there, runs through the graph,
and only what is asked for comes down: uint8 labels, colour and overlay at the frame's
size (the full-size logits never leave the graph). The operations mirror
:class:`~.processing.HostProcessing` (area / bilinear resize in, nearest-neighbour
labels out, palette lookup, alpha blend), so both give the same labels up to resize
rounding. It runs on any torch device; on the CPU it is slower than the host
implementation and serves the tests.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .processing import Letterbox, OutArray, Processing

__all__ = ["DeviceProcessing"]


class DeviceProcessing(Processing):
    """Letterbox, label restore, colour and overlay as torch ops on ``device``.

    ``lut``: ``(256, 3)`` uint8 palette table; ``fill``: ``(3,)`` uint8 letterbox padding.
    """

    def __init__(self, device: str, lut: np.ndarray, fill: np.ndarray) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.lut = torch.from_numpy(np.ascontiguousarray(lut)).to(self.device)    # (256, 3) uint8
        self.fill = torch.from_numpy(np.ascontiguousarray(fill)).to(self.device)  # (3,) uint8

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def upload(self, frames: Sequence[np.ndarray]) -> List[torch.Tensor]:
        out = []
        for f in frames:
            t = torch.from_numpy(np.ascontiguousarray(f))
            if self.cuda:
                # Pinned memory: the copy runs asynchronously while the next frame is staged.
                t = t.pin_memory().to(self.device, non_blocking=True)
            out.append(t)
        return out

    def letterbox(self, images: Sequence[torch.Tensor], boxes: Sequence[Letterbox],
                  canvas_hw: Tuple[int, int]) -> torch.Tensor:
        h, w = canvas_hw
        canvas = self.fill.view(1, 1, 1, 3).expand(len(images), h, w, 3).clone()
        for i, (image, box) in enumerate(zip(images, boxes)):
            vh, vw = box.valid
            canvas[i, :vh, :vw] = image if (vh, vw) == box.source else _resize(image, box)
        return canvas

    def stack(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        return images[0].unsqueeze(0) if len(images) == 1 else torch.stack(list(images))

    def restore_labels(self, labels: torch.Tensor, box: Letterbox,
                       out: OutArray = None) -> torch.Tensor:
        vh, vw = box.valid
        valid = labels[:vh, :vw]
        if (vh, vw) == box.source:
            return valid
        # "nearest" picks floor(dst * src / dst_size), as cv2.INTER_NEAREST does.
        up = F.interpolate(valid[None, None].float(), size=box.source, mode="nearest")
        return up[0, 0].to(torch.uint8)

    def restore_confidence(self, conf: torch.Tensor, box: Letterbox) -> torch.Tensor:
        vh, vw = box.valid
        valid = conf[:vh, :vw].float()
        if (vh, vw) == box.source:
            return valid
        return F.interpolate(valid[None, None], size=box.source, mode="bilinear",
                             align_corners=False)[0, 0]

    def shrink(self, image: torch.Tensor, box: Letterbox) -> torch.Tensor:
        return image if box.valid == box.source else _resize(image, box)

    def set_lut(self, lut: np.ndarray) -> None:
        self.lut = torch.from_numpy(np.ascontiguousarray(lut, dtype=np.uint8)).to(self.device)

    def colorize(self, labels: torch.Tensor, out: OutArray = None) -> torch.Tensor:
        return self.lut[labels.long()]

    def blend(self, image: torch.Tensor, color: torch.Tensor, alpha: float,
              out: OutArray = None) -> torch.Tensor:
        mixed = image.float() * (1.0 - alpha) + color.float() * alpha
        return mixed.round_().clamp_(0, 255).to(torch.uint8)

    def download(self, array: Optional[torch.Tensor],
                 out: OutArray = None) -> Optional[np.ndarray]:
        """To the host; ``out``: straight into it (e.g. a message's buffer), one copy."""
        if array is None:
            return None
        if out is None:
            return array.cpu().numpy()
        torch.from_numpy(out).copy_(array)
        return out


def _resize(image: torch.Tensor, box: Letterbox) -> torch.Tensor:
    """``(h, w, 3)`` uint8 -> ``(valid_h, valid_w, 3)`` uint8, as OpenCV resizes on the host."""
    x = image.permute(2, 0, 1).unsqueeze(0).float()
    (sh, sw), (vh, vw) = box.source, box.valid
    if sh % vh == 0 and sw % vw == 0:
        # Integer factor (1024x2048 -> 512x1024): box average, exactly cv2.INTER_AREA.
        x = F.interpolate(x, size=(vh, vw), mode="area")
    else:
        # Otherwise antialiased bilinear: within ~1 grey level (mean) of INTER_AREA
        # when shrinking, and INTER_LINEAR when enlarging.
        x = F.interpolate(x, size=(vh, vw), mode="bilinear", align_corners=False,
                          antialias=vh < sh)
    return x[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8)
