"""FlowGuidedEraser: the default eraser (flow, flow completion, propagation, hallucination)."""

from __future__ import annotations

import logging
import time
from typing import ClassVar

import cv2
import numpy as np

from ...flow import complete_flow_fields, get_estimator
from ...flow.base import FlowEstimator
from ...flow.dis import DISFlow, DISOptions
from ...progress import Reporter
from ..base import Eraser, EraseResult, EraserOptions, FlowFields
from ..lama import Inpainter, OpenCVInpainter, get_inpainter
from .fill import fill_window, push_pull
from .propagation import Consistency

log = logging.getLogger(__name__)


def prefill(frames: np.ndarray, masks: np.ndarray, margin: int = 16) -> np.ndarray:
    """Frames with each hole replaced by a smooth interpolation of its surround."""
    out = frames.copy()
    height, width = masks.shape[1:]
    for t in range(len(frames)):
        ys, xs = np.nonzero(masks[t])
        if len(ys) == 0:
            continue
        # Only the holes' bounding box (plus a margin of known pixels) matters.
        y0, y1 = max(ys.min() - margin, 0), min(ys.max() + margin + 1, height)
        x0, x1 = max(xs.min() - margin, 0), min(xs.max() + margin + 1, width)
        hole = masks[t, y0:y1, x0:x1]
        crop = out[t, y0:y1, x0:x1]
        filled = push_pull(crop.astype(np.float32), (~hole).astype(np.float32))
        crop[hole] = np.clip(np.rint(filled[hole]), 0, 255).astype(np.uint8)
    return out


def _background(options: EraserOptions) -> bool:
    return options.flow_completion == "background"


def _consistency(options: EraserOptions) -> Consistency:
    return Consistency(relative=options.consistency_relative, absolute=options.consistency_absolute)


# The "fast" preset down to half resolution (it stops at a quarter). Rule written before the run
# (benchmarks/eraser_moving_holes.py cases): on the 14 tuning holes the gain over per-frame Telea
# went 4.38 -> 4.69 dB (no case down by more than 0.5 dB, worst Ewarp 1.27 -> 1.23x the truth's,
# 1.04x the erase time); held out, run once after: 8.51 -> 10.64 dB (hk_crossing +11-13 -> +16-21 dB),
# worst case +2.71 -> +2.62 dB. Full resolution (level 0) flickered on tuning (worst Ewarp 2.1x).
ERASER_DIS = DISOptions(preset="fast", finest_scale=1)


