"""plugins/resolve/peanut_resolve.py against the fake Resolve, end to end with a real daemon."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.daemon import daemon  # noqa: F401  (fixture)
from tests.fake_resolve import FakeMediaPoolItem, FakeResolve
from tests.otio_support import make_square_video, read_png, simple_run_clip, square_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "resolve"))
import peanut_resolve as pr  # noqa: E402

FPS = 25.0
TC_START = 90000            # 01:00:00:00 at 25 fps
RECORD = TC_START + 30      # the clip sits 30 frames into the timeline
LEFT, DURATION, MEDIA_FRAMES = 7, 12, 40


def make_scene(tmp_path: Path, end_frame_inclusive: bool = True, tracks: int = 1):
    media = tmp_path / "footage"
    media.mkdir()
    clip = make_square_video(media / "A001.mkv", MEDIA_FRAMES, fps=int(FPS))
    mask = np.zeros((48, 64), np.uint8)
    mask[28:48, 38:64] = 255  # covers every position of the moving square
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    resolve = FakeResolve(end_frame_inclusive=end_frame_inclusive)
    project = resolve.project_manager.create_project("p")
    timeline = project.create_timeline("edit", FPS, TC_START, video_tracks=tracks)
    mpi = FakeMediaPoolItem(str(clip), fps=FPS, start=0, frames=MEDIA_FRAMES)
    project.media_pool.root.clips.append(mpi)
    other = timeline.place(mpi, 1, TC_START, 0, 30)          # an untouched neighbour before it
    item = timeline.place(mpi, 1, RECORD, LEFT, DURATION)
    timeline.current_item = item
    return resolve, project, timeline, item, other, tmp_path / "mask.png"


class LocalTransport:
    """A real transport without a daemon: the OpenCV test pipeline from tests.otio_support."""

    def __init__(self) -> None:
        self.requests = []

    def run(self, request, on_progress=None, should_cancel=None):
        from peanut_server.otio.timeline import ClipJob
        from peanut_server.progress import Reporter

        self.requests.append(request)
        job = ClipJob(0, 0, "V1", "c", request.source_path, request.start, request.end, FPS, request.prompt, request.mask_path)
        result = simple_run_clip(job, request.output_path, request.matte_path, Reporter())
        return pr.JobOutcome(result["output_path"], result["matte_path"], result["frame_count"])


def check_placed(timeline, placed, mask_path, track=2):
    assert placed in timeline.GetItemListInTrack("video", track)
    assert (placed.GetStart(), placed.GetDuration(), placed.GetEnd()) == (RECORD, DURATION, RECORD + DURATION)
    mpi = placed.GetMediaPoolItem()
    files = mpi.files[placed.GetLeftOffset():placed.GetLeftOffset() + placed.GetDuration()]
    assert [Path(f).name for f in files] == [f"frame_{LEFT + k:06d}.png" for k in range(DURATION)]
    outside = cv2.dilate(cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE), np.ones((15, 15), np.uint8)) == 0
    for k, path in enumerate(files):
        cleaned, source = read_png(path), square_frame(LEFT + k)
        assert np.array_equal(cleaned[outside], source[outside]), k
        assert not np.array_equal(cleaned, source)  # the square is gone
    return mpi


def test_end_to_end_with_daemon(tmp_path, daemon):  # noqa: F811
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    events = []
    placed = pr.remove_current_clip(
        resolve, mask_path=str(mask), server=pr.GrpcTransport(daemon.address, str(daemon.state_dir)),
        options={"eraser": "telea", "mask_dilation": 2, "feather": 1},
        on_progress=lambda stage, done, total: events.append((stage, done, total)),
    )
    check_placed(timeline, placed, mask)
    assert timeline.GetItemListInTrack("video", 1) == [other, item]  # the source track is untouched
    assert events, "no progress reached the caller"
    # The matte sits in the PEANUT bin beside the cleaned clip, not on the timeline.
    peanut_bin = [f for f in project.media_pool.root.GetSubFolderList() if f.GetName() == "PEANUT"]
    assert len(peanut_bin) == 1 and len(peanut_bin[0].GetClipList()) == 2
    run_folder = Path(placed.GetMediaPoolItem().files[0]).parents[1]
    assert run_folder.parent == tmp_path / "footage" / "PEANUT"
    assert run_folder.name.startswith("A001_mask_png")


@pytest.mark.parametrize("inclusive", [True, False], ids=["endFrame-inclusive", "endFrame-exclusive"])
def test_either_end_frame_reading_places_the_exact_length(tmp_path, inclusive):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path, end_frame_inclusive=inclusive)
    placed = pr.remove_current_clip(resolve, mask_path=str(mask), server=LocalTransport())
    check_placed(timeline, placed, mask)
    assert len(timeline.GetItemListInTrack("video", 2)) == 1  # the corrected first try was removed


def test_uses_a_free_track_above_and_a_new_one_when_taken(tmp_path):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path, tracks=2)
    placed = pr.remove_current_clip(resolve, mask_path=str(mask), server=LocalTransport())
    assert timeline.GetTrackCount("video") == 2
    check_placed(timeline, placed, mask, track=2)
    # Run again: V2 is now taken over that range, so a new top track holds the second result.
    second = pr.remove_current_clip(resolve, mask_path=str(mask), server=LocalTransport())
    assert timeline.GetTrackCount("video") == 3
    check_placed(timeline, second, mask, track=3)
    assert Path(second.GetMediaPoolItem().files[0]).parents[1].name.endswith("_2")


def _timeline_state(project, timeline):
    return (timeline.snapshot(), [f.GetName() for f in project.media_pool.root.GetSubFolderList()],
            [c.GetName() for c in project.media_pool.root.GetClipList()], project.media_pool.current_folder)


@pytest.mark.parametrize(
    "failing,message",
    [
        ("ProjectManager.GetCurrentProject", "no project is open"),
        ("Project.GetCurrentTimeline", "no timeline is open"),
        ("Timeline.GetCurrentVideoItem", "no clip under the playhead"),
        ("MediaPool.ImportMedia", "could not import the cleaned frames"),
        ("MediaPool.AppendToTimeline", "could not place the cleaned clip"),
        ("Timeline.AddTrack", "could not add a video track"),
        ("MediaPool.AddSubFolder", "cannot create the media pool bin"),
    ],
)
def test_failures_leave_the_timeline_as_it_was(tmp_path, failing, message):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    before = _timeline_state(project, timeline)
    resolve.fail.add(failing)
    with pytest.raises(pr.ResolveScriptError, match=message):
        pr.remove_current_clip(resolve, mask_path=str(mask), server=LocalTransport())
    assert _timeline_state(project, timeline) == before
    assert timeline.GetTrackCount("video") == 1


def test_matte_import_failing_removes_the_cleaned_import(tmp_path):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    before = _timeline_state(project, timeline)
    real = project.media_pool.ImportMedia
    calls = []

    def import_once(items):  # the second import (the matte) fails
        calls.append(items)
        return real(items) if len(calls) == 1 else []

    project.media_pool.ImportMedia = import_once
    with pytest.raises(pr.ResolveScriptError, match="matte frames"):
        pr.remove_current_clip(resolve, mask_path=str(mask), server=LocalTransport())
    assert _timeline_state(project, timeline) == before
    assert all(not f.GetClipList() for f in project.media_pool.root.GetSubFolderList())


def test_offline_media_and_missing_prompt(tmp_path):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    before = _timeline_state(project, timeline)
    with pytest.raises(pr.ResolveScriptError, match="describe what to remove"):
        pr.remove_current_clip(resolve, server=LocalTransport())
    os.rename(tmp_path / "footage" / "A001.mkv", tmp_path / "moved.mkv")
    transport = LocalTransport()
    with pytest.raises(pr.ResolveScriptError, match="offline"):
        pr.remove_current_clip(resolve, mask_path=str(mask), server=transport)
    assert transport.requests == [] and _timeline_state(project, timeline) == before


def test_daemon_down_gives_a_clear_message(tmp_path):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    before = _timeline_state(project, timeline)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(pr.ResolveScriptError, match="daemon not running"):
        pr.remove_current_clip(resolve, mask_path=str(mask), server=pr.GrpcTransport(f"127.0.0.1:{port}", str(tmp_path / "st")))
    assert _timeline_state(project, timeline) == before
    assert not (tmp_path / "footage" / "PEANUT").exists()  # no empty run folder left behind


def test_source_range_from_sequence_and_fps_mismatch(tmp_path):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    seq = tmp_path / "seq"
    seq.mkdir()
    for i in range(100, 140):
        cv2.imwrite(str(seq / f"shot_{i:04d}.png"), np.zeros((4, 4, 3), np.uint8))
    mpi = FakeMediaPoolItem(str(seq / "shot_[0100-0139].png"), fps=FPS, start=100, frames=40)
    timeline.current_item = timeline.place(mpi, 1, TC_START + 100, 5, 20)
    plan, _, _ = pr.plan_current_clip(resolve, prompt="the boom mic")
    assert (plan.source_path, plan.start, plan.end, plan.record_start) == (str(seq), 5, 25, TC_START + 100)
    assert Path(plan.output_path).parents[1] == tmp_path / "PEANUT"  # beside the frame folder, not in it
    assert Path(plan.output_path).parent.name == "seq_the_boom_mic"
    timeline.fps = 24.0
    with pytest.raises(pr.ResolveScriptError, match="25 fps on a 24 fps timeline"):
        pr.plan_current_clip(resolve, prompt="x")


def test_cli_transport_reads_the_final_job(tmp_path):
    """The CLI route: a stand-in `peanut` that prints a Job the way `peanut remove --json` does."""
    from google.protobuf.json_format import MessageToDict

    from peanut_server.api import peanut_pb2 as pb

    job = pb.Job(id="j", state=pb.JOB_STATE_SUCCEEDED,
                 result=pb.JobResult(output_path="/o/cleaned", matte_path="/o/matte", frame_count=12))
    failed = pb.Job(id="k", state=pb.JOB_STATE_FAILED, error="mask has 3 frames, the range has 12")
    for name, message in (("ok", job), ("bad", failed)):
        script = tmp_path / name
        script.write_text(f"#!{sys.executable}\nimport sys\nprint({json.dumps(json.dumps(MessageToDict(message, preserving_proto_field_name=True)))})\n"
                          "open(sys.argv[0] + '.args', 'w').write(repr(sys.argv[1:]))\n")
        script.chmod(0o755)
    request = pr.JobRequest("/m/a.mov", 7, 19, "", "/m/mask.png", "/o/cleaned", "/o/matte", {"mask_dilation": 2})
    outcome = pr.CliTransport(str(tmp_path / "ok"), "127.0.0.1:1").run(request)
    assert (outcome.output_path, outcome.matte_path, outcome.frame_count) == ("/o/cleaned", "/o/matte", 12)
    argv = eval((tmp_path / "ok.args").read_text())
    assert argv[:2] == ["remove", "/m/a.mov"] and argv[argv.index("--start") + 1] == "7" and argv[argv.index("--end") + 1] == "19"
    assert "--json" in argv and argv[argv.index("--mask-dilation") + 1] == "2"
    with pytest.raises(pr.ResolveScriptError, match="mask has 3 frames"):
        pr.CliTransport(str(tmp_path / "bad")).run(request)
    with pytest.raises(pr.ResolveScriptError, match="cannot run"):
        pr.CliTransport(str(tmp_path / "missing")).run(request)
