"""GPU check: every learned backend with random weights at real sizes, in fp32 and half precision.

    python -m benchmarks.gpu_check [--device auto|cuda|cuda:N] [--out gpu_check.json] [--only sam2,raft]
    python -m benchmarks.gpu_check --tiny --device cpu [--out tiny.json]

For each backend the random weights are written in the released checkpoint
format (transformers folders, the sam2 package's .pt, torchvision's RAFT,
LaMa's and BasicVSR++'s .pth) into a temporary models directory and loaded
back through the registry and the backend's own loader, then run where the
device policy (models/device.py) puts it: once in fp32 and once under
autocast in half precision. One row per backend, size and precision:

  s/frame     wall time per frame (per image for LaMa and Grounding DINO),
              loading excluded, after one warm-up call;
  peak MiB    torch.cuda.max_memory_allocated on a GPU; on a CPU the peak
              RSS of the process (sampled with psutil every 5 ms);
  max diff    the largest absolute difference from the fp32 output: mask
              probabilities (SAM 2/SAM 3), sigmoid scores and box
              coordinates (Grounding DINO), flow in pixels (RAFT), pixel
              values 0-255 (LaMa, BasicVSR++);
  policy      whether `auto` uses that precision on this device.

Half precision is the policy's dtype where AUTOCAST_SAFE lists one (BasicVSR++
fp16; SAM 2, SAM 3 bf16), otherwise bf16 (fp16 on GPUs before compute
capability 8): measured so the policy's table can be extended from numbers.
On a CPU the policy allows fp32 only; --tiny on a CPU still runs a bf16 pass
(CPU autocast) on the maskers and the grounder so that the comparison code is
exercised by the test suite (tests/test_gpu_check.py), and its rows say so.

Real sizes: SAM 2.1 hiera-tiny and hiera-base-plus video at 1024 px, through
transformers' Sam2VideoModel and the sam2 package; SAM 3 (when transformers
has Sam3VideoModel) at 1008 px; Grounding DINO (swin-tiny) at 800x1333; RAFT
small and large at 432x240 and 1920x1080; LaMa at 512x512; BasicVSR++ on
432x768 -> 1728x3072 and 540x960 -> 2160x3840 crops. Budget: under 8 minutes
in total on one H200 (most of it writing and reading SAM 3's 3.4 GB of random
weights and building the models): an estimate, not run yet on a GPU (the
machine this was written on had none). `--tiny` runs tiny configs of the same
architectures on the CPU: about 75 s of CPU time, under 3 minutes wall time on
a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tests.tiny_models import (  # shared with the tests
    SAM2_PACKAGE_TINY,
    byte_clip_tokenizer,
    save_basicvsrpp_checkpoint,
    tiny_grounding_dino_config,
    tiny_sam2_config,
    tiny_sam3,
)

MIB = 1024 * 1024
CHECK_ONLY = "gpu_check --tiny on a CPU"
# The backends whose CPU bf16 pass exercises the comparison in --tiny. Not RAFT or LaMa (seconds
# a call in CPU bf16 even at 64 px: a minute of the test suite), nor BasicVSR++ (its deformable
# convolution has no CPU bf16 kernel).
CPU_CHECK_POLICIES = ("sam2", "sam3", "grounding-dino")


@dataclass
class Row:
    backend: str
    size: str  # what one frame is, e.g. "1024 px video", "432x240"
    precision: str  # "fp32", "fp16", "bf16"
    device: str
    policy: bool  # `auto` runs this precision on this device
    check_only: bool = False  # a precision PEANUT never runs (CPU bf16 in --tiny): its failure is not the check's
    frames: int = 0
    s_per_frame: float | None = None
    peak_mib: float | None = None
    max_diff: float | None = None  # vs this backend's fp32 row
    diff_unit: str = ""
    note: str = ""
    error: str = ""


@dataclass
class Case:
    """One backend at one size: `save` writes random weights into the models dir once;
    `prepare(placement)` loads them on the placement, runs one warm-up call and returns the
    timed call, which gives (frames done, output array)."""

    backend: str
    size: str
    policy_name: str  # the device policy's entry (models/device.py)
    save: Callable[[Path], None]
    prepare: Callable[[object], Callable[[], tuple[int, np.ndarray]]]
    diff_unit: str
    group: str  # for --only
    notes: list[str] = field(default_factory=list)


# -- memory ---------------------------------------------------------------------------------


class PeakMemory:
    """Peak GPU memory allocated by torch, or the process's peak RSS on the CPU (psutil sampling)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        import torch

        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            import psutil

            process = psutil.Process()
            self.peak = process.memory_info().rss

            def sample() -> None:
                while not self._stop.wait(0.005):
                    self.peak = max(self.peak, process.memory_info().rss)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            import psutil

            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, psutil.Process().memory_info().rss)


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


