"""peanut_server.otio.timeline: which clips are cleaned, over which frames, and what the output holds."""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import opentimelineio as otio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peanut_server.errors import InvalidRequest, OutputError, OutputExists
from peanut_server.otio.timeline import (
    CLEANED_TRACK,
    MATTE_TRACK,
    collect_clip_jobs,
    read_timeline,
    run_timeline,
    source_frame_range,
    source_frame_to_timeline,
    timeline_to_source_frame,
)
from tests.clips import decode_index
from tests.otio_support import make_square_folder, read_png, simple_run_clip, square_frame

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange
NTSC = 24000 / 1001


def _clip(name, url, rate, media_start, media_frames, trim, frames, written_rate=None):
    """A clip whose media starts at timecode frame media_start; it shows media frames trim..trim+frames-1.

    `written_rate` writes the clip's own range at a differently spelled rate
    (e.g. 23.976 against a reference at 24000/1001), as some exporters do.
    """
    clip_rate = written_rate or rate
    ref = otio.schema.ExternalReference(
        target_url=url, available_range=TR(RT(media_start, rate), RT(media_frames, rate))
    )
    return otio.schema.Clip(
        name=name, media_reference=ref, source_range=TR(RT(media_start + trim, clip_rate), RT(frames, clip_rate))
    )


def build_timeline(
    root: Path, rate: float, global_start: int, written_rate: float | None = None
) -> otio.schema.Timeline:
    """Several tracks, gaps, a transition, markers, effects, metadata, audio; three clips ask for cleaning."""
    make_square_folder(root / "shotA", 40)
    make_square_folder(root / "shotB", 30)
    make_square_folder(root / "shotD", 30)
    mask = np.zeros((48, 64), np.uint8)
    mask[4:16, 4:20] = 255
    (root / "masks").mkdir()
    cv2.imwrite(str(root / "masks" / "box.png"), mask)

    timeline = otio.schema.Timeline(
        name="cut", global_start_time=RT(global_start, rate), metadata={"studio": {"rev": 3}}
    )
    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video, metadata={"locked": False})
    v1.append(otio.schema.Gap(source_range=TR(duration=RT(7, rate))))
    a = _clip("shotA", str(root / "shotA"), rate, 3600, 40, 12, 15, written_rate)
    a.markers.append(
        otio.schema.Marker(name="peanut", marked_range=TR(RT(3612, rate), RT(1, rate)), comment="the red square")
    )
    a.markers.append(otio.schema.Marker(name="note", marked_range=TR(RT(3613, rate), RT(1, rate)), comment="keep me"))
    a.effects.append(otio.schema.Effect(name="grade", effect_name="ColorCorrect", metadata={"lift": 0.1}))
    v1.append(a)
    v1.append(
        otio.schema.Transition(
            name="dissolve",
            transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
            in_offset=RT(3, rate),
            out_offset=RT(3, rate),
        )
    )
    b = _clip("shotB", "shotB", rate, 0, 30, 5, 10)  # relative path, no request
    v1.append(b)
    c = _clip("shotB again", "shotB", rate, 0, 30, 2, 12)
    c.metadata["peanut"] = {"mask": "masks/box.png"}  # relative to the timeline file
    v1.append(c)
    v2 = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    v2.append(otio.schema.Gap(source_range=TR(duration=RT(10, rate))))
    d = _clip("shotD", str(root / "shotD"), rate, 0, 30, 4, 9)
    d.metadata["peanut.prompt"] = "red square"
    v2.append(d)
    v2.markers.append(otio.schema.Marker(name="track marker", marked_range=TR(RT(0, rate), RT(1, rate))))
    a1 = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    a1.append(
        otio.schema.Clip(
            name="music",
            media_reference=otio.schema.ExternalReference(target_url="music.wav"),
            source_range=TR(RT(0, rate), RT(40, rate)),
        )
    )
    timeline.tracks.extend([v1, v2, a1])
    return timeline


RATES = [(24.0, 86400, None), (25.0, 90000, None), (NTSC, 86314, 23.976)]


