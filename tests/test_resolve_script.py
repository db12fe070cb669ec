"""plugins/resolve/peanut_resolve.py against the fake Resolve, with a real daemon (and the real CLI).

The fake (tests/fake_resolve.py) follows Blackmagic's scripting README and the
behaviours issue 14 cites; where the README is silent the fake can take each
reading, and the script must land the cleaned clip on the source's exact
frames under every one of them.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.clips import decode_index
from tests.daemon import running_daemon
from tests.fake_resolve import FakeMediaPoolItem, FakeResolve
from tests.otio_support import make_square_video, read_png, square_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "resolve"))
import peanut_resolve as pr  # noqa: E402

FPS = 25.0
TC_START = 90000  # 01:00:00:00 at 25 fps
RECORD = TC_START + 30  # the clip sits 30 frames into the timeline
LEFT, DURATION, MEDIA_FRAMES = 7, 12, 40
OPTIONS = {"eraser": "telea", "mask_dilation": 2, "feather": 1}


@pytest.fixture(scope="module")
def peanut_daemon(tmp_path_factory):
    """One real daemon for the module: every job below goes through it."""
    with running_daemon(tmp_path_factory.mktemp("resolve-daemon")) as proc:
        yield proc


class Counting:
    """The real gRPC transport, counting requests (and running `during` while the job runs)."""

    def __init__(self, daemon, during=None) -> None:
        self.inner = pr.GrpcTransport(daemon.address, str(daemon.state_dir))
        self.requests = []
        self.during = during

    def run(self, request, on_progress=None, should_cancel=None):
        self.requests.append(request)
        outcome = self.inner.run(request, on_progress, should_cancel)
        if self.during is not None:
            self.during()
        return outcome


def make_scene(tmp_path: Path, tracks: int = 1, **fake):
    media = tmp_path / "footage"
    media.mkdir()
    clip = make_square_video(media / "A001.mkv", MEDIA_FRAMES, fps=int(FPS))
    mask = np.zeros((48, 64), np.uint8)
    mask[28:48, 38:64] = 255  # covers every position of the moving square
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    resolve = FakeResolve(**fake)
    project = resolve.project_manager.create_project("p")
    timeline = project.create_timeline("edit", FPS, TC_START, video_tracks=tracks)
    mpi = FakeMediaPoolItem(str(clip), fps=FPS, start=0, frames=MEDIA_FRAMES)
    project.media_pool.root.clips.append(mpi)
    other = timeline.place(mpi, 1, TC_START, 0, 30)  # an untouched neighbour before it
    item = timeline.place(mpi, 1, RECORD, LEFT, DURATION)
    timeline.current_item = item
    return resolve, project, timeline, item, other, tmp_path / "mask.png"


def remove(resolve, mask, daemon, transport=None):
    return pr.remove_current_clip(resolve, mask_path=str(mask), server=transport or Counting(daemon), options=OPTIONS)


def check_placed(timeline, placed, mask_path, track=2):
    """The placed clip covers the source's record frames, and each of them shows the cleaned source frame."""
    assert placed in timeline.GetItemListInTrack("video", track)
    assert (placed.GetStart(), placed.GetDuration(), placed.GetEnd()) == (RECORD, DURATION, RECORD + DURATION)
    shown = placed.shown_files()
    assert None not in shown, f"blank frames on the timeline: {shown}"
    assert [Path(f).name for f in shown] == [f"frame_{LEFT + k:06d}.png" for k in range(DURATION)]
    outside = cv2.dilate(cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE), np.ones((15, 15), np.uint8)) == 0
    for k, path in enumerate(shown):
        cleaned = read_png(path)
        assert decode_index(cleaned) == LEFT + k  # the frame's own index, not the file name
        source = square_frame(LEFT + k)  # the generator, not a reader shared with the run
        assert np.array_equal(cleaned[outside], source[outside]), k
        assert not np.array_equal(cleaned, source)  # the square is gone
    return placed.GetMediaPoolItem()


