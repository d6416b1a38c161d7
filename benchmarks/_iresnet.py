"""Random-weight IResNet (insightface arcface_torch layout): the recognizer architecture of antelopev2's
glintr100 (IResNet-100), for benchmarks that need its real cost without its weights.

Input ``(B, 3, 112, 112)`` normalized like ArcFace (``(pixels - 127.5) / 127.5``); output ``(B, 512)``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

#: Blocks per stage of IResNet-100 (glintr100).
IRESNET100_LAYERS = (3, 13, 30, 3)
#: ONNX opset of the export: an older one, like the insightface model files (onnx2torch converts it).
ONNX_OPSET = 13


class IBasicBlock(nn.Module):
    """insightface arcface_torch IResNet block: BN-conv-BN-PReLU-conv-BN (+ projection shortcut)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return self.body(x) + (x if self.short is None else self.short(x))


def iresnet(layers: tuple[int, ...] = IRESNET100_LAYERS, seed: int = 0) -> nn.Module:
    """IResNet with ``layers`` blocks per stage (widths 64..512, fc 512*7*7 -> 512), random weights, eval."""
    torch.manual_seed(seed)
    cin, blocks = 64, []
    for n, cout in zip(layers, [64, 128, 256, 512], strict=True):
        blocks += [IBasicBlock(cin, cout, 2)] + [IBasicBlock(cout, cout, 1) for _ in range(n - 1)]
        cin = cout
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64), *blocks,
        nn.BatchNorm2d(512), nn.Flatten(), nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512),
    ).eval()  # fmt: skip


def export_iresnet(folder: Path, layers: tuple[int, ...] = IRESNET100_LAYERS) -> tuple[Path, int]:
    """Export a random :func:`iresnet` to ``folder/iresnet_random.onnx`` (input ``data``, batch 1).

    Returns the path and the parameter count.
    """
    net = iresnet(layers)
    path = Path(folder) / "iresnet_random.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, torch.zeros(1, 3, 112, 112), str(path), dynamo=False, input_names=["data"], opset_version=ONNX_OPSET
        )
    return path, sum(p.numel() for p in net.parameters())