@pytest.mark.parametrize("rate,global_start,written", RATES, ids=["24", "25", "23.976"])
def test_round_trip_keeps_everything_and_aligns_results(tmp_path, rate, global_start, written):
    original = build_timeline(tmp_path, rate, global_start, written)
    source = tmp_path / "cut.otio"
    otio.adapters.write_to_file(original, str(source))
    before = otio.adapters.read_from_file(str(source))

    result = run_timeline(source, tmp_path / "out.otio", tmp_path / "media", False, simple_run_clip)
    out = otio.adapters.read_from_file(result.output_path)

    # Every original object survives unchanged.
    assert out.name == before.name and out.metadata == before.metadata
    assert out.global_start_time == before.global_start_time
    for old, new in zip(before.tracks, out.tracks):
        assert new.is_equivalent_to(old), old.name
    # A and "shotB again" (V1) share the cleaned track; D (V2) overlaps A, so it takes a second lane.
    assert [t.name for t in out.tracks[3:]] == [CLEANED_TRACK, f"{CLEANED_TRACK} 2", MATTE_TRACK, f"{MATTE_TRACK} 2"]
    assert all(t.kind == otio.schema.TrackKind.Video for t in out.tracks[3:])
    sources = {c.name: c for t in out.tracks[:2] for c in t.find_clips(shallow_search=True)}
    placed = [c for t in out.tracks if t.name.startswith(CLEANED_TRACK) for c in t.find_clips(shallow_search=True)]
    assert sorted(c.metadata["peanut"]["source_clip"] for c in placed) == ["shotA", "shotB again", "shotD"]
    for clip in placed:
        src = sources[clip.metadata["peanut"]["source_clip"]]
        assert clip.range_in_parent() == src.range_in_parent()
        # Every timeline frame of the result shows the cleaned version of the source frame shown there.
        first, end = source_frame_range(src)
        ref = clip.media_reference
        assert isinstance(ref, otio.schema.ImageSequenceReference)
        for k in range(end - first):
            when = source_frame_to_timeline(out, src, first + k)
            assert timeline_to_source_frame(out, src, when) == first + k
            path = Path(ref.target_url_for_image_number(k))
            assert path.name == f"frame_{first + k:06d}.png"
            cleaned = read_png(path)
            assert decode_index(cleaned) == first + k, (clip.name, k)  # the index the frame carries
            original_frame = square_frame(first + k)  # from the generator, not a reader the run shares
            matte = read_png(path.parent.parent / "matte" / path.name)
            outside = matte == 0
            assert outside.sum() > 0.5 * outside.size
            assert np.array_equal(cleaned[outside], original_frame[outside]), (clip.name, k)
    # Gaps fill everything else, so positions are exact on the new tracks.
    cleaned_track = out.tracks[3]
    assert any(isinstance(item, otio.schema.Gap) for item in cleaned_track)


def test_expected_source_ranges(tmp_path):
    timeline = build_timeline(tmp_path, 25.0, 90000)
    jobs = collect_clip_jobs(timeline, tmp_path)
    by_name = {j.clip_name: j for j in jobs}
    assert sorted(by_name) == ["shotA", "shotB again", "shotD"]
    assert (by_name["shotA"].start_frame, by_name["shotA"].end_frame) == (12, 27)
    assert by_name["shotA"].prompt == "the red square"
    assert (by_name["shotB again"].start_frame, by_name["shotB again"].end_frame) == (2, 14)
    assert by_name["shotB again"].mask_path == str(tmp_path / "masks" / "box.png")
    assert by_name["shotB again"].source_path == str(tmp_path / "shotB")
    assert (by_name["shotD"].start_frame, by_name["shotD"].prompt) == (4, "red square")
    # Timeline order: A starts at 7, D at 10, "shotB again" after A and B.
    assert [j.clip_name for j in jobs] == ["shotA", "shotD", "shotB again"]
    assert [j.index for j in jobs] == [0, 1, 2]


def test_overlapping_results_get_a_second_lane(tmp_path):
    timeline = build_timeline(tmp_path, 24.0, 0)
    source = tmp_path / "cut.otio"
    otio.adapters.write_to_file(timeline, str(source))
    out = read_timeline(run_timeline(source, tmp_path / "o.otio", None, False, simple_run_clip).output_path)
    names = [t.name for t in out.tracks]
    # A (frames 7..21) and D (10..18) overlap: D goes to a second cleaned lane.
    assert names[3:] == [CLEANED_TRACK, f"{CLEANED_TRACK} 2", MATTE_TRACK, f"{MATTE_TRACK} 2"]
    assert (tmp_path / "o_media").is_dir()  # default media folder beside the output


