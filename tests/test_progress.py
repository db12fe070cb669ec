"""Reporter: the progress a job shows counts the frames of the range, per stage (issue 15, point 1)."""

from __future__ import annotations

import pytest

from peanut_server.errors import JobCancelled
from peanut_server.progress import Reporter


def recorded() -> tuple[Reporter, list[tuple[str, int, int]]]:
    seen: list[tuple[str, int, int]] = []
    return Reporter(callback=lambda s: seen.append((s.stage, s.done, s.total))), seen


def test_a_backends_own_count_inside_a_pipeline_stage_is_not_counted_again():
    reporter, seen = recorded()
    reporter.stage("masking", 4, outer=True)
    reporter.stage("mask", 4)  # the masker announces its own count...
    for _ in range(4):
        reporter.advance()  # ...and advances per frame
        reporter.advance(outer=True)  # the pipeline advances per mask written
    assert {stage for stage, _, _ in seen} == {"masking"}
    assert seen[-1] == ("masking", 4, 4)
    assert all(done <= total for _, done, total in seen)


def test_every_pipeline_stage_ends_at_its_total_and_the_next_one_takes_over():
    reporter, seen = recorded()
    for name in ("masking", "erasing", "writing"):
        reporter.stage(name, 3, outer=True)
        reporter.advance(3, outer=True)
        reporter.advance(2)  # an upscaler's frames: not the stage's count
    finals = {stage: (done, total) for stage, done, total in seen}
    assert finals == {"masking": (3, 3), "erasing": (3, 3), "writing": (3, 3)}


def test_a_backend_alone_still_reports_its_own_stage():
    reporter, seen = recorded()
    reporter.stage("mask", 2)
    reporter.advance()
    reporter.advance()
    assert seen[-1] == ("mask", 2, 2)


def test_after_a_finished_pipeline_stage_a_new_plain_stage_shows():
    # A timeline job names each clip, then runs the pipeline on it, clip after clip.
    reporter, seen = recorded()
    reporter.stage("clip 1/2", 2)
    reporter.stage("writing", 2, outer=True)
    reporter.advance(2, outer=True)
    reporter.stage("clip 2/2", 2)
    assert seen[-1] == ("clip 2/2", 0, 2)


def test_ignored_advances_still_honour_a_cancel():
    reporter, _ = recorded()
    reporter.stage("erasing", 5, outer=True)
    reporter.cancel_event.set()
    with pytest.raises(JobCancelled):
        reporter.advance()


def test_a_removal_shows_masking_erasing_writing_each_ending_at_the_frame_count(tmp_path, shared_data):
    """The whole pipeline: the motion masker and the Lanczos upscaler report counts of their own."""
    import cv2

    from peanut_server.api import peanut_pb2 as pb
    from peanut_server.pipeline import Pipeline, spec_from_request
    from tests.clips import read_davis

    frames, masks = read_davis(shared_data / "davis" / "tennis", 6)
    ys, xs = masks[1].nonzero()
    box = pb.Box(x0=float(xs.min()), y0=float(ys.min()), x1=float(xs.max() + 1), y1=float(ys.max() + 1))
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    request = pb.SubmitRequest(
        source=pb.MediaRange(path=str(folder), start_frame=1, end_frame=5),
        mask=pb.MaskSpec(frame_prompts=[pb.FramePrompt(frame=1, box=box)]),  # the player, tracked
        mode=pb.MODE_REMOVE,
        options=pb.Options(masker="motion", eraser="telea", upscaler="lanczos", working_height=240),
        output=pb.OutputSpec(path=str(tmp_path / "out")),
    )
    reporter, seen = recorded()
    Pipeline().run(spec_from_request(request), reporter, job_id="progress")
    stages = [stage for i, (stage, _, _) in enumerate(seen) if i == 0 or seen[i - 1][0] != stage]
    assert stages == ["masking", "erasing", "writing"], stages
    assert all(done <= total == 4 for _, done, total in seen), seen
    assert {stage: done for stage, done, _ in seen} == {"masking": 4, "erasing": 4, "writing": 4}
