"""The overlapped (streaming) erase pass against the sequential one: same files, cancel, resume, bounded memory.

Pipeline(streaming=True) runs decode, erase, upscale + composite and writing in
threads joined by bounded queues; Pipeline(streaming=False) runs the same steps
one after another. The output must not depend on which ran.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from peanut_server.api import peanut_pb2 as pb
from peanut_server.eraser.telea import TeleaEraser
from peanut_server.errors import JobCancelled, JobInterrupted, MaskError
from peanut_server.pipeline import Pipeline, spec_from_request, staging_path
from peanut_server.pipeline import run as run_module
from peanut_server.progress import Reporter
from tests.clips import make_object_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory, shared_data: Path):
    """36 frames of a striped disc over a real image, 192x128, as a PNG folder and as a lossless .mkv."""
    root = tmp_path_factory.mktemp("streaming")
    made = make_object_clip(
        root / "clip", shared_data / "davis" / "bmx-trees" / "00000.jpg", n_frames=36, size=(192, 128), radius=14
    )
    video = root / "clip.mkv"
    with av.open(str(video), "w") as out:
        stream = out.add_stream("ffv1", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 192, 128, "bgr0"
        for path in sorted(made.frames.iterdir()):
            rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return made, video


def request(source: Path, masks: Path, output: Path, **options) -> pb.SubmitRequest:
    return pb.SubmitRequest(
        source=pb.MediaRange(path=str(source)),
        mask=pb.MaskSpec(mask_path=str(masks)),
        options=pb.Options(**options),
        output=pb.OutputSpec(path=str(output)),
    )


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("peanut-stage")]


@pytest.mark.parametrize(
    "case",
    [
        # flow-guided eraser at the source size, 8-frame windows overlapping by 2
        dict(source="folder", options=dict(subvideo_length=8, working_height=0)),
        # working at 64 lines: Lanczos back to 128, crops, patch layer with alpha (Telea: at this size the
        # flow-guided eraser's fill depends on OpenCV's per-thread RNG state, whichever mode runs it)
        dict(
            source="folder",
            options=dict(subvideo_length=10, working_height=64, upscaler="lanczos", eraser="telea"),
            patch=True,
        ),
        # a video file whose frames are not kept: the compositor decodes them again with its own decoder
        dict(
            source="video",
            options=dict(subvideo_length=8, eraser="telea", working_height=64, upscaler="lanczos"),
            keep_nothing=True,
        ),
    ],
    ids=["flowguided-source-size", "lanczos-patch-layer", "video-decoded-twice"],
)
def test_streaming_output_is_identical_to_sequential(tmp_path, clip, case, monkeypatch):
    made, video = clip
    source = video if case["source"] == "video" else made.frames
    if case.get("keep_nothing"):
        monkeypatch.setattr(run_module, "KEEP_SOURCE_BYTES", 0)
    outputs = {}
    for streaming in (False, True):
        out = tmp_path / f"out_{streaming}"
        req = request(source, made.masks, out, **case["options"])
        req.output.patch_layer = case.get("patch", False)
        result = Pipeline(streaming=streaming).run(spec_from_request(req), Reporter())
        assert result.frame_count == 36
        outputs[streaming] = files(out)
    assert len(outputs[True]) == 36
    assert outputs[True] == outputs[False]
    # The job touched the disc: frames differ from the source inside the mask.
    first = cv2.imread(str(tmp_path / "out_True" / "frame_000000.png"), cv2.IMREAD_UNCHANGED)[..., :3]
    assert not np.array_equal(first, cv2.imread(str(made.frames / "frame_000000.png")))
    assert stage_threads() == []


@dataclass
class StopAt(Reporter):
    """Cancels (or interrupts) the job once `at` frames of `stage` (the erase pass) are on disk."""

    at: int = 0
    interrupt: bool = False
    stage_name: str = "erasing"

    def advance(self, n: int = 1, *, outer: bool = False) -> None:
        # Only the pipeline's own counts (outer) are frames on disk; a backend's inner count is not.
        if outer and self.state.stage == self.stage_name and self.state.done + n >= self.at:
            (self.interrupt_event if self.interrupt else self.cancel_event).set()
        super().advance(n, outer=outer)


def test_cancel_stops_every_stage_and_leaves_nothing(tmp_path, clip):
    made, _ = clip
    out = tmp_path / "out"
    reporter = StopAt(at=5)
    with pytest.raises(JobCancelled):
        Pipeline(streaming=True).run(
            spec_from_request(request(made.frames, made.masks, out, subvideo_length=6, eraser="telea")),
            reporter,
            job_id="j1",
        )
    assert reporter.state.done == 5
    assert stage_threads() == []
    assert not out.exists()
    assert not Path(staging_path(str(out), "j1")).exists()


def test_failure_in_one_stage_is_the_one_reported(tmp_path, clip, monkeypatch):
    made, _ = clip

    class Broken(RuntimeError):
        pass

    def fail(*args, **kwargs):
        raise Broken("upscaler broke")

    monkeypatch.setattr(Pipeline, "_upscale_window", staticmethod(fail))
    out = tmp_path / "out"
    with pytest.raises(Broken):
        Pipeline(streaming=True).run(
            spec_from_request(request(made.frames, made.masks, out, subvideo_length=6, eraser="telea")),
            Reporter(),
            job_id="j2",
        )
    assert stage_threads() == []
    assert not Path(staging_path(str(out), "j2")).exists()


def test_interrupted_streaming_job_resumes_like_the_sequential_one(tmp_path, clip):
    """Interrupted after 13 frames, each mode keeps exactly those and resumes from them to the same files."""
    made, _ = clip
    outputs = {}
    for streaming in (False, True):
        out = tmp_path / f"out_{streaming}"
        spec = spec_from_request(
            request(
                made.frames, made.masks, out, subvideo_length=8, working_height=64, upscaler="lanczos", eraser="telea"
            )
        )
        with pytest.raises(JobInterrupted):
            Pipeline(streaming=streaming).run(spec, StopAt(at=13, interrupt=True), job_id="j3")
        staged = Path(staging_path(str(out), "j3"))
        assert len([p for p in staged.iterdir() if not p.name.startswith(".")]) == 13
        stamps = {p.name: p.stat().st_mtime_ns for p in staged.iterdir()}
        states = []
        Pipeline(streaming=streaming).run(spec, Reporter(callback=states.append), job_id="j3")
        erasing = [state.done for state in states if state.stage == "erasing"]
        assert erasing[0] == 13 and erasing[-1] == 36, erasing
        outputs[streaming] = files(out)
        assert {name: (out / name).stat().st_mtime_ns for name in stamps} == stamps, "finished frames kept"
    assert outputs[True] == outputs[False]
    assert stage_threads() == []


class WatchingPipeline(Pipeline):
    """Records which windows are alive (decoded or being erased/composited) each time one is decoded."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alive: list[tuple[int, weakref.ref]] = []  # (window's first new frame, its decoded or assembled form)
        self.peak = 0
        self.decoded: list[int] = []
        self.lock = threading.Lock()

    def _decode_window(self, *args, **kwargs):
        decoded = Pipeline._decode_window(*args, **kwargs)
        with self.lock:
            self.alive.append((decoded.bounds.pos, weakref.ref(decoded)))
            self.decoded.append(decoded.bounds.pos)
            self.peak = max(self.peak, len({pos for pos, ref in self.alive if ref() is not None}))
        return decoded

    def _assemble_window(self, plan, decoded, tail, reporter):
        window = Pipeline._assemble_window(plan, decoded, tail, reporter)
        with self.lock:
            self.alive.append((window.pos, weakref.ref(window)))
        return window