def test_refusals(tmp_path):
    timeline = build_timeline(tmp_path, 24.0, 0)
    source = tmp_path / "cut.otio"
    otio.adapters.write_to_file(timeline, str(source))
    (tmp_path / "exists.otio").write_text("{}")
    with pytest.raises(OutputExists):
        run_timeline(source, tmp_path / "exists.otio", tmp_path / "m", False, simple_run_clip)
    with pytest.raises(OutputError):
        run_timeline(source, source, tmp_path / "m", True, simple_run_clip)
    with pytest.raises(OutputError, match="inside the source folder"):
        run_timeline(source, tmp_path / "x.otio", tmp_path / "shotA" / "out", False, simple_run_clip)
    plain = copy.deepcopy(timeline)
    for clip in plain.find_clips():
        clip.markers[:] = [m for m in clip.markers if m.name != "peanut"]
        clip.metadata.pop("peanut", None)
        clip.metadata.pop("peanut.prompt", None)
    otio.adapters.write_to_file(plain, str(tmp_path / "plain.otio"))
    with pytest.raises(InvalidRequest, match="carries a prompt"):
        run_timeline(tmp_path / "plain.otio", tmp_path / "y.otio", tmp_path / "m", False, simple_run_clip)
    assert not (tmp_path / "x.otio").exists() and not (tmp_path / "y.otio").exists()


def test_clip_outside_available_range_is_refused(tmp_path):
    timeline = otio.schema.Timeline(name="t")
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    clip = _clip("early", str(tmp_path), 24.0, 100, 10, -5, 5)  # starts 5 frames before the media
    clip.metadata["peanut.prompt"] = "red"
    track.append(clip)
    timeline.tracks.append(track)
    with pytest.raises(InvalidRequest, match="outside its media"):
        collect_clip_jobs(timeline, tmp_path)


# -- property tests: timeline <-> clip <-> source frames ---------------------------------

RATE_SPELLINGS = [(24.0, 24.0), (25.0, 25.0), (NTSC, NTSC), (NTSC, 23.976), (30000 / 1001, 29.97), (50.0, 50.0)]


@settings(max_examples=150, deadline=None)
@given(
    rates=st.sampled_from(RATE_SPELLINGS),
    media_start=st.integers(0, 400_000),
    media_frames=st.integers(1, 5000),
    data=st.data(),
    gap=st.integers(0, 2000),
    global_start=st.integers(0, 400_000),
    serialise=st.booleans(),
)
def test_time_mapping_properties(rates, media_start, media_frames, data, gap, global_start, serialise):
    rate, written = rates
    trim = data.draw(st.integers(0, media_frames - 1), label="trim")
    frames = data.draw(st.integers(1, media_frames - trim), label="frames")
    timeline = otio.schema.Timeline(global_start_time=RT(global_start, written))
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    if gap:
        track.append(otio.schema.Gap(source_range=TR(duration=RT(gap, written))))
    track.append(_clip("c", "/m.mov", rate, media_start, media_frames, trim, frames, written))
    timeline.tracks.append(track)
    if serialise:  # JSON floats must not shift a frame either
        timeline = otio.adapters.read_from_string(otio.adapters.write_to_string(timeline))
    clip = next(iter(timeline.find_clips()))

    assert source_frame_range(clip) == (trim, trim + frames)
    k = data.draw(st.integers(0, frames - 1), label="k")
    when = source_frame_to_timeline(timeline, clip, trim + k)
    assert round(when.value_rescaled_to(rate)) == round(RT(global_start, written).value_rescaled_to(rate)) + gap + k
    assert timeline_to_source_frame(timeline, clip, when) == trim + k
    # One timeline frame later is one source frame later (no speed change), inside the clip.
    if k + 1 < frames:
        assert timeline_to_source_frame(timeline, clip, when + RT(1, when.rate)) == trim + k + 1
    else:
        with pytest.raises(InvalidRequest):
            timeline_to_source_frame(timeline, clip, when + RT(1, when.rate))


