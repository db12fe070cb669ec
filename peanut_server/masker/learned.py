"""Learned parts of the masker: text grounding, crop scoring, video tracking.

Every part loads from a local folder found through the model registry
(`locate`), with `from_pretrained(..., local_files_only=True)` for
transformers models, so the code path is the same for real checkpoints and
for the tiny random models the tests save. Nothing here downloads.

Maskers get their parts through `cached_part`: placed by the device policy
(models/device.py), loaded once into the daemon's model cache
(models/cache.py) and shared by every job and preview; `part_need` declares
the same part's memory for the check at Submit.

    HFGrounder        Grounding DINO / OWLv2 boxes from a sentence
    ClipScorer        CLIP: crop-vs-sentence scores and image features for the CME memory
    HFVideoTracker    SAM 2.1 / EdgeTAM video tracking (transformers), streaming, one frame at a time
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ..errors import BackendUnavailable, ModelError
from ..models.registry import get_spec, locate, missing_reason
from .candidates import Candidate
from .colour import colour_fractions

if TYPE_CHECKING:
    from ..models.cache import ModelNeed
    from ..models.device import Placement

log = logging.getLogger(__name__)
T = TypeVar("T")

# Working memory of one call of each part at the size the masker feeds it, in
# bytes. Estimates from the architectures, not measurements (benchmarks/
# gpu_check.py measures the peaks on a GPU):
#   sam2_video / edgetam_video: a 1024 px frame; Hiera's first stage holds
#     256x256 tokens x 96-144 channels with a 4x MLP (~0.4 GiB), the memory
#     attention 4096 queries against 7 memory frames + pointers (~0.5 GiB when
#     the attention matrix is materialised, as on CPU).
#   sam3_video: a 1008 px frame through a ViT-L-sized encoder plus the
#     detector and the tracker: about twice SAM 2's.
#   grounding_dino / owlv2: an 800-1333 px image through a Swin/ViT backbone
#     and a 6-layer deformable encoder: ~0.5 GiB.
#   clip: a batch of 224 px crops: ~0.1 GiB.
ACTIVATION_BYTES = {
    "sam2_video": 1 << 30,
    "edgetam_video": 1 << 30,
    "sam2_package": 1 << 30,
    "sam3_video": 2 << 30,
    "grounding_dino": 512 << 20,
    "owlv2": 512 << 20,
    "clip": 128 << 20,
}
# The device policy's entry (models/device.py AUTOCAST_SAFE) for each architecture.
POLICY = {
    "sam2_video": "sam2",
    "sam2_package": "sam2",
    "edgetam_video": "edgetam",
    "sam3_video": "sam3",
    "grounding_dino": "grounding-dino",
    "owlv2": "owlv2",
    "clip": "clip",
}


def packages_missing(*names: str) -> list[str]:
    return [n for n in names if importlib.util.find_spec(n) is None]


def model_available(model_id: str) -> tuple[bool, str]:
    """Whether a registered model's files are all on disk (never loads them)."""
    missing = packages_missing("torch", "transformers")
    if missing:
        return False, f"python package(s) missing: {', '.join(missing)}"
    reason = missing_reason(model_id)
    return (not reason), reason


def model_dir(model_id: str) -> Path:
    """The folder that holds a model's config.json (raises BackendUnavailable if absent)."""
    found = locate(model_id)
    if found is None:
        raise BackendUnavailable(f"{model_id}: {missing_reason(model_id)}")
    first = get_spec(model_id).files[0].filename
    return found[first].parent


def _weights_path(model_id: str) -> Path | None:
    """The model's largest file on disk (its weights): the cache key follows it, so a file
    replaced by `peanut models import --overwrite` loads anew."""
    found = locate(model_id)
    if not found:
        return None
    return max(found.values(), key=lambda p: p.stat().st_size)


def _architecture(model_id: str) -> str:
    spec = get_spec(model_id)
    # The sam2 package's entries are named after their checkpoint (sam2.1_hiera_tiny).
    return "sam2_package" if spec.config.get("sam2_config") else spec.architecture


