"""The eraser interface: fill the masked region of a window of frames.

The pipeline cuts the clip into windows (subvideo_length frames, overlapping),
scales them to the working resolution, dilates the masks, and hands each window
to an Eraser. Frames already finished by the previous window arrive with an
empty mask, so content carries across window borders without a seam in time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..progress import Reporter


@dataclass
class EraserOptions:
    """What a user or a benchmark can tune; each field's effect is documented
    where it is used (FlowGuidedEraser's docstring)."""

    neighbor_stride: int = 5  # temporal scale of the fusion of candidates (frames)
    step: int = 10  # keyframe stride for invented content (frames)
    flow: str = "auto"  # "auto", "dis", "raft_small", "raft_large"
    inpainter: str = "auto"  # never-seen pixels: "auto", "lama", "synthesis", "opencv"
    flow_rounds: int = 2  # 1: flow on the smooth prefill; 2: plus a half-resolution guide round
    flow_completion_dilation: int = 6  # grow the holes for flow completion (pixels)
    flow_completion: str = "membrane"  # inside the holes: "membrane" or "background" (homography near the hole)
    temporal_smoothing: int = 2  # passes of the [1, 2, 1] filter of the fill along the flow
    consistency_relative: float = 0.1  # forward-backward flow check: share of |f|^2 + |b|^2 tolerated
    consistency_absolute: float = 2.0  # forward-backward flow check: pixels^2 tolerated
    invent_everywhere: bool = False  # costly inpainter also for passing gaps, not only lasting ones
    device: str = ""  # learned parts (RAFT, LaMa): "" = the daemon's device policy, or cpu/cuda[:N]/mps

    def __post_init__(self) -> None:
        if self.flow_completion not in ("background", "membrane"):
            raise ValueError(
                f"eraser option flow_completion must be 'background' or 'membrane', got {self.flow_completion!r}"
            )
        for name in ("neighbor_stride", "step", "flow_rounds"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"eraser option {name} must be >= 1, got {getattr(self, name)}")
        for name in ("flow_completion_dilation", "temporal_smoothing", "consistency_relative", "consistency_absolute"):
            if getattr(self, name) < 0:
                raise ValueError(f"eraser option {name} must be >= 0, got {getattr(self, name)}")


@dataclass
class FlowFields:
    """Optical flow of a window at working resolution, in pixels.

    forward[t] maps frame t to t+1 and backward[t] maps frame t+1 to t, each
    (T-1, H, W, 2) float32 with (dx, dy). The eraser returns the *completed*
    flow (background motion inside the holes) so the upscaler can reuse it.
    """

    forward: np.ndarray
    backward: np.ndarray


@dataclass
class EraseResult:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, filled
    flows: FlowFields | None = None  # completed flow, when the eraser computed one


class Eraser(ABC):
    """Fills masked pixels with plausible background, consistent in time."""

    name: ClassVar[str]
    learned: ClassVar[bool] = False

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """(available, reason if not). No-weights backends are always available."""
        return True, ""

    @abstractmethod
    def erase(
        self,
        frames: np.ndarray,
        masks: np.ndarray,
        options: EraserOptions,
        reporter: Reporter,
    ) -> EraseResult:
        """Fill `masks` (T, H, W) bool in `frames` (T, H, W, 3) uint8 RGB.

        Must call reporter.check() between frames or passes so a cancel takes
        effect quickly. Pixels outside the mask may be returned unchanged or
        not: the compositor only takes pixels inside the (feathered) mask.
        """