@given(rate=st.sampled_from([Fraction(24000, 1001), Fraction(25), Fraction(24)]), frames=st.integers(0, 10**6))
def test_frames_survive_float_rates(rate, frames):
    from peanut_server.otio.timeline import frames_at

    as_float = float(rate)
    assert frames_at(RT(frames, as_float), as_float) == frames
    # The same instant written at a rounded rate spelling maps to the same frame.
    if rate.denominator == 1001:
        assert frames_at(RT(frames, 23.976), as_float) == frames


# -- destinations and media URLs ------------------------------------------------------------


def _timeline_file(tmp_path: Path) -> Path:
    timeline = build_timeline(tmp_path, 24.0, 0)
    source = tmp_path / "cut.otio"
    otio.adapters.write_to_file(timeline, str(source))
    return source


def test_dangling_link_as_output_is_refused(tmp_path):
    source = _timeline_file(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    (chosen / "out.otio").symlink_to(elsewhere / "target.otio")  # dangling
    with pytest.raises(OutputError, match="symbolic link"):
        run_timeline(source, chosen / "out.otio", None, False, simple_run_clip)
    with pytest.raises(OutputError, match="symbolic link"):
        run_timeline(source, chosen / "out.otio", None, True, simple_run_clip)
    assert list(elsewhere.iterdir()) == []
    assert not (chosen / "out_media").exists()


def test_linked_media_folder_is_refused(tmp_path):
    source = _timeline_file(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    (chosen / "out_media").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputError, match="media folder .* symbolic link"):
        run_timeline(source, chosen / "out.otio", None, False, simple_run_clip)
    assert list(elsewhere.iterdir()) == [] and not (chosen / "out.otio").exists()
    # A link inside an existing media folder, where a clip's folder goes, is refused as well.
    (chosen / "out_media").unlink()
    (chosen / "out_media").mkdir()
    (chosen / "out_media" / "001_shotA").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputError, match="symbolic link"):
        run_timeline(source, chosen / "out.otio", None, True, simple_run_clip)
    assert list(elsewhere.iterdir()) == []


def test_daemon_request_with_a_linked_output_is_refused(tmp_path):
    from peanut_server.api import peanut_pb2 as pb
    from peanut_server.otio.jobs import validate_timeline_request

    source = _timeline_file(tmp_path)
    (tmp_path / "out.otio").symlink_to(tmp_path / "nowhere" / "x.otio")
    request = pb.ProcessTimelineRequest(timeline_path=str(source), output_path=str(tmp_path / "out.otio"))
    with pytest.raises(OutputError, match="symbolic link"):
        validate_timeline_request(request)


def test_media_urls(tmp_path):
    from peanut_server.errors import MediaNotFound
    from peanut_server.otio.timeline import url_to_path

    assert url_to_path("file:///media/a%20b.mov", tmp_path) == "/media/a b.mov"
    assert url_to_path("file://localhost/media/a.mov", tmp_path) == "/media/a.mov"
    assert url_to_path("shots/a.mov", tmp_path) == str(tmp_path / "shots" / "a.mov")
    with pytest.raises(MediaNotFound, match="'fileserver', not on this computer"):
        url_to_path("file://fileserver/share/a.mov", tmp_path)
    with pytest.raises(MediaNotFound, match="not a local file"):
        url_to_path("https://example.com/a.mov", tmp_path)
    with pytest.raises(MediaNotFound, match="Windows path"):
        url_to_path("file://localhost/D%3a/media/a.mov", tmp_path)


def test_remote_media_clip_is_named_and_the_rest_cleaned(tmp_path):
    timeline = build_timeline(tmp_path, 24.0, 0)
    shot_d = next(c for c in timeline.find_clips() if c.name == "shotD")
    shot_d.media_reference.target_url = "file://fileserver" + str(tmp_path / "shotD")
    refused = []
    jobs = collect_clip_jobs(timeline, tmp_path, refused=refused)
    assert [j.clip_name for j in jobs] == ["shotA", "shotB again"]
    assert [(r.clip_name, "not on this computer" in r.reason) for r in refused] == [("shotD", True)]
    with pytest.raises(InvalidRequest, match="shotD"):
        collect_clip_jobs(timeline, tmp_path)
