"""BasicVSR++ (Chan et al., CVPR 2022) as plain PyTorch modules.

Written from the paper and the public mmagic description of the network, with
module and parameter names chosen so that the official mmagic / mmediting
checkpoints load with a strict key match (after the loader strips their
`generator.` prefix). Nothing here knows about files, tiles or videos; the
runner (runner.py) drives the network over chunks and tiles.

Tensors follow the official layout: frames (n, t, 3, h, w) float RGB in [0, 1],
flows (n, t - 1, 2, h, w) with channel 0 = dx, channel 1 = dy in pixels.

Flow convention (the one SPyNet flows have inside BasicVSR++):
  flows_backward[:, i] is defined on frame i's grid and points into frame i + 1
      (used by the backward-time branches, which carry features from i + 1 to i);
  flows_forward[:, i]  is defined on frame i + 1's grid and points into frame i
      (used by the forward-time branches, which carry features from i to i + 1).
`flow_warp(x, flow)` samples x at p + flow(p), so warping the neighbour's
features with the flow defined on the current frame aligns them to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")


@dataclass(frozen=True)
class BasicVSRPPConfig:
    mid_channels: int = 64  # the released x4 models: 64
    num_blocks: int = 7  # residual blocks per propagation branch: 7
    max_residue_magnitude: float = 10.0  # bound on learned offsets around the flow (Eq. 6)
    deform_groups: int = 16  # offset groups of the deformable alignment

    def __post_init__(self) -> None:
        # The deformable conv reads [feature from t-1, feature from t-2]: the first half of
        # the offset groups follows flow_1, the second half flow_2, so the count must be
        # even and divide the 2 * mid_channels input channels.
        if self.deform_groups < 2 or self.deform_groups % 2 or (2 * self.mid_channels) % self.deform_groups:
            raise ValueError(
                f"BasicVSR++ deform_groups must be even and divide 2 * mid_channels "
                f"({2 * self.mid_channels}); got {self.deform_groups}"
            )


def flow_warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Sample x (n, c, h, w) at p + flow(p); flow is (n, 2, h, w) in pixels, (dx, dy).

    Bilinear, pixel centres at integer coordinates (align_corners=True), as the
    official network does, so the released weights see the same alignment.
    """
    n, _, h, w = x.shape
    if flow.shape[-2:] != (h, w):
        raise ValueError(f"flow {tuple(flow.shape[-2:])} does not match features {(h, w)}")
    flow = flow.float()
    ys = torch.arange(h, device=x.device, dtype=torch.float32)
    xs = torch.arange(w, device=x.device, dtype=torch.float32)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    pos_x = grid_x + flow[:, 0]
    pos_y = grid_y + flow[:, 1]
    grid = torch.stack((2.0 * pos_x / max(w - 1, 1) - 1.0, 2.0 * pos_y / max(h - 1, 1) - 1.0), dim=-1)
    # Sample in float32 even under fp16 autocast: a half-precision grid is off
    # by a quarter pixel at 1000 px, which would blur every alignment.
    out = F.grid_sample(x.float(), grid.float(), mode="bilinear", padding_mode=padding_mode, align_corners=True)
    return out.to(x.dtype)