def _state(project, timeline):
    pool = project.media_pool
    return (
        timeline.snapshot(),
        [f.GetName() for f in pool.root.GetSubFolderList()],
        [c.GetName() for c in pool.all_clips()],
        pool.current_folder,
    )


# -- end to end -------------------------------------------------------------------------------


def test_end_to_end_with_daemon(tmp_path, peanut_daemon):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    events = []
    placed = pr.remove_current_clip(
        resolve,
        mask_path=str(mask),
        server=pr.GrpcTransport(peanut_daemon.address, str(peanut_daemon.state_dir)),
        options=OPTIONS,
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


# Issue 14, point 1: under every reading of startFrame (clip numbering or from 0)
# and endFrame (inclusive or exclusive), the placed frames are the source's.
@pytest.mark.parametrize(
    "numbering", ["media", "zero"], ids=["GetSourceStartFrame-media", "GetSourceStartFrame-from-0"]
)
@pytest.mark.parametrize("sequence_start", ["clip", "zero"], ids=["startFrame-clip-numbering", "startFrame-from-0"])
@pytest.mark.parametrize("inclusive", [True, False], ids=["endFrame-inclusive", "endFrame-exclusive"])
def test_every_reading_places_the_exact_frames(tmp_path, peanut_daemon, inclusive, sequence_start, numbering):
    resolve, project, timeline, item, other, mask = make_scene(
        tmp_path, end_frame_inclusive=inclusive, sequence_start=sequence_start, source_numbering=numbering
    )
    placed = remove(resolve, mask, peanut_daemon)
    check_placed(timeline, placed, mask)
    assert len(timeline.GetItemListInTrack("video", 2)) == 1  # corrected tries were removed


def test_uses_a_free_track_above_and_a_new_one_when_taken(tmp_path, peanut_daemon):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path, tracks=2)
    placed = remove(resolve, mask, peanut_daemon)
    assert timeline.GetTrackCount("video") == 2
    check_placed(timeline, placed, mask, track=2)
    # Run again: V2 is now taken over that range, so a new top track holds the second result.
    second = remove(resolve, mask, peanut_daemon)
    assert timeline.GetTrackCount("video") == 3
    check_placed(timeline, second, mask, track=3)
    assert Path(second.GetMediaPoolItem().files[0]).parents[1].name.endswith("_2")


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
def test_failures_leave_the_timeline_as_it_was(tmp_path, peanut_daemon, failing, message):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    before = _state(project, timeline)
    resolve.fail.add(failing)
    with pytest.raises(pr.ResolveScriptError, match=message):
        remove(resolve, mask, peanut_daemon)
    assert _state(project, timeline) == before
    assert timeline.GetTrackCount("video") == 1


# Issue 14, point 2: a failed placement that returns a dead item (every Get* None).
def test_dead_item_is_a_clean_failure(tmp_path, peanut_daemon):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path, dead_items=True)
    before = _state(project, timeline)
    resolve.fail.add("MediaPool.AppendToTimeline")
    with pytest.raises(pr.ResolveScriptError, match="could not place the cleaned clip"):
        remove(resolve, mask, peanut_daemon)
    assert _state(project, timeline) == before


def test_matte_import_failing_removes_the_cleaned_import(tmp_path, peanut_daemon):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    before = _state(project, timeline)
    real = project.media_pool.ImportMedia
    calls = []

    def import_once(items):  # the second import (the matte) fails
        calls.append(items)
        return real(items) if len(calls) == 1 else []

    project.media_pool.ImportMedia = import_once
    with pytest.raises(pr.ResolveScriptError, match="matte frames"):
        remove(resolve, mask, peanut_daemon)
    assert _state(project, timeline) == before