def test_windows_in_flight_stay_bounded_on_a_long_clip(tmp_path, clip):
    """18 windows of 2 new frames: never more than WINDOWS_IN_FLIGHT of them held at once."""
    made, _ = clip
    pipeline = WatchingPipeline(streaming=True)
    spec = spec_from_request(request(made.frames, made.masks, tmp_path / "out", subvideo_length=2, eraser="telea"))
    spec.options.window_overlap = 0
    pipeline.run(spec, Reporter())
    assert len(pipeline.decoded) == 18
    assert pipeline.peak <= run_module.WINDOWS_IN_FLIGHT


class WaitingEraser(TeleaEraser):
    """Telea, but each window but the last waits (up to 30 s) for the next window to be decoded first."""

    def __init__(self, decoded: list[int], windows: int) -> None:
        super().__init__()
        self.decoded = decoded
        self.windows = windows
        self.overlapped: list[bool] = []

    def erase(self, frames, masks, options, reporter):
        if len(self.overlapped) + 1 < self.windows:
            mine = len(self.overlapped) + 1  # windows decoded up to this one
            for _ in range(3000):
                if len(self.decoded) > mine:
                    break
                threading.Event().wait(0.01)
            self.overlapped.append(len(self.decoded) > mine)
        else:
            self.overlapped.append(True)
        return super().erase(frames, masks, options, reporter)


