"""SAM 2.1 through the `sam2` package: official configs and .pt checkpoints.

The model is built by `sam2.build_sam.build_sam2_video_predictor` from the
official config of its registry entry; the checkpoint goes through
`load_sam2_checkpoint`, which checks the state dict's key names against the
model and says what does not fit (a wrong size, a SAM 2.0 file for a 2.1
config) instead of a bare RuntimeError.

Streaming: the predictor's `propagate_in_video` is a generator that asks for
one frame image at a time, so a session feeds it frame by frame through a
small frame store (only the newest frames kept) and drops tracking outputs
that fell out of the memory window, so memory stays flat over long clips.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ...errors import BackendUnavailable, ModelError
from ...models.registry import get_spec, locate, missing_reason

if TYPE_CHECKING:
    from ...models.device import Placement

log = logging.getLogger(__name__)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
_KEEP_OUTPUTS = 24  # > max object pointers (16) and memory frames (7) the model looks back on
_OPEN_ENDED = 1 << 30  # frames a streaming session may see; the real count is unknown up front


def load_sam2_checkpoint(model, path: str | os.PathLike[str]) -> None:
    """Load an official SAM 2 checkpoint ({"model": state_dict}) into a built model, strictly."""
    import torch

    try:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable files
        raise ModelError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    state = blob.get("model", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ModelError(f"{path}: expected a dict with a 'model' state dict")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise ModelError(f"{path} does not fit this SAM 2 config: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


class _FrameStore:
    """Frames by index, preprocessed as the sam2 loader does; only recent ones kept."""

    def __init__(self, image_size: int) -> None:
        self.image_size = image_size
        self.frames: dict[int, object] = {}

    def put(self, index: int, rgb: np.ndarray) -> None:
        import torch

        img = cv2.resize(rgb, (self.image_size, self.image_size), interpolation=cv2.INTER_LINEAR)
        img = (img.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        self.frames[index] = torch.from_numpy(img.transpose(2, 0, 1).copy())
        for old in [k for k in self.frames if k < index - 2]:
            del self.frames[old]

    def __getitem__(self, index: int):
        return self.frames[index]

    def __len__(self) -> int:
        return _OPEN_ENDED


class Sam2PackageTracker:
    """Video tracking with the official sam2 package, on the placement's device and precision
    (bf16 autocast on CUDA, as the package's own demos run it; see models/device.py)."""

    def __init__(
        self,
        model_id: str,
        device: str = "cpu",
        hydra_overrides: tuple[str, ...] = (),
        placement: Placement | None = None,
    ) -> None:
        from sam2.build_sam import build_sam2_video_predictor

        from ..learned import placement_for

        spec = get_spec(model_id)
        config = spec.config.get("sam2_config")
        if not config:
            raise ModelError(f"{model_id} is not a sam2 package model")
        found = locate(model_id)
        if found is None:
            raise BackendUnavailable(f"{model_id}: {missing_reason(model_id)}")
        self.placement = placement_for(device, placement)
        self.predictor = build_sam2_video_predictor(
            config, ckpt_path=None, device=self.placement.device, hydra_overrides_extra=list(hydra_overrides)
        )
        load_sam2_checkpoint(self.predictor, found[spec.files[0].filename])
        self.predictor.eval()
        self.model_id = model_id

    def start(self, rgb: np.ndarray, box=None, mask=None, points=None) -> tuple[Sam2PackageSession, np.ndarray]:
        session = Sam2PackageSession(self.predictor, rgb, self.placement)
        return session, session.prompt(box=box, mask=mask, points=points)


class Sam2PackageSession:
    def __init__(self, predictor, rgb: np.ndarray, placement: Placement | None = None) -> None:
        import torch

        from ..learned import placement_for

        self.predictor = predictor
        self.placement = placement_for(str(predictor.device), placement)
        h, w = rgb.shape[:2]
        with tempfile.TemporaryDirectory() as tmp:
            # init_state reads a frame folder; one JPEG of the first frame sets it up, then
            # the folder's frames are replaced by the streaming store.
            cv2.imwrite(str(Path(tmp) / "00000.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            with torch.inference_mode(), self.placement.autocast_context():
                self.state = predictor.init_state(tmp, offload_video_to_cpu=True, offload_state_to_cpu=True)
        self.store = _FrameStore(predictor.image_size)
        self.store.put(0, rgb)
        self.state["images"] = self.store
        self.state["num_frames"] = len(self.store)
        self.state["cached_features"] = {}
        self.index = 0
        self._stream: Iterator | None = None

    def prompt(self, box=None, mask=None, points=None) -> np.ndarray:
        import torch

        with torch.inference_mode(), self.placement.autocast_context():
            if mask is not None:
                _, _, logits = self.predictor.add_new_mask(self.state, frame_idx=0, obj_id=1, mask=mask.astype(bool))
            else:
                kwargs = {}
                if box is not None:
                    kwargs["box"] = np.array(box, np.float32)
                if points:
                    kwargs["points"] = np.array([[x, y] for x, y, _ in points], np.float32)
                    kwargs["labels"] = np.array([1 if p else 0 for *_, p in points], np.int32)
                if not kwargs:
                    raise ValueError("a tracking session needs a box, points or a mask")
                _, _, logits = self.predictor.add_new_points_or_box(self.state, frame_idx=0, obj_id=1, **kwargs)
        self._stream = self.predictor.propagate_in_video(self.state, start_frame_idx=0)
        with torch.inference_mode(), self.placement.autocast_context():
            next(self._stream)  # the prompted frame itself
        return torch.sigmoid(logits[0, 0].float()).cpu().numpy()

    def step(self, rgb: np.ndarray) -> np.ndarray:
        import torch

        self.index += 1
        self.store.put(self.index, rgb)
        with torch.inference_mode(), self.placement.autocast_context():
            frame_idx, _, logits = next(self._stream)
        if frame_idx != self.index:
            raise RuntimeError(f"sam2 stream out of step: frame {frame_idx}, expected {self.index}")
        outputs = self.state["output_dict_per_obj"][0]["non_cond_frame_outputs"]
        for old in [k for k in outputs if k < self.index - _KEEP_OUTPUTS]:
            del outputs[old]
        return torch.sigmoid(logits[0, 0].float()).cpu().numpy()
