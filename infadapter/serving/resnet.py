"""ResNet-18/34/50/101/152 in plain torch (He et al., 2016), for the demo model family.

The layer layout follows torchvision's ``resnet*`` (BasicBlock for 18/34, Bottleneck for
50/101/152, stride in the 3x3 conv), so compute per variant matches the published models.
Weights are **random** (seeded): the family has the real architectures' costs, not their
accuracies; the declared accuracies in :mod:`infadapter.serving.models` are torchvision's.
This module imports torch at import time: import it only where torch is needed.
"""

from __future__ import annotations

import torch
from torch import nn

#: depth -> (block kind, blocks per stage)
LAYOUTS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: torch.Tensor = self.relu(out + self.downsample(x))
        return result


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        result: torch.Tensor = self.relu(out + self.downsample(x))
        return result


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class ResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 1000) -> None:
        super().__init__()
        if depth not in LAYOUTS:
            raise ValueError(f"unknown ResNet depth {depth}; use one of {sorted(LAYOUTS)}")
        kind, blocks = LAYOUTS[depth]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if kind == "basic" else Bottleneck
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages: list[nn.Module] = []
        in_ch = 64
        for index, count in enumerate(blocks):
            width = 64 * 2**index
            layers: list[nn.Module] = []
            for i in range(count):
                layers.append(block(in_ch, width, 2 if (i == 0 and index > 0) else 1))
                in_ch = width * block.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.stages(self.stem(x)))
        logits: torch.Tensor = self.fc(torch.flatten(out, 1))
        return logits


def build_resnet(depth: int, seed: int = 0, num_classes: int = 1000) -> ResNet:
    """A ResNet with seeded random weights (BatchNorm statistics left at their defaults), in eval mode."""
    torch.manual_seed(seed)
    model = ResNet(depth, num_classes)
    model.eval()
    return model


def export_onnx(model: nn.Module, path: str, image_size: int, opset: int = 17) -> None:
    """Export ``model`` to ONNX with input ``input`` [N,3,S,S] float32 and output ``output`` [N,classes]."""
    dummy = torch.zeros(1, 3, image_size, image_size)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (dummy,),
            path,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