# -- inputs ---------------------------------------------------------------------------------


def moving_clip(count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """A textured disc crossing a textured background: something for a tracker to follow."""
    from tests.synthetic import MovingObject, composite_clip

    rng = np.random.default_rng(seed)
    background = rng.integers(40, 215, (height, width, 3), dtype=np.uint8)
    radius = max(4, min(height, width) // 8)
    disc = MovingObject(
        (220, 60, 40), (width // 4, height // 2), (3 * width // 4, height // 2), radius=radius, seed=seed + 1
    )
    frames, _ = composite_clip(background, [disc], count, (width, height))
    return [np.ascontiguousarray(f) for f in frames]


def disc_box(height: int, width: int) -> tuple[float, float, float, float]:
    radius = max(4, min(height, width) // 8)
    cx, cy = width // 4, height // 2
    return (cx - radius - 2, cy - radius - 2, cx + radius + 2, cy + radius + 2)


# -- configs (real and tiny) ----------------------------------------------------------------


def sam2_hf_config(size: str, tiny: bool):
    """transformers' Sam2VideoConfig for SAM 2.1 hiera-tiny / base-plus (the released sizes),
    or a tiny Hiera with the same structure."""
    import transformers

    if tiny:
        return tiny_sam2_config()
    if size == "tiny":  # transformers' defaults are hiera-tiny's
        return transformers.Sam2VideoConfig()
    # hiera-base-plus: embed 112, 2 heads, blocks (2, 3, 16, 3), global attention at 12, 16, 20.
    return transformers.Sam2VideoConfig(
        vision_config=dict(
            model_type="sam2_vision_model",
            backbone_config=dict(
                model_type="sam2_hiera_det_model",
                hidden_size=112,
                num_attention_heads=2,
                blocks_per_stage=[2, 3, 16, 3],
                embed_dim_per_stage=[112, 224, 448, 896],
                num_attention_heads_per_stage=[2, 4, 8, 16],
                global_attention_blocks=[12, 16, 20],
                window_positional_embedding_background_size=[14, 14],
            ),
            backbone_channel_list=[896, 448, 224, 112],
        )
    )


def sam2_with_an_object(state: dict) -> dict:
    """Random SAM 2 weights that see an object and draw masks with structure.

    As initialised, the object-score head says "no object" and both precisions
    output empty masks, which would compare trivially; a large bias on that head
    and sharper mask logits (x50 on the hypernetworks' last layers) give masks
    that change with the frame and the prompt. Key names of both formats: the
    sam2 package's (`layers.2`) and transformers' (`proj_out`)."""
    import re

    state = dict(state)
    for key in list(state):
        if re.match(r"(sam_)?mask_decoder\.pred_obj_score_head\.(layers\.2|proj_out)\.bias$", key):
            state[key] = state[key] + 10.0
        elif re.match(r"(sam_)?mask_decoder\.output_hypernetworks_mlps\.\d+\.(layers\.2|proj_out)\.", key):
            state[key] = state[key] * 50
    return state


def sam3_model_and_processor(tiny: bool):
    import transformers

    if tiny:
        # The random detector's scores sit near 0.5: a zero threshold gives the tracker its one query.
        return tiny_sam3(detect_threshold=0.0, queries=1)
    tok, _ = byte_clip_tokenizer()
    side = 1008
    # The released SAM 3 sizes are transformers' defaults; thresholds as released.
    # At most 8 instances tracked: a random detector finds "objects" everywhere, and the
    # tracker's cost grows with their count (the check times the model, not a crowd).
    config = transformers.Sam3VideoConfig(max_num_objects=8)
    processor = transformers.Sam3VideoProcessor(
        image_processor=transformers.Sam3ImageProcessor(size={"height": side, "width": side}),
        video_processor=transformers.Sam2VideoVideoProcessor(size={"height": side, "width": side}),
        tokenizer=tok,
    )
    return transformers.Sam3VideoModel(config).eval(), processor


def grounding_dino_parts(tiny: bool, folder: Path):
    import transformers

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "the", "red", "ball", "car", "person", "on", "left"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    if tiny:
        config = tiny_grounding_dino_config(vocab_size=len(words))
        size = {"shortest_edge": 64, "longest_edge": 96}
    else:
        # transformers' defaults are grounding-dino-tiny's (Swin-T, BERT-base text encoder).
        config = transformers.GroundingDinoConfig()
        size = {"shortest_edge": 800, "longest_edge": 1333}
    processor = transformers.GroundingDinoProcessor(
        image_processor=transformers.GroundingDinoImageProcessor(size=size), tokenizer=tokenizer
    )
    return transformers.GroundingDinoForObjectDetection(config).eval(), processor


# -- cases ----------------------------------------------------------------------------------


def save_hf(folder: Path, model, processor=None) -> None:
    model.save_pretrained(folder)
    if processor is not None:
        processor.save_pretrained(folder)
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is not None:
            image_processor.save_pretrained(folder)


def track(tracker, frames: list[np.ndarray], box) -> np.ndarray:
    session, first = tracker.start(frames[0], box=box)
    return np.stack([first] + [session.step(f) for f in frames[1:]])


def build_cases(tiny: bool, device: str = "cpu") -> list[Case]:
    """The cases; random models are initialised on `device` (hundreds of millions of
    parameters initialise in seconds on a GPU, minutes on a CPU), then saved to disk."""
    import torch

    cases: list[Case] = []
    video_hw = (64, 96) if tiny else (576, 1024)  # the masker feeds frames with their longer side at 1024
    video_frames = 3 if tiny else 12
    clip = moving_clip(video_frames, *video_hw)
    box = disc_box(*video_hw)

    # SAM 2.1 through transformers (Sam2VideoModel), as HFVideoTracker runs it.
    for size in ("tiny", "base-plus"):
        model_id = f"hf-sam2.1-hiera-{size}"

        def save(root: Path, size=size, model_id=model_id) -> None:
            torch.manual_seed(0)
            with torch.device(device):
                model = __import__("transformers").Sam2VideoModel(sam2_hf_config(size, tiny))
            with torch.no_grad():
                model.load_state_dict(sam2_with_an_object(model.state_dict()))
            save_hf(root / model_id, model)

        def prepare(placement, model_id=model_id):
            from peanut_server.masker.learned import HFVideoTracker

            tracker = HFVideoTracker(model_id, placement=placement)
            track(tracker, clip[:2], box)  # warm-up
            synchronize(placement.device)
            return lambda: (len(clip), track(tracker, clip, box))

        cases.append(
            Case(f"sam2-transformers {size}", f"{video_hw[1]} px video", "sam2", save, prepare, "probability", "sam2")
        )

    # SAM 2.1 through the sam2 package (official config, .pt checkpoint).
    from peanut_server.masker.learned import packages_missing

    if not packages_missing("sam2"):
        for size in ("tiny", "base-plus"):
            model_id = f"sam2.1-hiera-{size}"

            def save(root: Path, model_id=model_id) -> None:
                from sam2.build_sam import build_sam2_video_predictor

                from peanut_server.models.registry import get_spec

                spec = get_spec(model_id)
                torch.manual_seed(0)
                overrides = list(SAM2_PACKAGE_TINY) if tiny else []
                net = build_sam2_video_predictor(
                    spec.config["sam2_config"], None, device="cpu", hydra_overrides_extra=overrides
                )
                (root / model_id).mkdir(parents=True, exist_ok=True)
                state = sam2_with_an_object(net.state_dict())
                torch.save({"model": state}, root / model_id / spec.files[0].filename)

            def prepare(placement, model_id=model_id):
                from peanut_server.masker.sam2.tracker import Sam2PackageTracker

                tracker = Sam2PackageTracker(
                    model_id, placement=placement, hydra_overrides=SAM2_PACKAGE_TINY if tiny else ()
                )
                track(tracker, clip[:2], box)
                synchronize(placement.device)
                return lambda: (len(clip), track(tracker, clip, box))

            cases.append(
                Case(f"sam2-package {size}", f"{video_hw[1]} px video", "sam2", save, prepare, "probability", "sam2")
            )

    # SAM 3 (transformers), when this transformers has it.
    from peanut_server.models.capabilities import transformers_reason

    if not transformers_reason("sam3"):

        def save_sam3(root: Path) -> None:
            torch.manual_seed(0)
            with torch.device(device):
                model, processor = sam3_model_and_processor(tiny)
            save_hf(root / "sam3", model, processor)

        def prepare_sam3(placement):
            from peanut_server.masker.sam3.masker import Sam3Masker, Sam3Parts
            from tests.synthetic import ArraySource

            masker = Sam3Masker()
            masker._parts = Sam3Parts("sam3", placement=placement)
            source = ArraySource(clip)

            def union() -> np.ndarray:
                maps = []
                for _, rgb, found in masker._stream(source, 0, len(clip), "the red ball"):
                    probs = [p for _, p in found.values()]
                    maps.append(np.max(probs, axis=0) if probs else np.zeros(rgb.shape[:2], np.float32))
                return np.stack(maps)

            list(masker._stream(ArraySource(clip[:2]), 0, 2, "the red ball"))  # warm-up
            synchronize(placement.device)
            return lambda: (len(clip), union())

        cases.append(
            Case(
                "sam3",
                f"{1008 if not tiny else 112} px video",
                "sam3",
                save_sam3,
                prepare_sam3,
                "probability",
                "sam3",
                notes=[] if tiny else ["at most 8 instances tracked"],
            )
        )

    # Grounding DINO (transformers), as HFGrounder.detect runs it.
    image_hw = (64, 96) if tiny else (1080, 1920)
    images = moving_clip(1 if tiny else 4, *image_hw, seed=3)

    def save_gd(root: Path) -> None:
        folder = root / "grounding-dino-tiny"
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        with torch.device(device):
            model, processor = grounding_dino_parts(tiny, folder)
        save_hf(folder, model, processor)

    def prepare_gd(placement):
        from peanut_server.masker.learned import HFGrounder

        grounder = HFGrounder("grounding-dino-tiny", placement=placement)

        def detect(rgb: np.ndarray) -> np.ndarray:
            inputs = grounder.processor(images=rgb, text="the red ball.", return_tensors="pt").to(grounder.device)
            with torch.no_grad(), placement.autocast_context():
                out = grounder.model(**inputs)
            grounder.detect(rgb, "the red ball", box_threshold=0.0, text_threshold=0.0)  # the full post-processing
            return torch.cat([out.logits.float().sigmoid().flatten(), out.pred_boxes.float().flatten()]).cpu().numpy()

        detect(images[0])
        synchronize(placement.device)
        return lambda: (len(images), np.stack([detect(rgb) for rgb in images]))

    side = "800x1333" if not tiny else "64x96"
    cases.append(
        Case("grounding-dino tiny", f"{side} image", "grounding-dino", save_gd, prepare_gd, "score/box", "gdino")
    )

    # RAFT (torchvision), small and large, at the eraser's working size and at 1080p.
    # Tiny: one pair (both directions), as a CPU bf16 pass takes seconds a call (at 64x64 as at
    # 128x128): with the warm-up, 3 calls instead of 5, about 25 s less of the test suite.
    flow_sizes = [((128, 128), "128x128")] if tiny else [((240, 432), "432x240"), ((1080, 1920), "1920x1080")]
    for variant in ("raft_small",) if tiny else ("raft_small", "raft_large"):
        for (h, w), label in flow_sizes:
            flow_frames = np.stack(moving_clip(2 if tiny else 5, h, w, seed=5))

            def save_raft(root: Path, variant=variant) -> None:
                from peanut_server.flow.models import RAFT_IDS
                from peanut_server.flow.raft import build_raft
                from peanut_server.models.registry import get_spec

                spec = get_spec(RAFT_IDS[variant])
                (root / spec.id).mkdir(parents=True, exist_ok=True)
                torch.manual_seed(0)
                torch.save(build_raft(variant).state_dict(), root / spec.id / spec.files[0].filename)

            def prepare_raft(placement, variant=variant, flow_frames=flow_frames):
                from peanut_server.flow.models import RAFT_IDS
                from peanut_server.flow.raft import RaftFlow, load_raft_file
                from peanut_server.models.registry import locate

                path = next(iter(locate(RAFT_IDS[variant]).values()))
                raft = RaftFlow(load_raft_file(variant, path), placement=placement)
                raft.pair(flow_frames[0], flow_frames[1])
                synchronize(placement.device)
                return lambda: (len(flow_frames) - 1, np.concatenate(raft.window(flow_frames)))

            cases.append(Case(variant.replace("_", "-"), label, "raft", save_raft, prepare_raft, "px", "raft"))

    # LaMa (spandrel) at 512 px.
    lama_side = 64 if tiny else 512
    lama_images = moving_clip(1 if tiny else 4, lama_side, lama_side, seed=7)
    hole = np.zeros((lama_side, lama_side), bool)
    hole[lama_side // 4 : lama_side // 2, lama_side // 3 : 2 * lama_side // 3] = True

    def save_lama(root: Path) -> None:
        from spandrel.architectures.LaMa import LaMa

        from peanut_server.eraser.models import LAMA

        torch.manual_seed(0)
        state = LaMa(in_nc=4, out_nc=3).state_dict()
        official = {k.replace("model.model", "generator.model", 1): v for k, v in state.items()}
        (root / LAMA.id).mkdir(parents=True, exist_ok=True)
        torch.save(official, root / LAMA.id / LAMA.files[0].filename)

    def prepare_lama(placement):
        from peanut_server.eraser.lama import LamaInpainter
        from peanut_server.eraser.models import LAMA_ID
        from peanut_server.models.registry import locate

        lama = LamaInpainter.from_file(next(iter(locate(LAMA_ID).values())), placement=placement)
        lama.fill(lama_images[0], hole)
        synchronize(placement.device)
        return lambda: (len(lama_images), np.stack([lama.fill(img, hole).astype(np.float32) for img in lama_images]))

    cases.append(Case("lama", f"{lama_side}x{lama_side}", "lama", save_lama, prepare_lama, "0-255", "lama"))

    # BasicVSR++ on crops the pipeline hands it: 432 -> 1728 and 540 -> 2160 lines.
    crops = (
        [((24, 40), "24x40 -> 96x160")] if tiny else [((432, 768), "432x768 -> 1728"), ((540, 960), "540x960 -> 2160")]
    )
    vsr_frames = 3 if tiny else 8
    for (h, w), label in crops:
        lq = np.stack(moving_clip(vsr_frames, h, w, seed=9))

        def save_vsr(root: Path) -> None:
            from peanut_server.upscaler.basicvsrpp.network import BasicVSRPPConfig

            torch.manual_seed(0)
            save_basicvsrpp_checkpoint(root, None if tiny else BasicVSRPPConfig())

        def prepare_vsr(placement, lq=lq):
            from peanut_server.upscaler.basicvsrpp.backend import find_weights
            from peanut_server.upscaler.basicvsrpp.loader import load_checkpoint
            from peanut_server.upscaler.basicvsrpp.runner import choose_settings, iter_upscaled

            net = load_checkpoint(find_weights()[1]).to(placement.device)
            settings = choose_settings(
                lq.shape[1], lq.shape[2], net.mid_channels, torch.device(placement.device), dtype=placement.dtype
            )
            list(iter_upscaled(net, lq[:2], None, settings))
            synchronize(placement.device)
            return lambda: (len(lq), np.concatenate([chunk for _, chunk in iter_upscaled(net, lq, None, settings)]))

        cases.append(Case("basicvsrpp", label, "basicvsrpp", save_vsr, prepare_vsr, "0-255", "basicvsrpp"))
    return cases


# -- the run --------------------------------------------------------------------------------


def precisions(policy_name: str, device: str, tiny: bool) -> list[tuple[object, bool, str]]:
    """(placement, used by `auto`, note) for fp32 and the half precision measured on `device`."""
    from peanut_server.models.device import AUTOCAST_SAFE, Placement, select

    auto = select(policy_name, device)
    fp32 = select(policy_name, device, "fp32")
    out = [(fp32, auto.dtype == "float32", "")]
    device_type = fp32.device_type
    if device_type == "cuda":
        listed = AUTOCAST_SAFE.get(policy_name, {}).get("cuda")
        short = {"float16": "fp16", "bfloat16": "bf16"}.get(listed or "", "")
        if not short:
            import torch

            short = "bf16" if torch.cuda.get_device_capability(int(fp32.device.split(":")[1]))[0] >= 8 else "fp16"
        half = select(policy_name, device, short)
        out.append((half, auto.dtype == half.dtype, "" if auto.dtype == half.dtype else "measured; auto runs fp32"))
    elif tiny and device_type == "cpu" and policy_name in CPU_CHECK_POLICIES:
        # Not a precision PEANUT runs on a CPU: exercises the comparison code in the test suite.
        out.append((Placement(fp32.device, "bfloat16", CHECK_ONLY), False, "CPU bf16: exercises the check only"))
    return out


def run_case(case: Case, device: str, tiny: bool) -> list[Row]:
    import torch

    rows: list[Row] = []
    reference: np.ndarray | None = None
    for placement, used, note in precisions(case.policy_name, device, tiny):
        row = Row(case.backend, case.size, placement.precision, placement.device, used, diff_unit=case.diff_unit)
        row.check_only = placement.reason == CHECK_ONLY
        row.note = "; ".join([*case.notes, note] if note else case.notes)
        try:
            # The peak covers loading and the warm-up too (the weights are part of it); the time does not.
            with PeakMemory(placement.device) as peak:
                timed = case.prepare(placement)
                synchronize(placement.device)
                started = time.perf_counter()
                frames, output = timed()
                synchronize(placement.device)
                seconds = time.perf_counter() - started
            row.frames, row.s_per_frame, row.peak_mib = frames, seconds / max(frames, 1), peak.peak / MIB
            output = np.asarray(output, np.float32)
            if not np.isfinite(output).all():
                # Half precision overflowing shows here; the row says so instead of a NaN.
                row.error = f"{int((~np.isfinite(output)).sum())} non-finite output values"
            elif reference is None:
                reference = output
                row.max_diff = 0.0
            elif output.shape == reference.shape:
                row.max_diff = float(np.max(np.abs(output - reference))) if output.size else 0.0
            else:
                row.error = f"output shape {output.shape} differs from fp32's {reference.shape}"
        except Exception as exc:  # noqa: BLE001 - one backend failing must not hide the others' numbers
            row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        rows.append(row)
    return rows


def table(rows: list[Row]) -> str:
    head = (
        f"{'backend':28s} {'size':22s} {'prec':5s} {'auto':4s} {'s/frame':>9s} {'peak MiB':>9s} {'max diff':>10s}  unit"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.error:
            lines.append(
                f"{r.backend:28s} {r.size:22s} {r.precision:5s} {'yes' if r.policy else 'no':4s} ERROR {r.error}"
            )
            continue
        diff = "-" if r.max_diff is None else f"{r.max_diff:.3g}"
        lines.append(
            f"{r.backend:28s} {r.size:22s} {r.precision:5s} {'yes' if r.policy else 'no':4s} "
            f"{r.s_per_frame:9.4f} {r.peak_mib:9.0f} {diff:>10s}  {r.diff_unit}" + (f"  ({r.note})" if r.note else "")
        )
    return "\n".join(lines)


@contextlib.contextmanager
def random_models_dir() -> Iterator[Path]:
    """A temporary models directory the registry looks in first; nothing is read from the network."""
    saved = {k: os.environ.get(k) for k in ("PEANUT_MODELS_DIR", "HF_HUB_OFFLINE")}
    with tempfile.TemporaryDirectory(prefix="peanut-gpu-check-") as tmp:
        os.environ.update(PEANUT_MODELS_DIR=tmp, HF_HUB_OFFLINE="1")
        try:
            yield Path(tmp)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    parser.add_argument("--tiny", action="store_true", help="tiny configs of the same architectures (CPU, seconds)")
    parser.add_argument("--out", default="gpu_check.json", help="the table as JSON (default gpu_check.json)")
    parser.add_argument("--only", default="", help="comma-separated groups: sam2,sam3,gdino,raft,lama,basicvsrpp")
    args = parser.parse_args(argv)
    # No progress bars from the sam2 package, huggingface_hub or transformers: one table.
    for key in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(key, "1")

    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()

    from peanut_server.models.device import resolve_device

    device = resolve_device(args.device)
    only = {g.strip() for g in args.only.split(",") if g.strip()}
    started = time.perf_counter()
    rows: list[Row] = []
    with random_models_dir() as root:
        for case in build_cases(args.tiny, device):
            if only and case.group not in only:
                continue
            clock = time.perf_counter()
            try:
                case.save(root)
            except Exception as exc:  # noqa: BLE001
                rows.append(Row(case.backend, case.size, "fp32", device, True, error=f"saving: {exc}"))
                continue
            rows.extend(run_case(case, device, args.tiny))
            print(f"  {case.backend} {case.size}: {time.perf_counter() - clock:.1f} s", file=sys.stderr, flush=True)
    total = time.perf_counter() - started
    name = torch.cuda.get_device_name(int(device.split(":")[1])) if device.startswith("cuda") else device
    print(f"gpu_check on {device} ({name}), {'tiny configs' if args.tiny else 'real sizes'}, random weights")
    print(table(rows))
    print(f"total {total:.0f} s")
    report = dict(
        device=device,
        device_name=name,
        tiny=args.tiny,
        torch=torch.__version__,
        total_seconds=total,
        rows=[asdict(r) for r in rows],
    )
    Path(args.out).write_text(json.dumps(report, indent=1, allow_nan=False))
    return 1 if any(r.error and not r.check_only for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