# Issue 14, point 6: with "Show Individual Frames" on, every imported frame is a clip.
def test_show_individual_frames_is_refused_by_name_and_undone(tmp_path, peanut_daemon):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path, show_individual_frames=True)
    pool = project.media_pool
    pool.AddSubFolder(pool.root, "PEANUT")  # a bin left by an earlier run stays, and stays empty
    before = _state(project, timeline)
    with pytest.raises(pr.ResolveScriptError, match="Show Individual Frames"):
        remove(resolve, mask, peanut_daemon)
    assert _state(project, timeline) == before


# Issue 14, point 5: the editor switched timelines while the job ran.
def test_result_goes_to_the_planned_timeline_after_a_switch(tmp_path, peanut_daemon):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    switched = []

    def switch():  # the editor opens another timeline meanwhile
        switched.append(project.create_timeline("other cut", FPS, TC_START, video_tracks=1))

    placed = remove(resolve, mask, peanut_daemon, Counting(peanut_daemon, during=switch))
    check_placed(timeline, placed, mask)
    assert switched[0].snapshot() == [[], [], []]  # nothing landed on the other timeline
    assert project.GetCurrentTimeline() is switched[0]  # and the editor's choice is kept


def test_another_project_after_the_job_is_refused(tmp_path, peanut_daemon):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    before = _state(project, timeline)
    manager = resolve.project_manager

    def switch():
        manager.create_project("another").create_timeline("t", FPS, TC_START)

    with pytest.raises(pr.ResolveScriptError, match="project 'p' is no longer open"):
        remove(resolve, mask, peanut_daemon, Counting(peanut_daemon, during=switch))
    assert _state(project, timeline) == before
    assert manager.current.current_timeline.snapshot() == [[], [], []]


# Issue 14, point 10: the source track comes from GetTrackTypeAndIndex; locked or
# disabled tracks above are passed over.
def test_source_track_is_asked_not_guessed(tmp_path, peanut_daemon):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path, tracks=3)
    timeline.video[0].remove(item)
    twin = timeline.place(item.GetMediaPoolItem(), 1, RECORD, LEFT, DURATION)  # same name, start and end on V1
    moved = timeline.place(item.GetMediaPoolItem(), 2, RECORD, LEFT, DURATION)  # the current clip, on V2
    timeline.current_item = moved
    plan, _, _ = pr.plan_current_clip(resolve, mask_path=str(mask))
    assert plan.track_index == 2
    placed = remove(resolve, mask, peanut_daemon)
    check_placed(timeline, placed, mask, track=3)
    assert timeline.GetTrackCount("video") == 3 and twin in timeline.video[0]


@pytest.mark.parametrize("state", ["locked", "disabled"])
def test_locked_or_disabled_track_above_is_passed_over(tmp_path, peanut_daemon, state):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path, tracks=2)
    if state == "locked":
        timeline.SetTrackLock("video", 2, True)
    else:
        timeline.SetTrackEnable("video", 2, False)
    placed = remove(resolve, mask, peanut_daemon)
    assert timeline.GetItemListInTrack("video", 2) == []
    check_placed(timeline, placed, mask, track=3)


# Issue 14, point 3: a retime shows in the source frames, not in GetEnd - GetStart.
@pytest.mark.parametrize("speed", [2.0, 0.5])
def test_retimed_clip_is_refused(tmp_path, speed):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    timeline.video[0].remove(item)
    timeline.current_item = timeline.place(item.GetMediaPoolItem(), 1, RECORD, LEFT, DURATION, speed=speed)
    with pytest.raises(pr.ResolveScriptError, match="speed change"):
        pr.plan_current_clip(resolve, mask_path=str(mask))