class ResidualBlockNoBN(nn.Module):
    """conv - ReLU - conv, added to the input (no normalisation)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ResidualBlocksWithInputConv(nn.Module):
    """A 3x3 conv to `out_channels` + LeakyReLU, then `num_blocks` residual blocks.

    Kept as one Sequential named `main` (indices 0, 1, 2) because the
    checkpoint keys are `main.0.*` and `main.2.<block>.conv{1,2}.*`.
    """

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            nn.LeakyReLU(0.1),
            nn.Sequential(*[ResidualBlockNoBN(out_channels) for _ in range(num_blocks)]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class _ConvAct(nn.Module):
    """A conv with an optional ReLU; the attribute is `conv` to match `*.conv.weight`."""

    def __init__(self, cin: int, cout: int, relu: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 7, 1, 3)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class SPyNetBasicModule(nn.Module):
    """One pyramid level: (ref, warped supp, flow) 8 channels -> flow residual."""

    def __init__(self) -> None:
        super().__init__()
        chans = (8, 32, 64, 32, 16, 2)
        self.basic_module = nn.Sequential(*[_ConvAct(chans[i], chans[i + 1], relu=i < 4) for i in range(5)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basic_module(x)


class SPyNet(nn.Module):
    """Spatial pyramid flow network (6 levels, coarse to fine)."""

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList([SPyNetBasicModule() for _ in range(6)])
        # Persistent buffers: the released checkpoints carry spynet.mean/std.
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _flow_at_multiple_of_32(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        refs = [(ref - self.mean) / self.std]
        supps = [(supp - self.mean) / self.std]
        for _ in range(5):
            refs.append(F.avg_pool2d(refs[-1], 2, 2, count_include_pad=False))
            supps.append(F.avg_pool2d(supps[-1], 2, 2, count_include_pad=False))
        refs.reverse()
        supps.reverse()
        n, _, h, w = refs[0].shape
        flow = refs[0].new_zeros(n, 2, h, w)
        for level, module in enumerate(self.basic_module):
            if level > 0:
                # Twice the resolution: the flow vectors double too.
                flow = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            warped = flow_warp(supps[level], flow, padding_mode="border")
            flow = flow + module(torch.cat([refs[level], warped, flow], dim=1))
        return flow

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        """Flow from ref to supp, (n, 2, h, w): ref(p) ~ supp(p + flow(p))."""
        h, w = ref.shape[-2:]
        h_up = -(-h // 32) * 32
        w_up = -(-w // 32) * 32
        ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flow = F.interpolate(self._flow_at_multiple_of_32(ref, supp), size=(h, w), mode="bilinear", align_corners=False)
        scale = flow.new_tensor([w / w_up, h / h_up]).view(1, 2, 1, 1)
        return flow * scale


class SecondOrderDeformableAlignment(nn.Module):
    """Flow-guided modulated deformable conv over the two previous features.

    Parameters `weight` / `bias` are those of the deformable conv itself
    (out, 2 * out, 3, 3); `conv_offset` predicts, from the two flow-warped
    neighbours, the current feature and both flows, a bounded offset residue
    around each flow plus a modulation mask, for every one of `deform_groups`
    groups and 9 kernel taps (27 = 9 * (2 offsets + 1 mask)).
    """

    def __init__(self, channels: int, deform_groups: int, max_residue_magnitude: float) -> None:
        super().__init__()
        self.deform_groups = deform_groups
        self.max_residue_magnitude = max_residue_magnitude
        self.weight = nn.Parameter(torch.empty(channels, 2 * channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.conv_offset = nn.Sequential(
            nn.Conv2d(3 * channels + 4, channels, 3, 1, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(channels, 27 * deform_groups, 3, 1, 1),
        )
        # Start at "pure flow warping": zero residue, mask 0.5 everywhere.
        nn.init.zeros_(self.conv_offset[-1].weight)
        nn.init.zeros_(self.conv_offset[-1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, flow_1: torch.Tensor, flow_2: torch.Tensor) -> torch.Tensor:
        """x: (n, 2c) = [feat from t-1, feat from t-2] (unwarped); cond: (n, 3c)."""
        out = self.conv_offset(torch.cat([cond, flow_1, flow_2], dim=1))
        o1, o2, mask = torch.chunk(out, 3, dim=1)
        residue = self.max_residue_magnitude * torch.tanh(torch.cat([o1, o2], dim=1))
        res_1, res_2 = torch.chunk(residue, 2, dim=1)
        # Offsets are (dy, dx) pairs per tap (torchvision / mmcv layout), hence flip.
        taps = res_1.shape[1] // 2
        offset_1 = res_1 + flow_1.flip(1).repeat(1, taps, 1, 1)
        offset_2 = res_2 + flow_2.flip(1).repeat(1, taps, 1, 1)
        offset = torch.cat([offset_1, offset_2], dim=1)
        return deform_conv2d(x, offset, self.weight, self.bias, padding=(1, 1), mask=torch.sigmoid(mask))


class PixelShufflePack(nn.Module):
    """3x3 conv to scale^2 times the channels, then pixel shuffle."""

    def __init__(self, cin: int, cout: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.upsample_conv = nn.Conv2d(cin, cout * scale * scale, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.upsample_conv(x), self.scale)


class BasicVSRPlusPlus(nn.Module):
    """x4 video super-resolution with second-order grid propagation."""

    scale = 4

    def __init__(self, config: BasicVSRPPConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or BasicVSRPPConfig()
        c = config.mid_channels
        self.mid_channels = c
        self.spynet = SPyNet()
        self.feat_extract = ResidualBlocksWithInputConv(3, c, 5)
        self.deform_align = nn.ModuleDict()
        self.backbone = nn.ModuleDict()
        for i, name in enumerate(BRANCHES):
            self.deform_align[name] = SecondOrderDeformableAlignment(
                c, config.deform_groups, config.max_residue_magnitude
            )
            # Input: spatial feature + every earlier branch + the propagated feature.
            self.backbone[name] = ResidualBlocksWithInputConv((2 + i) * c, c, config.num_blocks)
        self.reconstruction = ResidualBlocksWithInputConv(5 * c, c, 5)
        self.upsample1 = PixelShufflePack(c, c, 2)
        self.upsample2 = PixelShufflePack(c, 64, 2)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)

    def compute_flow(self, lqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SPyNet flows (flows_forward, flows_backward), each (n, t - 1, 2, h, w)."""
        n, t, c, h, w = lqs.shape
        prev = lqs[:, :-1].reshape(-1, c, h, w)
        nxt = lqs[:, 1:].reshape(-1, c, h, w)
        flows_backward = self.spynet(prev, nxt).view(n, t - 1, 2, h, w)
        flows_forward = self.spynet(nxt, prev).view(n, t - 1, 2, h, w)
        return flows_forward, flows_backward

    def propagate(self, feats: dict[str, list[torch.Tensor]], flows: torch.Tensor, name: str) -> None:
        """Run one propagation branch over the sequence, appending to feats[name]."""
        t = len(feats["spatial"])
        backward = name.startswith("backward")
        order = list(range(t - 1, -1, -1)) if backward else list(range(t))
        # Earlier branches, in the order the official concatenation uses.
        earlier = [k for k in feats if k not in ("spatial", name)]
        out: list[torch.Tensor] = []
        feat_prop = feats["spatial"][0].new_zeros(feats["spatial"][0].shape)
        for i, idx in enumerate(order):
            current = feats["spatial"][idx]
            if i > 0:
                # Flow on frame idx's grid into the previously processed frame.
                flow_n1 = flows[:, idx] if backward else flows[:, idx - 1]
                cond_n1 = flow_warp(feat_prop, flow_n1)
                feat_n2 = torch.zeros_like(feat_prop)
                flow_n2 = torch.zeros_like(flow_n1)
                cond_n2 = torch.zeros_like(cond_n1)
                if i > 1:
                    feat_n2 = out[-2]
                    flow_prev = flows[:, idx + 1] if backward else flows[:, idx - 2]
                    # Compose the two one-step flows into a two-step flow.
                    flow_n2 = flow_n1 + flow_warp(flow_prev, flow_n1)
                    cond_n2 = flow_warp(feat_n2, flow_n2)
                cond = torch.cat([cond_n1, current, cond_n2], dim=1)
                feat_prop = self.deform_align[name](torch.cat([feat_prop, feat_n2], dim=1), cond, flow_n1, flow_n2)
            parts = [current] + [feats[k][idx] for k in earlier] + [feat_prop]
            feat_prop = feat_prop + self.backbone[name](torch.cat(parts, dim=1))
            out.append(feat_prop)
        feats[name] = out[::-1] if backward else out

    def forward(
        self,
        lqs: torch.Tensor,
        flows: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(n, t, 3, h, w) in [0, 1] -> (n, t, 3, 4h, 4w).

        `flows` = (flows_forward, flows_backward) in the convention of the
        module docstring replaces SPyNet when given (flow reuse).
        """
        n, t, c, h, w = lqs.shape
        if t < 2:
            raise ValueError("BasicVSR++ needs at least 2 frames")
        spatial = self.feat_extract(lqs.reshape(-1, c, h, w)).view(n, t, -1, h, w)
        feats: dict[str, list[torch.Tensor]] = {"spatial": [spatial[:, i] for i in range(t)]}
        flows_forward, flows_backward = flows if flows is not None else self.compute_flow(lqs)
        for name in BRANCHES:
            self.propagate(feats, flows_backward if name.startswith("backward") else flows_forward, name)
        outputs = []
        for i in range(t):
            hr = torch.cat([feats["spatial"][i]] + [feats[k][i] for k in BRANCHES], dim=1)
            hr = self.reconstruction(hr)
            hr = F.leaky_relu(self.upsample1(hr), 0.1)
            hr = F.leaky_relu(self.upsample2(hr), 0.1)
            hr = F.leaky_relu(self.conv_hr(hr), 0.1)
            hr = self.conv_last(hr)
            base = F.interpolate(lqs[:, i], scale_factor=4, mode="bilinear", align_corners=False)
            outputs.append(hr + base)
        return torch.stack(outputs, dim=1)
