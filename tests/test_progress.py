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
    reporter.stage("mask", 4)            # the masker announces its own count...
    for _ in range(4):
        reporter.advance()               # ...and advances per frame
        reporter.advance(outer=True)     # the pipeline advances per mask written
    assert {stage for stage, _, _ in seen} == {"masking"}
    assert seen[-1] == ("masking", 4, 4)
    assert all(done <= total for _, done, total in seen)


def test_every_pipeline_stage_ends_at_its_total_and_the_next_one_takes_over():
    reporter, seen = recorded()
    for name in ("masking", "erasing", "writing"):
        reporter.stage(name, 3, outer=True)
        reporter.advance(3, outer=True)
        reporter.advance(2)              # an upscaler's frames: not the stage's count
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
