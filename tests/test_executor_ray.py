"""The Ray executor on a local Ray runtime (2 CPUs, this machine only): same outputs as the local executor.

One runtime serves the whole module (starting one takes seconds). The daemon with
`--executor ray` is tested in tests/test_executor_ray_daemon.py, after this runtime is down.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import ray  # the test extra installs it

from peanut_server.api import peanut_pb2 as pb
from peanut_server.errors import JobCancelled, JobInterrupted, PeanutError
from peanut_server.media import frame_filename
from peanut_server.pipeline import Pipeline, spec_from_request, staging_path
from peanut_server.pipeline.executor import RayExecutor, RayOptions, RayWindow, ray_windows
from peanut_server.progress import Reporter
from tests.clips import make_object_clip
from tests.test_pipeline_streaming import StopAt

FRAMES = 40


@pytest.fixture(scope="module")
def executor():
    ex = RayExecutor(RayOptions(address="local", local_cpus=2, max_in_flight=2))
    ex.start()
    try:
        yield ex
    finally:
        ex.shutdown()


@pytest.fixture(scope="module")
def clip(tmp_path_factory, shared_data: Path):
    root = tmp_path_factory.mktemp("ray")
    return make_object_clip(
        root / "clip", shared_data / "davis" / "bmx-trees" / "00000.jpg", n_frames=FRAMES, size=(160, 96), radius=12
    )


def request(clip, output: Path, **options) -> pb.SubmitRequest:
    return pb.SubmitRequest(
        source=pb.MediaRange(path=str(clip.frames)),
        mask=pb.MaskSpec(mask_path=str(clip.masks)),
        options=pb.Options(**options),
        output=pb.OutputSpec(path=str(output)),
    )


def read(folder: Path, i: int) -> np.ndarray:
    image = cv2.imread(str(folder / frame_filename(i)), cv2.IMREAD_UNCHANGED)
    assert image is not None, folder / frame_filename(i)
    return image


def outside(clip, i: int, pixels: int) -> np.ndarray:
    """Pixels farther than `pixels` from the object in frame i: there every output must equal the source."""
    mask = cv2.imread(str(clip.masks / frame_filename(i)), cv2.IMREAD_GRAYSCALE) > 127
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) == 0


def assert_same_outside_mask(clip, local: Path, remote: Path, pixels: int) -> None:
    assert sorted(os.listdir(remote)) == sorted(os.listdir(local)) == [frame_filename(i) for i in range(FRAMES)]
    changed_inside = 0
    for i in range(FRAMES):
        a, b, src = read(local, i), read(remote, i), read(clip.frames, i)
        away = outside(clip, i, pixels)
        assert np.array_equal(a[away], b[away]), f"frame {i} differs outside the mask"
        assert np.array_equal(b[away], src[away]), f"frame {i}: the Ray output is not the source outside the mask"
        changed_inside += int((b[~away] != src[~away]).any())
    assert changed_inside == FRAMES, "the object must be erased in every frame"


def test_windows_cover_the_range_with_lead_in():
    assert ray_windows(20, 0, 8, 2) == [
        RayWindow(0, 0, 6),
        RayWindow(4, 6, 12),
        RayWindow(10, 12, 18),
        RayWindow(16, 18, 20),
    ]
    assert ray_windows(20, 13, 8, 2) == [RayWindow(11, 13, 19), RayWindow(17, 19, 20)]
    assert ray_windows(5, 0, 80, 10) == [RayWindow(0, 0, 5)]


def test_clip_in_one_window_is_bit_identical_to_the_local_executor(tmp_path, clip, executor):
    outputs = {}
    for name, pipeline in (("local", Pipeline()), ("ray", Pipeline(executor=executor))):
        out = tmp_path / name
        result = pipeline.run(
            spec_from_request(request(clip, out, working_height=64, upscaler="lanczos", eraser="telea")), Reporter()
        )
        assert result.frame_count == FRAMES
        assert [r.backend for r in result.backends] == ["external", "telea", "lanczos"]
        outputs[name] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        outputs[name + " matte"] = {p.name: p.read_bytes() for p in sorted(Path(f"{out}_matte").iterdir())}
    assert outputs["ray"] == outputs["local"]
    assert outputs["ray matte"] == outputs["local matte"]


def test_long_clip_in_windows_equals_the_local_executor_outside_the_mask(tmp_path, clip, executor):
    options = dict(subvideo_length=8, eraser="telea", working_height=0)
    Pipeline().run(spec_from_request(request(clip, tmp_path / "local", **options)), Reporter())
    states = []
    Pipeline(executor=executor).run(
        spec_from_request(request(clip, tmp_path / "ray", **options)), Reporter(callback=states.append)
    )
    # 40 frames in windows of 8 with 2 of lead-in: 7 tasks, written in order.
    erasing = [s.done for s in states if s.stage == "erasing"]
    assert erasing == sorted(erasing) and erasing[-1] == FRAMES
    # mask dilation 4 + feather 3 + 1, at the source size
    assert_same_outside_mask(clip, tmp_path / "local", tmp_path / "ray", pixels=9)


@pytest.mark.parametrize("stage", ["masking", "erasing"])
def test_cancel_mid_way_cancels_the_tasks_and_leaves_nothing(tmp_path, clip, executor, stage):
    out = tmp_path / "out"
    with pytest.raises(JobCancelled):
        Pipeline(executor=executor).run(
            spec_from_request(request(clip, out, subvideo_length=6, eraser="telea", working_height=0)),
            StopAt(at=5, stage_name=stage),
            job_id="c1",
        )
    assert not Path(f"{out}_matte").exists()
    assert not out.exists() and not Path(staging_path(str(out), "c1")).exists()
    # The cancelled tasks give their CPUs back. 2026-12-02: a fresh-clone CI rehearsal (full suite,
    # 2-core machine) still had one of the two CPUs out after 60 s, once; the module alone passed 8 runs
    # in 8. Whether the CPU would have come back later is not known: the wait is now 120 s, and a CPU
    # that never comes back still fails here.
    deadline = time.monotonic() + 120
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2


def test_interrupt_then_resume_keeps_finished_frames(tmp_path, clip, executor):
    options = dict(subvideo_length=8, eraser="telea", working_height=0)
    spec = spec_from_request(request(clip, tmp_path / "ray", **options))
    with pytest.raises(JobInterrupted):
        Pipeline(executor=executor).run(spec, StopAt(at=15, interrupt=True), job_id="r1")
    staged = Path(staging_path(str(tmp_path / "ray"), "r1"))
    stamps = {p.name: p.stat().st_mtime_ns for p in staged.iterdir()}
    assert sorted(stamps) == [frame_filename(i) for i in range(15)]
    states = []
    Pipeline(executor=executor).run(spec, Reporter(callback=states.append), job_id="r1")
    assert [s.done for s in states if s.stage == "erasing"][0] == 15
    assert {name: (tmp_path / "ray" / name).stat().st_mtime_ns for name in stamps} == stamps
    Pipeline().run(spec_from_request(request(clip, tmp_path / "local", **options)), Reporter())
    assert_same_outside_mask(clip, tmp_path / "local", tmp_path / "ray", pixels=9)


def test_a_task_failure_fails_the_job_with_its_own_error(tmp_path, clip, executor):
    """Masks that vanish after the job was checked: the masking task's own error, not a Ray wrapper."""
    spec = spec_from_request(request(clip, tmp_path / "out", eraser="telea", working_height=0))
    pipeline = Pipeline(executor=executor)
    info, start, end = pipeline.validate(spec)
    choice = pipeline.masker_choice(spec)
    spec.prompt.mask_path = str(tmp_path / "gone")
    with pytest.raises(PeanutError) as err:
        executor.mask_pass(pipeline, spec, info, start, end, choice, _CountingMatte(), Reporter())
    assert "gone" in str(err.value)