def part_need(model_id: str, device: str | None = None) -> ModelNeed:
    """What one masker part will hold on the job's device: its weights (the files' size on
    disk, fp32 as released) and one call's working memory (ACTIVATION_BYTES)."""
    from ..models.cache import ModelNeed, model_key
    from ..models.device import device_pool, select

    architecture = _architecture(model_id)
    placement = select(POLICY[architecture], device)
    found = locate(model_id) or {}
    return ModelNeed(
        key=model_key(model_id, placement.device, _weights_path(model_id)),
        pool=device_pool(placement.device),
        weight_bytes=sum(p.stat().st_size for p in found.values()),
        activation_bytes=ACTIVATION_BYTES[architecture],
    )


def cached_part(model_id: str, device: str | None, build: Callable[[Placement], T]) -> T:
    """The masker part `model_id` on the job's `device` ("" / None: the daemon's policy),
    from the daemon's model cache: `build(placement)` runs only when it is not loaded yet."""
    from ..models.cache import model_cache
    from ..models.device import select

    placement = select(POLICY[_architecture(model_id)], device)
    need = part_need(model_id, device)
    return model_cache().get_or_load(need.key, lambda: build(placement), reserve={need.pool: need.weight_bytes})


def placement_for(device: str, placement: Placement | None) -> Placement:
    """`placement`, or fp32 on `device` for a part built directly (tests, tools)."""
    from ..models.device import Placement

    return placement or Placement(device, "float32", "given")


def _load(cls: type, path: Path, what: str):
    try:
        return cls.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{what} at {path} does not load: {type(exc).__name__}: {exc}") from exc


def box_candidate(rgb: np.ndarray, box: tuple[float, float, float, float], score: float, label: str) -> Candidate:
    """A detector box as a candidate; colours are read from the box's central part."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, max(x1, x0 + 1)), min(h, max(y1, y0 + 1))
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    # The central half of a box is mostly object; its border is mostly background.
    core = np.zeros_like(mask)
    cx0, cy0 = x0 + (x1 - x0) // 4, y0 + (y1 - y0) // 4
    core[cy0 : max(cy0 + 1, y1 - (y1 - y0) // 4), cx0 : max(cx0 + 1, x1 - (x1 - x0) // 4)] = True
    return Candidate(
        mask=mask,
        bbox=(x0, y0, x1, y1),
        area=int((x1 - x0) * (y1 - y0)),
        centroid=((x0 + x1) / 2, (y0 + y1) / 2),
        colours=colour_fractions(rgb, core),
        det_score=float(score),
        label=label,
    )


class HFGrounder:
    """Open-vocabulary detection through transformers' zero-shot object detection models."""

    def __init__(self, model_id: str, device: str = "cpu", placement: Placement | None = None) -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        path = model_dir(model_id)
        self.model_id = model_id
        self.architecture = get_spec(model_id).architecture
        self.placement = placement_for(device, placement)
        self.device = self.placement.device
        self.processor = _load(AutoProcessor, path, f"{model_id} processor")
        self.model = _load(AutoModelForZeroShotObjectDetection, path, model_id).to(self.device).eval()

    def detect(
        self, rgb: np.ndarray, text: str, box_threshold: float = 0.3, text_threshold: float = 0.25
    ) -> list[Candidate]:
        import torch

        h, w = rgb.shape[:2]
        if self.architecture == "grounding_dino":
            # Grounding DINO expects lower-case phrases, each ending with a period.
            query = text.lower().strip().rstrip(".") + "."
            inputs = self.processor(images=rgb, text=query, return_tensors="pt").to(self.device)
            with torch.no_grad(), self.placement.autocast_context():
                outputs = self.model(**inputs)
            result = self.processor.post_process_grounded_object_detection(
                outputs, inputs.input_ids, threshold=box_threshold, text_threshold=text_threshold, target_sizes=[(h, w)]
            )[0]
        else:
            inputs = self.processor(images=rgb, text=[[text]], return_tensors="pt").to(self.device)
            with torch.no_grad(), self.placement.autocast_context():
                outputs = self.model(**inputs)
            # OWLv2 pads images to a square: boxes are relative to the padded side.
            side = max(h, w)
            result = self.processor.post_process_grounded_object_detection(
                outputs, threshold=box_threshold, target_sizes=[(side, side)]
            )[0]
        labels = result.get("text_labels")
        if labels is None or len(labels) != len(result["scores"]):
            labels = [text] * len(result["scores"])  # OWLv2 gives query indices, not words
        out = []
        for box, score, label in zip(result["boxes"].tolist(), result["scores"].tolist(), labels):
            c = box_candidate(rgb, tuple(box), score, str(label))
            if c.area > 0:
                out.append(c)
        return out


