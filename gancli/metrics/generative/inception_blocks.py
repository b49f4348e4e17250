"""torch-fidelity's Inception v3 blocks, rewritten for speed without changing what they compute.

Every rewrite is exact in real arithmetic; only float rounding moves (tests compare the scores with
torch-fidelity's to 1e-4):

- batch norms are folded into their convolutions (conv → BN(eval) → ReLU is one conv with a bias);
- the 1×1 convolutions that read a block's input run as one convolution with their output channels stacked,
  so the input is read once and the GEMM is wider;
- an average-pool branch (3×3 average without the padding, then a 1×1 convolution) convolves first and pools
  after: both are linear and the pool's weights sum to one, so the bias can be added after the pool. The pool
  then averages 32–192 channels instead of the block's 192–1280;
- the E blocks' nested concatenations are flattened into the block's single one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FoldedConvReLU(nn.Module):
    """conv → BN(eval) → ReLU as one convolution with a bias, then the ReLU."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride, padding):
        super().__init__()
        self.register_buffer("weight", weight.float().contiguous())
        self.register_buffer("bias", bias.float())
        self.stride, self.padding = tuple(stride), tuple(padding)
        self.fused = False  # conv+bias+ReLU in one kernel: cuDNN's on CUDA, oneDNN's on the CPU
        self.memory_format = torch.channels_last  # the layout the fused kernel is given

    @classmethod
    def fold(cls, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> FoldedConvReLU:
        """Fold an eval-mode batch norm into the convolution before it (in float64, stored as float32)."""
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        weight = conv.weight.double() * scale.view(-1, 1, 1, 1)
        bias = bn.bias.double() - bn.running_mean.double() * scale
        return cls(weight, bias, conv.stride, conv.padding)

    @classmethod
    def stack(cls, convs: list[FoldedConvReLU]) -> FoldedConvReLU:
        """One convolution computing several 1×1 convolutions of the same input, output channels in order."""
        return cls(torch.cat([c.weight for c in convs]), torch.cat([c.bias for c in convs]), (1, 1), (0, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            return F.relu(F.conv2d(x, self.weight, self.bias, self.stride, self.padding), inplace=True)
        x = x.contiguous(memory_format=self.memory_format)  # a channel slice of a stacked conv's output is strided
        if x.is_cuda:
            return torch.cudnn_convolution_relu(x, self.weight, self.bias, self.stride, self.padding, (1, 1), 1)
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, self.padding, self.stride, (1, 1),
                                                       1, "relu", [None], "")


class ConvThenAvgPool(nn.Module):
    """TF's average-pool branch, relu(conv1x1(avgpool3x3(x)) + b), computed as relu(avgpool3x3(conv1x1(x)) + b)."""

    def __init__(self, conv: FoldedConvReLU):
        super().__init__()
        self.register_buffer("weight", conv.weight)
        self.register_buffer("bias", conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.avg_pool2d(F.conv2d(x, self.weight), kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return F.relu(y + self.bias.view(1, -1, 1, 1), inplace=True)


class Fork(nn.Module):
    """Several modules applied to one input; their outputs join the block's concatenation side by side."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [branch(x) for branch in self.branches]


class InceptionBlock(nn.Module):
    """A mixed block as: one stacked 1×1 conv, the rest of each branch, and the branches read from the input."""

    def __init__(self, stem: FoldedConvReLU | None, widths: list[int], paths: list[nn.Module], sources: list[int]):
        super().__init__()
        self.stem, self.widths, self.paths, self.sources = stem, widths, nn.ModuleList(paths), sources

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.stem(x).split(self.widths, dim=1) if self.stem is not None else ()
        outputs: list[torch.Tensor] = []
        for source, path in zip(self.sources, self.paths):
            out = path(x if source < 0 else parts[source])
            outputs.extend(out if isinstance(out, list) else [out])
        return torch.cat(outputs, 1)


# Each block's branches in concatenation order: names of its convolutions in sequence (a tuple of names forks
# into parallel convolutions whose outputs are concatenated), and its pooling branch last.
_BRANCHES = {
    "InceptionA": ([["branch1x1"], ["branch5x5_1", "branch5x5_2"],
                    ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]], "avg"),
    "InceptionB": ([["branch3x3"], ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]], "max/2"),
    "InceptionC": ([["branch1x1"], ["branch7x7_1", "branch7x7_2", "branch7x7_3"],
                    ["branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5"]],
                   "avg"),
    "InceptionD": ([["branch3x3_1", "branch3x3_2"], ["branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3",
                                                       "branch7x7x3_4"]], "max/2"),
    "InceptionE_1": ([["branch1x1"], ["branch3x3_1", ("branch3x3_2a", "branch3x3_2b")],
                      ["branch3x3dbl_1", "branch3x3dbl_2", ("branch3x3dbl_3a", "branch3x3dbl_3b")]], "avg"),
    "InceptionE_2": ([["branch1x1"], ["branch3x3_1", ("branch3x3_2a", "branch3x3_2b")],
                      ["branch3x3dbl_1", "branch3x3dbl_2", ("branch3x3dbl_3a", "branch3x3dbl_3b")]], "max/1"),
}


def _is_pointwise(conv: FoldedConvReLU) -> bool:
    return conv.weight.shape[2:] == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0)


def rewrite_block(block: nn.Module) -> InceptionBlock:
    """An InceptionBlock equal to a torch-fidelity mixed block whose BasicConv2d are already FoldedConvReLU."""
    names, pool = _BRANCHES[type(block).__name__]
    stem_convs: list[FoldedConvReLU] = []
    paths: list[nn.Module] = []
    sources: list[int] = []
    for branch in names:
        steps = [Fork(*(getattr(block, n) for n in step)) if isinstance(step, tuple) else getattr(block, step)
                 for step in branch]
        if isinstance(steps[0], FoldedConvReLU) and _is_pointwise(steps[0]):
            sources.append(len(stem_convs))
            stem_convs.append(steps.pop(0))
        else:
            sources.append(-1)
        paths.append(nn.Sequential(*steps))
    if pool == "avg":
        paths.append(ConvThenAvgPool(block.branch_pool))
    elif pool == "max/1":
        paths.append(nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1), block.branch_pool))
    else:
        paths.append(nn.MaxPool2d(kernel_size=3, stride=2))
    sources.append(-1)
    stem = FoldedConvReLU.stack(stem_convs) if stem_convs else None
    return InceptionBlock(stem, [c.weight.shape[0] for c in stem_convs], paths, sources)


def fold_and_rewrite(net: nn.Module) -> None:
    """Fold every BasicConv2d's batch norm, then rewrite every mixed block of torch-fidelity's InceptionV3."""
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    for name, child in list(net.named_children()):
        if isinstance(child, BasicConv2d):
            setattr(net, name, FoldedConvReLU.fold(child.conv, child.bn))
        else:
            fold_and_rewrite(child)
            if type(child).__name__ in _BRANCHES:
                setattr(net, name, rewrite_block(child))