class _CountingMatte:
    written = 0

    def write(self, frame) -> None:
        self.written += 1


def test_an_address_that_is_not_local_auto_or_ray_client_is_refused_at_start():
    from peanut_server.daemon.main import StartupError, parse_args, start_executor

    assert start_executor(parse_args([])) is None  # --executor local: jobs run in the daemon
    with pytest.raises(StartupError, match="use local, auto or ray://HOST:PORT"):
        start_executor(parse_args(["--executor", "ray", "--ray-address", "10.1.2.3:6379"]))


class CountingPipeline(Pipeline):
    """Counts the clips (pipeline runs) in progress at once."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def run(self, *args, **kwargs):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return super().run(*args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


def four_clip_timeline(tmp_path: Path, clip) -> Path:
    """Four prompted clips (mask folder in metadata) cut from the 40-frame clip, one after another."""
    import opentimelineio as otio

    rate = 25.0
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for k, (first, count) in enumerate([(0, 9), (6, 10), (18, 8), (28, 12)]):
        ref = otio.schema.ExternalReference(
            target_url=str(clip.frames),
            available_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(FRAMES, rate)
            ),
        )
        shot = otio.schema.Clip(
            name=f"shot{k}",
            media_reference=ref,
            source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(first, rate), otio.opentime.RationalTime(count, rate)
            ),
        )
        shot.metadata["peanut"] = {"mask": str(clip.masks)}
        track.append(shot)
    timeline = otio.schema.Timeline(name="four shots", tracks=[track])
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(timeline, str(path))
    return path


def test_otio_timeline_fans_its_clips_out_with_the_local_results(tmp_path, clip, executor):
    from peanut_server.otio.jobs import run_timeline_job

    source = four_clip_timeline(tmp_path, clip)
    outputs = {}
    for name, pipeline in (("local", CountingPipeline()), ("ray", CountingPipeline(executor=executor))):
        request = pb.ProcessTimelineRequest(
            timeline_path=str(source),
            output_path=str(tmp_path / f"{name}.otio"),
            media_dir=str(tmp_path / f"{name}_media"),
            options=pb.Options(eraser="telea", working_height=0),
        )
        result = run_timeline_job(request, pipeline, Reporter(), job_id=f"t-{name}")
        assert result.frame_count == 9 + 10 + 8 + 12
        outputs[name] = {
            str(p.relative_to(tmp_path / f"{name}_media")): p.read_bytes()
            for p in sorted((tmp_path / f"{name}_media").rglob("*.png"))
        }
        outputs[name + " most"] = pipeline.most
    assert outputs["local most"] == 1
    assert outputs["ray most"] == 2  # the executor's 2 task slots
    # Every clip fits in one window: the same files, bit for bit (39 cleaned frames and 39 mattes).
    assert len(outputs["ray"]) == 2 * 39
    assert outputs["ray"] == outputs["local"]


class CancellingPipeline(Pipeline):
    """Cancels the timeline job as its second clip starts; the clips running wait (30 s at most) for the cancel
    to reach them, so none finishes first on a loaded machine and lets a third clip start."""

    def __init__(self, job: Reporter, **kwargs) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.started = 0
        self.lock = threading.Lock()

    def run(self, spec, reporter, job_id="local"):
        with self.lock:
            self.started += 1
            if self.started == 2:
                self.job.cancel_event.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reporter.check()  # raises JobCancelled once the timeline's loop has passed the cancel on
            time.sleep(0.01)
        return super().run(spec, reporter, job_id)


def test_cancelling_a_fanned_out_timeline_stops_every_clip(tmp_path, clip, executor):
    from peanut_server.otio.jobs import run_timeline_job

    source = four_clip_timeline(tmp_path, clip)
    request = pb.ProcessTimelineRequest(
        timeline_path=str(source),
        output_path=str(tmp_path / "out.otio"),
        media_dir=str(tmp_path / "media"),
        options=pb.Options(eraser="telea", working_height=0),
    )
    reporter = Reporter()
    pipeline = CancellingPipeline(reporter, executor=executor)
    with pytest.raises(JobCancelled):
        run_timeline_job(request, pipeline, reporter, job_id="t-cancel")
    assert not (tmp_path / "out.otio").exists()
    assert pipeline.started == 2, "no clip starts after the cancel"
    assert not [p for p in tmp_path.rglob("*peanut-partial*")], "cancelled clips leave no staging"
    assert [t for t in threading.enumerate() if t.name.startswith("peanut-clip")] == []


class InterruptingPipeline(Pipeline):
    """Interrupts the timeline job (as a daemon's shutdown does) when its third clip starts: by then one
    of the first two has finished and the other is under way on the other task slot."""

    def __init__(self, job: Reporter | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.started = 0
        self.ran: list[str] = []
        self.lock = threading.Lock()

    def run(self, spec, reporter, job_id="local"):
        with self.lock:
            self.started += 1
            self.ran.append(job_id)
            if self.started == 3 and self.job is not None:
                self.job.interrupt_event.set()
        return super().run(spec, reporter, job_id)


def test_interrupted_timeline_resumes_on_the_cluster_with_the_local_results(tmp_path, clip, executor):
    """The 4-clip timeline on 2 task slots, interrupted mid-way, then resumed (what the daemon does after a
    restart): the clips finished before stay as they are, the others finish; every clip equals the
    local executor's outside the mask, and the output timeline is written once, at the end."""
    from peanut_server.otio.jobs import run_timeline_job

    source = four_clip_timeline(tmp_path, clip)

    def timeline_request(name: str) -> pb.ProcessTimelineRequest:
        return pb.ProcessTimelineRequest(
            timeline_path=str(source),
            output_path=str(tmp_path / f"{name}.otio"),
            media_dir=str(tmp_path / f"{name}_media"),
            options=pb.Options(eraser="telea", working_height=0),
        )

    run_timeline_job(timeline_request("local"), Pipeline(), Reporter(), job_id="t-local")
    reporter = Reporter()
    first = InterruptingPipeline(reporter, executor=executor)
    with pytest.raises(JobInterrupted):
        run_timeline_job(timeline_request("ray"), first, reporter, job_id="t-ray")
    assert not (tmp_path / "ray.otio").exists()
    media = tmp_path / "ray_media"
    finished = {p.parent.name: p.stat().st_mtime_ns for p in media.glob("*/cleaned")}
    # The third clip starts when one of the first two has finished; the fourth never starts.
    assert 1 <= len(finished) <= 3 and "004_shot3" not in finished, finished
    resumed = InterruptingPipeline(None, executor=executor)
    result = run_timeline_job(timeline_request("ray"), resumed, Reporter(), job_id="t-ray", resumed=True)
    assert result.frame_count == 9 + 10 + 8 + 12
    assert (tmp_path / "ray.otio").exists()
    # The clips finished before were not run again, and their frames were not touched.
    assert not {f"t-ray-{int(name[:3]) - 1}" for name in finished} & set(resumed.ran)
    assert {p.parent.name: p.stat().st_mtime_ns for p in media.glob("*/cleaned") if p.parent.name in finished} == (
        finished
    )
    for k, (first_frame, count) in enumerate([(0, 9), (6, 10), (18, 8), (28, 12)]):
        folder = f"{k + 1:03d}_shot{k}"
        local, remote = tmp_path / "local_media" / folder / "cleaned", media / folder / "cleaned"
        names = [frame_filename(i) for i in range(first_frame, first_frame + count)]
        assert sorted(os.listdir(remote)) == sorted(os.listdir(local)) == names
        assert sorted(os.listdir(media / folder / "matte")) == names
        for i in range(first_frame, first_frame + count):
            a, b, src = read(local, i), read(remote, i), read(clip.frames, i)
            away = outside(clip, i, 9)
            assert np.array_equal(a[away], b[away]) and np.array_equal(b[away], src[away]), f"clip {k} frame {i}"
            assert (b[~away] != src[~away]).any(), f"clip {k} frame {i}: the object must be erased"
    assert not [p for p in tmp_path.rglob("*peanut-partial*")], "no staging left"
