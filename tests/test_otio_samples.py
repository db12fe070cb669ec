"""`peanut otio` on OpenTimelineIO's own sample timelines (tests/data), media relinked to real clips.

Every prompted clip is either cleaned and placed at its range in the top-level
timeline, or named with the reason it was not; the exit status says which.
Which source frame each timeline frame should show comes from OTIO itself
(Item.transformed_time), and each cleaned frame is checked by the index it
carries and against the generator's frame, never through a reader the run shares.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from peanut_server.otio import commands
from peanut_server.otio.timeline import CLEANED_TRACK
from tests.clips import decode_index
from tests.otio_support import make_square_video, read_png, simple_run_clip, square_frame

DATA = Path(__file__).parent / "data"
RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def relink(timeline: otio.schema.Timeline, media: Path, frames: int, rate: float, names=None) -> None:
    """Point clips (all, or those named) at `media`, whose frame i is square_frame(i)."""
    for clip in timeline.find_clips():
        if names is None or clip.name in names:
            clip.media_reference = otio.schema.ExternalReference(
                target_url=media.as_uri(), available_range=TR(RT(0, rate), RT(frames, rate))
            )


def prompt(timeline: otio.schema.Timeline, names: list[str], text: str = "the red square") -> None:
    for clip in timeline.find_clips():
        if clip.name in names:
            clip.metadata["peanut"] = {"prompt": text}


def cleaned_clips(out: otio.schema.Timeline) -> dict[str, otio.schema.Clip]:
    return {
        c.metadata["peanut"]["source_clip"]: c
        for t in out.tracks
        if t.name.startswith(CLEANED_TRACK)
        for c in t.find_clips(shallow_search=True)
    }


def check_frames(out: otio.schema.Timeline, result: otio.schema.Clip, source: otio.schema.Clip, top_track) -> None:
    """Each timeline frame of `result` shows the cleaned version of what `source` shows there (per OTIO)."""
    placed = result.range_in_parent()
    rate = placed.duration.rate
    n = int(round(placed.duration.value))
    media_start = source.media_reference.available_range.start_time
    ref = result.media_reference
    for k in range(n):
        when = placed.start_time + RT(k, rate)
        expected = int(round((top_track.transformed_time(when, source) - media_start).value))
        path = Path(ref.target_url_for_image_number(k))
        cleaned = read_png(path)
        assert decode_index(cleaned) == expected, (source.name, k)
        matte = read_png(path.parent.parent / "matte" / path.name)
        outside = matte == 0
        assert outside.mean() > 0.5
        assert np.array_equal(cleaned[outside], square_frame(expected)[outside]), (source.name, k)


def run(source: Path, out: Path, capsys, *extra: str) -> tuple[int, dict, str]:
    code = commands.main(
        [str(source), "-o", str(out), "--local", "--quiet", "--json", *extra], run_clip=simple_run_clip
    )
    captured = capsys.readouterr()
    job = json.loads(captured.out.strip().splitlines()[-1])
    return code, job, captured.err


def test_nested_example(tmp_path, capsys):
    timeline = otio.adapters.read_from_file(str(DATA / "nested_example.otio"))
    media = make_square_video(tmp_path / "shot.mkv", 480, fps=24)
    relink(timeline, media, 480, 24)
    marked = ["Normal Clip 2", "Clip Inside A Stack 1", "Clip Inside A Stack 2", "Clip Inside A Track"]
    prompt(timeline, marked)
    source = tmp_path / "nested.otio"
    otio.adapters.write_to_file(timeline, str(source))

    code, job, err = run(source, tmp_path / "out.otio", capsys)
    assert code == 1, err  # something was refused
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    refusals = [w for w in job.get("warnings", []) if w.startswith("not cleaned")]
    assert len(refusals) == 2, job.get("warnings")
    assert any(
        "'Clip Inside A Stack 2'" in w and "retime" in w and "Nested Stack 2 (with effects)" in w for w in refusals
    )
    assert any("'Clip Inside A Track'" in w and "freeze frame" in w for w in refusals)
    for line in refusals:
        assert line in err  # said on the terminal too
    assert "2 prompted clips were not cleaned" in err

    out = otio.adapters.read_from_file(str(tmp_path / "out.otio"))
    top = out.tracks[0]
    sources = {c.name: c for c in out.tracks[0].find_clips()}
    results = cleaned_clips(out)
    assert sorted(results) == ["Clip Inside A Stack 1", "Normal Clip 2"]
    # The nested clip shows 31 of its 37 frames (its stack is trimmed): placed at 238..268.
    assert results["Clip Inside A Stack 1"].range_in_parent() == TR(RT(238, 24), RT(31, 24))
    assert results["Normal Clip 2"].range_in_parent() == TR(RT(269, 24), RT(33, 24))
    for name, result in results.items():
        check_frames(out, result, sources[name], top)
    # The refusals are in the written timeline too.
    assert sorted(r["clip"] for r in out.metadata["peanut"]["not_cleaned"]) == [
        "Clip Inside A Stack 2",
        "Clip Inside A Track",
    ]


def test_transition_example(tmp_path, capsys):
    timeline = otio.adapters.read_from_file(str(DATA / "transition.otio"))
    media = make_square_video(tmp_path / "shot.mkv", 120, fps=24)
    for clip in timeline.find_clips():  # keep each clip's media start (Clip-004's starts at frame 100)
        start = clip.media_reference.available_range.start_time
        clip.media_reference = otio.schema.ExternalReference(
            target_url=media.as_uri(), available_range=TR(start, RT(120 - start.value, 24))
        )
    prompt(timeline, ["Clip-002", "Clip-004"])
    source = tmp_path / "transition.otio"
    otio.adapters.write_to_file(timeline, str(source))
    code, job, err = run(source, tmp_path / "out.otio", capsys)
    assert code == 0, err
    out = otio.adapters.read_from_file(str(tmp_path / "out.otio"))
    sources = {c.name: c for c in out.tracks[0].find_clips()}
    results = cleaned_clips(out)
    assert sorted(results) == ["Clip-002", "Clip-004"]
    for name, result in results.items():
        assert result.range_in_parent() == sources[name].range_in_parent()
        check_frames(out, result, sources[name], out.tracks[0])
    # The dissolve out of Clip-002 shows frames past its cut, which are not cleaned: said, not hidden.
    assert any("Clip-002" in w and "transition" in w for w in job.get("warnings", [])), job.get("warnings")


def test_premiere_example(tmp_path, capsys):
    timeline = otio.adapters.read_from_file(str(DATA / "premiere_example.otio"))
    media = make_square_video(tmp_path / "anim.mkv", 400, fps=30)
    relink(timeline, media, 400, 30, names={"sc01_sh010_anim.mov", "sc01_sh030_anim.mov"})
    video = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    first = next(iter(video[0].find_clips()))  # its range is written at 15 fps over 30 fps media
    first.metadata["peanut"] = {"prompt": "the red square"}
    remote = video[1].find_clips(shallow_search=True)[1]  # sc01_sh020: on a Windows drive, not relinked
    remote.metadata["peanut"] = {"prompt": "the red square"}
    other_host = video[1].find_clips(shallow_search=True)[2]  # sc01_sh030: a file on another machine
    other_host.media_reference.target_url = "file://fileserver/media/sc01_sh030_anim.mov"
    other_host.metadata["peanut"] = {"prompt": "the red square"}
    source = tmp_path / "premiere.otio"
    otio.adapters.write_to_file(timeline, str(source))

    code, job, err = run(source, tmp_path / "out.otio", capsys)
    assert code == 1, err
    refusals = [w for w in job.get("warnings", []) if w.startswith("not cleaned")]
    assert any("sc01_sh020_anim.mov" in w and "Windows path (D:/media/sc01_sh020_anim.mov)" in w for w in refusals), (
        refusals
    )
    assert any(
        "sc01_sh030_anim.mov" in w and "file://fileserver/" in w and "not on this computer" in w for w in refusals
    ), refusals
    out = otio.adapters.read_from_file(str(tmp_path / "out.otio"))
    results = cleaned_clips(out)
    assert list(results) == ["sc01_sh010_anim.mov"]
    result = results["sc01_sh010_anim.mov"]
    source_clip = next(iter(out.tracks[0].find_clips()))
    assert result.range_in_parent().duration.to_seconds() == pytest.approx(
        source_clip.range_in_parent().duration.to_seconds()
    )
    assert result.media_reference.rate == 30  # the media's rate, all 100 frames
    check_frames(out, result, source_clip, out.tracks[0])


def test_everything_refused_is_an_error_naming_each_clip(tmp_path, capsys):
    timeline = otio.adapters.read_from_file(str(DATA / "nested_example.otio"))  # media: MissingReference
    prompt(timeline, ["Normal Clip 1", "Clip Inside A Track"])
    source = tmp_path / "nested.otio"
    otio.adapters.write_to_file(timeline, str(source))
    code = commands.main([str(source), "-o", str(tmp_path / "out.otio"), "--local", "-q"], run_clip=simple_run_clip)
    err = capsys.readouterr().err
    assert code == 2
    assert "'Normal Clip 1'" in err and "no media" in err and "'Clip Inside A Track'" in err
    assert not (tmp_path / "out.otio").exists()


def test_nested_example_with_the_real_pipeline(tmp_path, capsys):
    """The same timeline through `peanut otio --local`: PEANUT's own pipeline, no stand-in."""
    import cv2

    timeline = otio.adapters.read_from_file(str(DATA / "nested_example.otio"))
    media = make_square_video(tmp_path / "shot.mkv", 480, fps=24)
    relink(timeline, media, 480, 24)
    mask = np.zeros((48, 64), np.uint8)
    mask[28:48, 38:64] = 255  # every position of the moving square
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    for clip in timeline.find_clips():
        if clip.name in ("Normal Clip 2", "Clip Inside A Stack 1", "Clip Inside A Stack 2"):
            clip.metadata["peanut"] = {"mask": str(tmp_path / "mask.png")}
    source = tmp_path / "nested.otio"
    otio.adapters.write_to_file(timeline, str(source))
    code = commands.main(
        [
            str(source),
            "-o",
            str(tmp_path / "out.otio"),
            "--local",
            "-q",
            "--eraser",
            "telea",
            "--mask-dilation",
            "2",
            "--feather",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1, err
    assert "'Clip Inside A Stack 2'" in err and "retime" in err
    out = otio.adapters.read_from_file(str(tmp_path / "out.otio"))
    results = cleaned_clips(out)
    assert sorted(results) == ["Clip Inside A Stack 1", "Normal Clip 2"]
    top = out.tracks[0]
    sources = {c.name: c for c in top.find_clips()}
    outside = cv2.dilate(mask, np.ones((15, 15), np.uint8)) == 0
    for name, result in results.items():
        placed = result.range_in_parent()
        for k in range(int(placed.duration.value)):
            expected = int(top.transformed_time(placed.start_time + RT(k, 24), sources[name]).value)
            frame = read_png(result.media_reference.target_url_for_image_number(k))
            assert decode_index(frame) == expected, (name, k)
            assert np.array_equal(frame[outside], square_frame(expected)[outside]), (name, k)
            assert not np.array_equal(frame, square_frame(expected))  # the square is gone
    assert results["Clip Inside A Stack 1"].range_in_parent() == TR(RT(238, 24), RT(31, 24))
    assert results["Normal Clip 2"].range_in_parent() == sources["Normal Clip 2"].range_in_parent()


def test_nested_example_through_the_daemon(tmp_path, daemon, capsys):
    """`peanut otio` with the daemon: the refusals are in the job's warnings, and the exit status is 1."""
    import cv2

    timeline = otio.adapters.read_from_file(str(DATA / "nested_example.otio"))
    media = make_square_video(tmp_path / "shot.mkv", 480, fps=24)
    relink(timeline, media, 480, 24)
    mask = np.zeros((48, 64), np.uint8)
    mask[28:48, 38:64] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    for clip in timeline.find_clips():
        if clip.name in ("Clip Inside A Stack 1", "Clip Inside A Track"):
            clip.metadata["peanut"] = {"mask": str(tmp_path / "mask.png")}
    source = tmp_path / "nested.otio"
    otio.adapters.write_to_file(timeline, str(source))
    code = commands.main(
        [
            str(source),
            "-o",
            str(tmp_path / "out.otio"),
            "--server",
            daemon.address,
            "--state-dir",
            str(daemon.state_dir),
            "-q",
            "--json",
            "--eraser",
            "telea",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1, captured.err
    job = json.loads(captured.out.strip().splitlines()[-1])
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    assert [w for w in job["warnings"] if w.startswith("not cleaned")] == [
        "not cleaned: clip 'Clip Inside A Track' in 'Nested Track' on track 'Top Level Track': "
        "a freeze frame (FreezeFrame on 'Nested Track'): PEANUT needs frames at 100% speed"
    ]
    out = otio.adapters.read_from_file(str(tmp_path / "out.otio"))
    assert cleaned_clips(out)["Clip Inside A Stack 1"].range_in_parent() == TR(RT(238, 24), RT(31, 24))