def test_next_window_is_decoded_while_the_eraser_works(tmp_path, clip):
    made, _ = clip
    pipeline = WatchingPipeline(streaming=True)
    # 36 frames in windows of 12 overlapping by 3: new frames 0-11, 12-20, 21-29, 30-35.
    eraser = WaitingEraser(pipeline.decoded, windows=4)
    pipeline._instances[("eraser", TeleaEraser.name)] = eraser
    spec = spec_from_request(request(made.frames, made.masks, tmp_path / "out", subvideo_length=12, eraser="telea"))
    pipeline.run(spec, Reporter())
    # Every window but the last saw the next one decoded while it was being erased.
    assert pipeline.decoded == [0, 12, 21, 30]
    assert eraser.overlapped == [True] * 4


def test_video_outputs_encoded_while_erasing_resume_like_png_folders(tmp_path, clip):
    """Video outputs (cleaned frames and alpha matte, FFV1) are encoded by a thread as frames are
    written. Interrupted after 13 frames, the job keeps its staged PNGs, drops its half-encoded videos
    and stops its encoders; resumed, the videos hold exactly the frames the same job gives as PNG folders."""
    made, _ = clip

    def spec_for(output: Path, matte: Path):
        req = request(
            made.frames, made.masks, output, subvideo_length=8, working_height=64, upscaler="lanczos", eraser="telea"
        )
        req.output.matte_path = str(matte)
        return spec_from_request(req)

    results = {}
    for kind, ext in (("video", ".mkv"), ("png", "")):
        spec = spec_for(tmp_path / f"{kind}{ext}", tmp_path / f"{kind}_matte{ext}")
        with pytest.raises(JobInterrupted):
            Pipeline().run(spec, StopAt(at=13, interrupt=True), job_id=kind)
        staged = Path(staging_path(spec.output_path, kind))
        assert sorted(p.name for p in staged.iterdir()) == [f"frame_{i:06d}.png" for i in range(13)]
        assert not [p for p in tmp_path.rglob(".encoding-*")], "the half-encoded videos are dropped"
        assert [t for t in threading.enumerate() if t.name == "peanut-encode"] == []
        Pipeline().run(spec, Reporter(), job_id=kind)
        results[kind] = spec
    with av.open(results["video"].output_path) as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
        assert stream.average_rate == 25
    assert [f.pts for f in decoded] == [i * decoded[1].pts for i in range(36)]  # one tick per frame, none lost
    for i, frame in enumerate(decoded):
        png = cv2.imread(str(Path(results["png"].output_path) / f"frame_{i:06d}.png"))
        assert np.array_equal(frame.to_ndarray(format="bgr24"), png), f"frame {i}"
    with av.open(results["video"].matte_path) as container:
        mattes = [f.to_ndarray(format="gray16le") for f in container.decode(video=0)]
    assert len(mattes) == 36
    for i, matte in enumerate(mattes):
        png = cv2.imread(str(Path(results["png"].matte_path) / f"frame_{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16 and np.array_equal(matte, png), f"matte {i}"
    assert not [p for p in tmp_path.rglob("*peanut-partial*")]


# -- the mask pass beside the erase pass --------------------------------------------------------------


def box_request(made, output: Path, matte: Path, **options) -> pb.SubmitRequest:
    """The disc's frame-0 box as the prompt: the no-weights tracker makes the masks (a real mask pass)."""
    first = cv2.imread(str(sorted(made.masks.iterdir())[0]), cv2.IMREAD_GRAYSCALE) > 127
    ys, xs = np.nonzero(first)
    box = pb.Box(x0=float(xs.min()), y0=float(ys.min()), x1=float(xs.max() + 1), y1=float(ys.max() + 1))
    return pb.SubmitRequest(
        source=pb.MediaRange(path=str(made.frames)),
        mask=pb.MaskSpec(frame_prompts=[pb.FramePrompt(frame=0, box=box)]),
        options=pb.Options(**options),
        output=pb.OutputSpec(path=str(output), matte_path=str(matte)),
    )


class GatedPipeline(Pipeline):
    """Holds the mask pass after `gate` masks until the erase pass has decoded its first window
    (up to 30 s), then optionally fails the mask pass at mask `fail_at`."""

    def __init__(self, gate: int = 20, fail_at: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.gate, self.fail_at = gate, fail_at
        self.first_window = threading.Event()
        self.masks_at_first_window: int | None = None
        self.waited: bool | None = None

    def _write_masks(self, masks, *args, **kwargs):
        def gated():
            for i, mask in enumerate(masks):
                if i == self.gate:
                    self.waited = self.first_window.wait(30)
                if i == self.fail_at:
                    raise MaskError("the masker broke at frame 25")
                yield mask

        return Pipeline._write_masks(gated(), *args, **kwargs)

    def _decode_window(self, source, matte, *args, **kwargs):
        if not self.first_window.is_set():
            self.masks_at_first_window = matte.written
            self.first_window.set()
        return Pipeline._decode_window(source, matte, *args, **kwargs)


def test_erasing_starts_while_masks_are_still_being_made(tmp_path, clip):
    """Streaming, the first window is erased as soon as its masks are staged; the files (output and
    alpha matte) are those of the sequential run, which masks every frame first."""
    made, _ = clip
    outputs, mattes = {}, {}
    for streaming in (False, True):
        out, matte = tmp_path / f"out_{streaming}", tmp_path / f"matte_{streaming}"
        spec = spec_from_request(box_request(made, out, matte, subvideo_length=8, eraser="telea"))
        pipeline = GatedPipeline(streaming=streaming)
        states = []
        result = pipeline.run(spec, Reporter(callback=states.append))
        assert result.frame_count == 36 and result.timings["masking"] > 0
        outputs[streaming], mattes[streaming] = files(out), files(matte)
        if streaming:
            assert pipeline.waited is True and pipeline.masks_at_first_window < 36
            # One outer stage at a time, each counting to the end; erasing starts at what is on disk.
            stages = [s.stage for s in states]
            assert stages.index("erasing") > max(i for i, s in enumerate(stages) if s == "masking")
            assert [s.done for s in states if s.stage == "masking"][-1] == 36
            erasing = [s.done for s in states if s.stage == "erasing"]
            assert erasing == sorted(erasing) and erasing[-1] == 36
        else:
            assert pipeline.waited is False  # sequential: no window before every mask is made
    assert len(outputs[True]) == 36 and outputs[True] == outputs[False]
    assert mattes[True] == mattes[False]
    assert stage_threads() == [] and not [t for t in threading.enumerate() if t.name == "peanut-mask"]


def test_a_mask_pass_failure_beside_the_erase_pass_is_the_one_reported(tmp_path, clip):
    made, _ = clip
    out, matte = tmp_path / "out", tmp_path / "matte"
    spec = spec_from_request(box_request(made, out, matte, subvideo_length=8, eraser="telea"))
    with pytest.raises(MaskError, match="broke at frame 25"):
        GatedPipeline(fail_at=25, streaming=True).run(spec, Reporter(), job_id="j5")
    assert stage_threads() == [] and not [t for t in threading.enumerate() if t.name == "peanut-mask"]
    assert not out.exists() and not matte.exists()
    assert not Path(staging_path(str(out), "j5")).exists() and not Path(staging_path(str(matte), "j5")).exists()


def test_interrupted_while_masking_and_erasing_resumes_to_the_same_files(tmp_path, clip):
    """Interrupted during the mask pass with frames already erased: both sinks keep what they staged,
    and the resumed job gives the files of a job that was never stopped."""
    made, _ = clip
    whole_out, whole_matte = tmp_path / "whole", tmp_path / "whole_matte"
    Pipeline(streaming=False).run(
        spec_from_request(box_request(made, whole_out, whole_matte, subvideo_length=8, eraser="telea")), Reporter()
    )
    out, matte = tmp_path / "out", tmp_path / "matte"
    spec = spec_from_request(box_request(made, out, matte, subvideo_length=8, eraser="telea"))
    pipeline = GatedPipeline(gate=30, streaming=True)
    with pytest.raises(JobInterrupted):
        pipeline.run(spec, StopAt(at=30, interrupt=True, stage_name="masking"), job_id="j6")
    staged_out = [p for p in Path(staging_path(str(out), "j6")).iterdir() if not p.name.startswith(".")]
    staged_matte = [p for p in Path(staging_path(str(matte), "j6")).iterdir() if not p.name.startswith(".")]
    assert 0 < len(staged_out) <= len(staged_matte) < 36, (len(staged_out), len(staged_matte))
    assert stage_threads() == [] and not [t for t in threading.enumerate() if t.name == "peanut-mask"]
    Pipeline(streaming=True).run(spec, Reporter(), job_id="j6")
    assert files(out) == files(whole_out)
    assert files(matte) == files(whole_matte)