# Issue 14, point 4: drop-frame timelines report "29.97 DF".
def test_drop_frame_timeline_rate(tmp_path):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    ntsc = project.create_timeline("ntsc", 29.97, 107892, drop_frame=True)
    assert ntsc.GetSetting("timelineFrameRate") == "29.97 DF"
    mpi = FakeMediaPoolItem(item.GetMediaPoolItem().file_path, fps=29.97, start=0, frames=MEDIA_FRAMES)
    ntsc.current_item = ntsc.place(mpi, 1, 107900, LEFT, DURATION)
    plan, _, _ = pr.plan_current_clip(resolve, mask_path=str(mask))
    assert abs(plan.fps - 29.97) < 1e-6 and (plan.start, plan.end) == (LEFT, LEFT + DURATION)
    ntsc.current_item.GetMediaPoolItem().fps = 25.0
    with pytest.raises(pr.ResolveScriptError, match="25 fps on a 29.97 fps timeline"):
        pr.plan_current_clip(resolve, mask_path=str(mask))


def test_offline_media_and_missing_prompt(tmp_path, peanut_daemon):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    before = _state(project, timeline)
    with pytest.raises(pr.ResolveScriptError, match="describe what to remove"):
        pr.remove_current_clip(resolve, server=Counting(peanut_daemon))
    os.rename(tmp_path / "footage" / "A001.mkv", tmp_path / "moved.mkv")
    transport = Counting(peanut_daemon)
    with pytest.raises(pr.ResolveScriptError, match="offline"):
        remove(resolve, mask, peanut_daemon, transport)
    assert transport.requests == [] and _state(project, timeline) == before


def test_daemon_down_gives_a_clear_message(tmp_path):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    before = _state(project, timeline)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(pr.ResolveScriptError, match="daemon not running"):
        pr.remove_current_clip(
            resolve, mask_path=str(mask), server=pr.GrpcTransport(f"127.0.0.1:{port}", str(tmp_path / "st"))
        )
    assert _state(project, timeline) == before
    assert not (tmp_path / "footage" / "PEANUT").exists()  # no empty run folder left behind


def test_source_range_from_sequence_and_fps_mismatch(tmp_path):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    seq = tmp_path / "seq"
    seq.mkdir()
    for i in range(100, 140):
        cv2.imwrite(str(seq / f"shot_{i:04d}.png"), np.zeros((4, 4, 3), np.uint8))
    mpi = FakeMediaPoolItem(str(seq / "shot_[0100-0139].png"), fps=FPS, start=100, frames=40, sequence=True)
    timeline.current_item = timeline.place(mpi, 1, TC_START + 100, 5, 20)
    plan, _, _ = pr.plan_current_clip(resolve, prompt="the boom mic")
    assert (plan.source_path, plan.start, plan.end, plan.record_start) == (str(seq), 5, 25, TC_START + 100)
    assert Path(plan.output_path).parents[1] == tmp_path / "PEANUT"  # beside the frame folder, not in it
    assert Path(plan.output_path).parent.name == "seq_the_boom_mic"
    timeline.fps = 24.0
    with pytest.raises(pr.ResolveScriptError, match="25 fps on a 24 fps timeline"):
        pr.plan_current_clip(resolve, prompt="x")


def test_cli_transport_with_the_real_command(tmp_path, peanut_daemon):
    """The CLI route: the installed `peanut` command against the real daemon."""
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    executable = str(Path(sys.executable).with_name("peanut"))
    cli = pr.CliTransport(executable, peanut_daemon.address, str(peanut_daemon.state_dir))
    placed = pr.remove_current_clip(resolve, mask_path=str(mask), server=cli, options=OPTIONS)
    check_placed(timeline, placed, mask)
    source = str(tmp_path / "footage" / "A001.mkv")
    # A refusal from the daemon comes back as its one line.
    beyond = pr.JobRequest(
        source, 30, 60, "", str(mask), str(tmp_path / "o" / "cleaned"), str(tmp_path / "o" / "matte"), OPTIONS
    )
    with pytest.raises(pr.ResolveScriptError, match=r"end frame 60 is past the end of A001.mkv, which has 40 frames"):
        cli.run(beyond)
    with pytest.raises(pr.ResolveScriptError, match="cannot run"):
        pr.CliTransport(str(tmp_path / "missing"), peanut_daemon.address).run(beyond)