class ClipScorer:
    """CLIP features of crops: similarity to the sentence, and appearance for the CME memory."""

    def __init__(self, model_id: str, device: str = "cpu", placement: Placement | None = None) -> None:
        from transformers import AutoProcessor, CLIPModel

        path = model_dir(model_id)
        self.placement = placement_for(device, placement)
        self.device = self.placement.device
        self.processor = _load(AutoProcessor, path, f"{model_id} processor")
        self.model = _load(CLIPModel, path, model_id).to(self.device).eval()

    @staticmethod
    def crop(rgb: np.ndarray, bbox: tuple[int, int, int, int], mask: np.ndarray | None = None) -> np.ndarray:
        x0, y0, x1, y1 = bbox
        patch = rgb[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].copy()
        if mask is not None:
            # Grey out what is not the object so the crop's background does not vote.
            patch[~mask[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]] = 127
        return patch

    def image_features(self, crops: list[np.ndarray]) -> np.ndarray:
        import torch

        inputs = self.processor(images=crops, return_tensors="pt").to(self.device)
        with torch.no_grad(), self.placement.autocast_context():
            feats = self.model.get_image_features(pixel_values=inputs.pixel_values)
        feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
        feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy()

    def text_scores(self, crops: list[np.ndarray], text: str) -> np.ndarray:
        import torch

        inputs = self.processor(text=[text], return_tensors="pt", padding=True).to(self.device)
        with torch.no_grad(), self.placement.autocast_context():
            tfeat = self.model.get_text_features(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask)
        tfeat = tfeat if isinstance(tfeat, torch.Tensor) else tfeat.pooler_output
        tfeat = torch.nn.functional.normalize(tfeat.float(), dim=-1).cpu().numpy()[0]
        return self.image_features(crops) @ tfeat


