"""`peanut otio`: a Resolve-style export through the command, and the FCP 7 XML / EDL adapters."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from peanut_server.errors import InvalidRequest, OutputError
from peanut_server.otio import commands
from peanut_server.otio.timeline import CLEANED_TRACK, MATTE_TRACK, clip_prompt, run_timeline, source_frame_range
from tests.clips import decode_index
from tests.otio_support import make_square_video, read_png, simple_run_clip, square_frame

DATA = Path(__file__).parent / "data"


def resolve_export(tmp_path: Path) -> Path:
    (tmp_path / "media").mkdir()
    make_square_video(tmp_path / "media" / "A001C003.mkv", 40, fps=Fraction(24000, 1001))
    path = tmp_path / "Edit 1.otio"
    shutil.copy(DATA / "resolve_export.otio", path)
    return path


def check_cleaned(out: otio.schema.Timeline, base: Path, n_original: int) -> None:
    sources = [c for t in out.tracks[:n_original] if t.kind == "Video" for c in t.find_clips(shallow_search=True)]
    cleaned = [c for t in out.tracks if t.name == CLEANED_TRACK for c in t.find_clips(shallow_search=True)]
    assert len(cleaned) == 1
    src, res = sources[0], cleaned[0]
    assert res.range_in_parent() == src.range_in_parent()
    first, end = source_frame_range(src)
    assert (first, end) == (7, 19)
    for k in range(end - first):
        frame = read_png(res.media_reference.target_url_for_image_number(k))
        assert decode_index(frame) == first + k, k  # the index the frame carries
        original = square_frame(first + k)  # the generator, not a reader the run shares
        outside = ~np.isin(np.arange(frame.shape[1]), range(36, 64))[None, :].repeat(frame.shape[0], 0)
        assert np.array_equal(frame[outside], original[outside]), k


def test_resolve_export_through_peanut_otio(tmp_path, capsys):
    source = resolve_export(tmp_path)
    before = otio.adapters.read_from_file(str(source))
    out_path = tmp_path / "Edit 1 PEANUT.otio"
    code = commands.main([str(source), "-o", str(out_path), "--local", "--quiet"], run_clip=simple_run_clip)
    assert code == 0, capsys.readouterr().err
    assert "done: 12 frames" in capsys.readouterr().out
    again = otio.adapters.read_from_file(str(out_path))  # imports again with the same library
    assert again.metadata["Resolve_OTIO"] == {"Resolve OTIO Meta Version": "1.0"}
    assert again.global_start_time == before.global_start_time
    for old, new in zip(before.tracks, again.tracks):
        assert new.is_equivalent_to(old)
    assert [t.name for t in again.tracks] == ["Video 1", "Audio 1", CLEANED_TRACK, MATTE_TRACK]
    check_cleaned(again, tmp_path, 2)
    # Existing output without --overwrite: refused, exit status 2, one line.
    assert commands.main([str(source), "-o", str(out_path), "--local", "-q"], run_clip=simple_run_clip) == 2
    assert "exists" in capsys.readouterr().err


def test_fcp7_xml_in_and_out(tmp_path):
    source = resolve_export(tmp_path)
    timeline = otio.adapters.read_from_file(str(source))
    marker = timeline.video_tracks()[0].find_clips()[0].markers[0]
    marker.name = "peanut: the red square"  # the FCP 7 adapter writes marker names, not comments or notes
    xml = tmp_path / "cut.xml"
    otio.adapters.write_to_file(timeline, str(xml))
    result = run_timeline(xml, tmp_path / "cut_peanut.otio", tmp_path / "m", False, simple_run_clip)
    back = otio.adapters.read_from_file(result.output_path)
    assert [t.name for t in back.tracks][-2:] == [CLEANED_TRACK, MATTE_TRACK]
    check_cleaned(back, tmp_path, 2)
    # The FCP 7 writer has no form for PNG-sequence references: refused with the way out, no file left.
    with pytest.raises(OutputError, match="write .otio instead"):
        run_timeline(xml, tmp_path / "cut_peanut.xml", tmp_path / "m2", False, simple_run_clip)
    assert not (tmp_path / "cut_peanut.xml").exists()
    assert not list(tmp_path.glob(".cut_peanut*"))


def test_edl_without_media_start_is_refused_and_edl_cannot_hold_the_result(tmp_path):
    source = resolve_export(tmp_path)
    timeline = otio.adapters.read_from_file(str(source))
    timeline.tracks[:] = [timeline.tracks[0]]  # an EDL holds one video track
    timeline.tracks[0].find_clips()[0].markers[0].name = "peanut: the red square"
    edl = tmp_path / "cut.edl"
    otio.adapters.write_to_file(timeline, str(edl))
    # An EDL gives source timecode but not where the media starts: no guessing.
    with pytest.raises(InvalidRequest, match="where its media starts"):
        run_timeline(edl, tmp_path / "from_edl.otio", tmp_path / "m", False, simple_run_clip)
    # The prompt in the marker name survives the EDL.
    clip = otio.adapters.read_from_file(str(edl)).find_clips()[0]
    assert clip_prompt(clip).lower() == "the red square"  # CMX 3600 upper-cases comments
    # Writing the result as EDL: one video track only, refused with the way out.
    with pytest.raises(OutputError, match="write .otio instead"):
        run_timeline(source, tmp_path / "out.edl", tmp_path / "m2", False, simple_run_clip)
    assert not (tmp_path / "out.edl").exists()