class FlowGuidedEraser(Eraser):
    """Fills each hole with real background seen in other frames of the window.

    Options (EraserOptions):
      neighbor_stride: temporal scale of the confidence fusion. A pixel found
        d frames away has weight exp(-d / neighbor_stride). Small values
        (3) trust the nearest frame almost alone: sharpest fill, but a switch
        of source frame shows as a small jump; large values (10) average
        the past and future candidates more evenly: steadier in time (higher
        TC), slightly softer where the flow drifts. It does not change the
        cost.
      step: keyframe stride for invented content. Pixels no frame shows are
        invented on every `step`-th frame and carried along the flow to the
        frames between. Smaller steps re-invent more often (more inpainter
        calls: slower, with LaMa much slower; content may change at each
        keyframe); larger steps invent once and carry it further (faster,
        steadier, but drift accumulates over long carries).
      flow: "auto" (DIS), "dis", "raft_small", "raft_large".
      inpainter: who invents never-seen pixels on keyframes: "auto" (LaMa
        when its weights are present, else "synthesis"), "synthesis" (FSR
        and Telea weighted per hole by how well each predicts the hole's
        surround: continues lines and stripes, ~0.5-1 s per logo-sized hole
        at 432x240), "opencv" (Telea: smooth, instant).
      flow_rounds: 1 estimates the final flow on the smooth prefill; 2 (the
        default) first runs a half-resolution guide round (quick DIS, Telea)
        so the holes move like the background when the final flow is
        estimated: ~1 dB on running_car for ~25 % more time; more rounds
        gain little.
      flow_completion_dilation: pixels by which the holes are grown before
        the flow inside them is completed: DIS patches near the hole still
        see the object, so their flow is replaced too.
      flow_completion: what moves inside a hole. "membrane" (default): the
        smoothest field that meets the rim's flow everywhere. "background"
        (the quality preset): one homography fitted to the flow near the
        hole, where most of its rim follows it, with the rim's residual
        fading in over 8 px (see flow.completion); the chains that carry
        pixels across a large hole stay rigid instead of bending with a leg
        or a cane at the mask's edge. Measured (benchmarks/
        eraser_moving_holes.py, 2-core CPU): moving holes +5.70 against
        +4.38 dB over Telea on the tuning cases, +9.53 against +8.51 held
        out; 13.3 against 17.9 frames/s. Not the default because on DAVIS
        tennis it copies more of the player's shadow margin into the fill
        (20.7 % of the mask's core keeps the object's colour, against 19.2 %
        and the quality test's bar of 20 %).
      invent_everywhere: a costly inpainter (synthesis) invents only the
        pixels that stay unseen in at least half the window (a logo on a
        locked-off shot); the passing gaps of a moving hole get Telea. True
        runs it everywhere: +0.2 dB on moving holes for ~10x the time.
      temporal_smoothing: passes of a [1, 2, 1] filter of the fill along the
        completed flow (0 = off): each pass halves the small frame-to-frame
        differences left by source switches (less flicker, Ewarp -10 % on
        running_car) at the cost of a slightly softer fill.
      consistency_relative, consistency_absolute: how far the forward and
        backward flows may disagree, |f + b|^2 < relative * (|f|^2 + |b|^2)
        + absolute, before a step along the flow is taken for an occlusion
        (the chain of a propagated pixel is cut there, and the temporal
        filter skips that neighbour). Lower is stricter: fewer wrong sources
        at occlusions, but more of the hole left to invention, which
        flickers. Sundaram et al.'s (0.01, 0.5) cut most chains on DIS flow
        of real footage; (0.1, 2) with 2 smoothing passes measured +1.2 dB
        on moving holes (benchmarks/eraser_moving_holes.py).
    """

    name: ClassVar[str] = "flowguided"
    learned: ClassVar[bool] = False

    def __init__(self, flow_estimator: FlowEstimator | None = None, inpainter: Inpainter | None = None) -> None:
        self._flow_estimator = flow_estimator
        self._inpainter = inpainter
        self._flow_cache: dict[str, FlowEstimator] = {}
        self._quick_flow = DISFlow(DISOptions(preset="ultrafast"))

    def _estimator(self, name: str, device: str = "") -> FlowEstimator:
        if self._flow_estimator is not None:
            return self._flow_estimator
        name = (name or "auto").lower()
        if name.startswith("raft"):
            # Learned flow lives in the daemon's model cache, not here: holding
            # it would keep its memory after the cache unloads it.
            return get_estimator(name, device=device or None)
        if name not in self._flow_cache:
            self._flow_cache[name] = get_estimator(name, dis_options=ERASER_DIS)
        return self._flow_cache[name]

    @classmethod
    def model_needs(cls, options: EraserOptions, working: tuple[int, int]) -> list:
        """The learned models a job with `options` will load (RAFT, LaMa), for the memory check at Submit."""
        from ...flow.raft import raft_need
        from ..lama import lama_chosen, lama_need

        needs = []
        flow = (options.flow or "auto").lower()
        if flow.startswith("raft"):
            needs.append(raft_need(flow, working, options.device or None))
        if lama_chosen(options.inpainter, options.device or None):
            needs.append(lama_need(working, options.device or None))
        return needs

    def _guide_round(
        self, guide: np.ndarray, masks: np.ndarray, options: EraserOptions, reporter: Reporter
    ) -> np.ndarray:
        height, width = masks.shape[1:]
        size = (max(width // 2, 16), max(height // 2, 16))
        small = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in guide])
        small_masks = np.stack(
            [cv2.resize(m.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0 for m in masks]
        )
        forward, backward = self._quick_flow.window(small, reporter)
        dilation = options.flow_completion_dilation // 2
        forward, backward = complete_flow_fields(
            forward, backward, small_masks, dilation, reporter, scale=1, background=_background(options)
        )
        filled, _ = fill_window(
            small,
            small_masks,
            forward,
            backward,
            neighbor_stride=options.neighbor_stride,
            step=options.step,
            inpainter=OpenCVInpainter(),
            check=reporter.check,
            temporal_smoothing=options.temporal_smoothing,
            consistency=_consistency(options),
        )
        out = guide.copy()
        for t in range(len(out)):
            if masks[t].any():
                up = cv2.resize(filled[t], (width, height), interpolation=cv2.INTER_LINEAR)
                out[t][masks[t]] = up[masks[t]]
        return out

    def erase(
        self,
        frames: np.ndarray,
        masks: np.ndarray,
        options: EraserOptions,
        reporter: Reporter,
    ) -> EraseResult:
        if frames.ndim != 4 or frames.shape[-1] != 3 or masks.shape != frames.shape[:3]:
            raise ValueError(f"frames {frames.shape} and masks {masks.shape} do not match")
        masks = masks.astype(bool)
        reporter.check()
        started = time.perf_counter()
        estimator = self._estimator(options.flow, options.device)
        inpainter = self._inpainter or get_inpainter(options.inpainter, options.device or None)
        # Round 1 estimates flow on frames whose holes hold a smooth fill: the
        # object (or a static logo) would otherwise drag the background flow
        # around the hole towards its own motion. Later rounds estimate flow on
        # the previous round's result, where the hole already moves with the
        # background, so the completed flow is much closer to the true one.
        guide = prefill(frames, masks)
        for _ in range(options.flow_rounds - 1):
            # The guide round runs at half resolution with DIS's fastest
            # preset and OpenCV for never-seen pixels: it only has to make
            # the holes move like the background for the final flow.
            guide = self._guide_round(guide, masks, options, reporter)
        reporter.check()
        forward, backward = estimator.window(guide, reporter)
        forward, backward = complete_flow_fields(
            forward, backward, masks, options.flow_completion_dilation, reporter, background=_background(options)
        )
        out, stats = fill_window(
            frames,
            masks,
            forward,
            backward,
            neighbor_stride=options.neighbor_stride,
            step=options.step,
            inpainter=inpainter,
            check=reporter.check,
            temporal_smoothing=options.temporal_smoothing,
            invent_everywhere=options.invent_everywhere,
            consistency=_consistency(options),
        )
        log.debug("flowguided: %d frames in %.2fs, %s", len(frames), time.perf_counter() - started, stats)
        return EraseResult(frames=out, flows=FlowFields(forward=forward, backward=backward))