class HFVideoTracker:
    """SAM 2.1 or EdgeTAM video propagation (transformers), fed one frame at a time.

    Streaming sessions keep the memory bank on `state_device` (CPU by default) and
    cache the vision features of one frame only, so memory does not grow with
    the clip's pixels. Going backwards is a second session fed frames in reverse.
    """

    def __init__(
        self, model_id: str, device: str = "cpu", state_device: str = "cpu", placement: Placement | None = None
    ) -> None:
        import transformers

        spec = get_spec(model_id)
        names = {"sam2_video": "Sam2Video", "edgetam_video": "EdgeTamVideo"}
        prefix = names.get(spec.architecture)
        if prefix is None:
            raise ModelError(f"{model_id}: {spec.architecture} is not a video tracker")
        model_cls = getattr(transformers, f"{prefix}Model")
        path = model_dir(model_id)
        self.placement = placement_for(device, placement)
        self.device, self.state_device = self.placement.device, state_device
        self.model = _load(model_cls, path, model_id).to(self.device).eval()
        self.processor = self._processor(path, self.model.config)
        self.model_id = model_id

    @staticmethod
    def _processor(path: Path, config):
        """The checkpoint's processor files when present; else built from the model config
        (the processor only resizes to config.image_size and normalises with ImageNet statistics)."""
        from transformers import Sam2ImageProcessor, Sam2VideoProcessor, Sam2VideoVideoProcessor

        if (path / "processor_config.json").is_file() or (path / "preprocessor_config.json").is_file():
            try:
                return Sam2VideoProcessor.from_pretrained(str(path), local_files_only=True)
            except (OSError, ValueError) as exc:
                log.warning("processor files at %s do not load (%s); building one from the config", path, exc)
        size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
        return Sam2VideoProcessor(
            image_processor=Sam2ImageProcessor(
                size={"height": size, "width": size}, mask_size={"height": size // 4, "width": size // 4}
            ),
            video_processor=Sam2VideoVideoProcessor(size={"height": size, "width": size}),
        )

    def start(
        self,
        rgb: np.ndarray,
        box: tuple[float, float, float, float] | None = None,
        mask: np.ndarray | None = None,
        points: list[tuple[float, float, bool]] | None = None,
    ) -> tuple[TrackSession, np.ndarray]:
        """Open a session on this frame with a box, points or a mask; (session, probability map)."""
        import torch

        session = self.processor.init_video_session(
            inference_device=self.device,
            inference_state_device=self.state_device,
            video_storage_device=self.state_device,
            dtype=torch.float32,
        )
        inputs = self.processor(images=rgb, device=self.device, return_tensors="pt")
        size = inputs.original_sizes[0]
        if mask is not None:
            self.processor.add_inputs_to_inference_session(
                session, frame_idx=0, obj_ids=1, input_masks=mask.astype(np.float32), original_size=size
            )
        elif box is not None or points:
            kwargs = {}
            if box is not None:
                kwargs["input_boxes"] = [[list(map(float, box))]]
            if points:
                kwargs["input_points"] = [[[[float(x), float(y)] for x, y, _ in points]]]
                kwargs["input_labels"] = [[[1 if positive else 0 for *_, positive in points]]]
            self.processor.add_inputs_to_inference_session(
                session, frame_idx=0, obj_ids=1, original_size=size, **kwargs
            )
        else:
            raise ValueError("a tracking session needs a box, points or a mask")
        track = TrackSession(self, session)
        return track, track.run(inputs)


_KEEP_FRAMES = 24  # > the 16 object pointers and 7 memory frames SAM 2 looks back on


def prune_session(session, keep: int = _KEEP_FRAMES) -> None:
    """Bound a streaming session's memory: old frames and old per-frame outputs go.

    transformers numbers a streamed frame by the count of frames stored, so old
    frames are replaced by an empty tensor rather than deleted.
    """
    import torch

    frames = getattr(session, "processed_frames", None)
    if frames:
        newest = max(frames)
        for k in [k for k, v in frames.items() if k < newest - 2 and v.numel()]:
            frames[k] = torch.empty(0)
    for per_obj in getattr(session, "output_dict_per_obj", {}).values():
        outputs = per_obj.get("non_cond_frame_outputs") if isinstance(per_obj, dict) else None
        if outputs:
            newest = max(outputs)
            for k in [k for k in outputs if k < newest - keep]:
                del outputs[k]


class TrackSession:
    """One pass of the tracker over a stream of frames (forwards or backwards)."""

    def __init__(self, tracker: HFVideoTracker, session) -> None:
        self.tracker = tracker
        self.session = session

    def step(self, rgb: np.ndarray) -> np.ndarray:
        return self.run(self.tracker.processor(images=rgb, device=self.tracker.device, return_tensors="pt"))

    def run(self, inputs) -> np.ndarray:
        import torch

        with torch.no_grad(), self.tracker.placement.autocast_context():
            out = self.tracker.model(inference_session=self.session, frame=inputs.pixel_values[0])
        prune_session(self.session)
        logits = self.tracker.processor.post_process_masks(
            [out.pred_masks.float()], original_sizes=inputs.original_sizes, binarize=False
        )[0]
        return torch.sigmoid(logits[0, 0].float()).cpu().numpy()
