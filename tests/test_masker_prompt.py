"""Prompt words a masker can and cannot check (masker/prompt.py), and box/point checks."""

from __future__ import annotations

import pytest

from peanut_server.errors import PromptError
from peanut_server.masker import FramePrompt, GroundedTrackerMasker, MaskPrompt, MotionMasker, PointPrompt, Sam3Masker
from peanut_server.masker.prompt import PromptNotUnderstood, check_frame_prompts, refusal_message, words_without_meaning


def test_object_names_are_the_words_the_no_weights_masker_cannot_check():
    assert words_without_meaning("the red car on the left") == ["car"]
    assert words_without_meaning("the biggest moving red one") == []
    assert words_without_meaning("the dog and the dog") == ["dog"]
    # With a box the object is already picked: size and order words have nothing to compare.
    assert words_without_meaning("the biggest red ball", with_box=True) == ["ball", "biggest"]
    assert words_without_meaning("") == []


def test_only_the_no_weights_masker_reports_unchecked_words():
    prompt = MaskPrompt(text="the elephant on the right")
    assert MotionMasker.unchecked_words(prompt) == ["elephant"]
    # Learned backends read object names: nothing changes for them.
    assert GroundedTrackerMasker.unchecked_words(prompt) == [] and Sam3Masker.unchecked_words(prompt) == []


def test_refusal_is_one_line_that_names_the_words_and_the_ways_out():
    message = refusal_message("motion", ["elephant", "juggler"])
    assert "\n" not in message and '"elephant", "juggler"' in message
    for way_out in ("--box", "--point", "--mask", "peanut models pull", "--approximate"):
        assert way_out in message
    assert PromptNotUnderstood(message).status == "FAILED_PRECONDITION"


@pytest.mark.parametrize(
    "prompts, words",
    [
        ([FramePrompt(frame=12, box=(0, 0, 10, 10))], "outside the range 0..9"),
        ([FramePrompt(frame=2, box=(5, 5, 5, 20))], "empty"),
        ([FramePrompt(frame=2, box=(50, 5, 70, 20))], "reaches outside the 64x48 frame"),
        ([FramePrompt(frame=2, points=[PointPrompt(10, 60)])], "outside the 64x48 frame"),
        ([FramePrompt(frame=2, points=[PointPrompt(10, 10, positive=False)])], "only excluded points"),
        ([FramePrompt(frame=2)], "only excluded points"),
    ],
)
def test_bad_boxes_and_points_are_named(prompts, words):
    with pytest.raises(PromptError, match=words):
        check_frame_prompts(prompts, 64, 48, 0, 10)


def test_an_empty_frame_prompt_with_a_mask_file_is_the_frame_to_track_from():
    check_frame_prompts([FramePrompt(frame=3)], 64, 48, 0, 10, mask_given=True)
    assert MaskPrompt(mask_path="/m.png", frame_prompts=[FramePrompt(frame=3)]).tracked_mask_frame == 3
    assert MaskPrompt(mask_path="/m.png").tracked_mask_frame is None
    assert MaskPrompt(mask_path="/m.png", frame_prompts=[FramePrompt(3, box=(0, 0, 4, 4))]).tracked_mask_frame is None


def test_two_prompts_on_one_frame_are_refused_not_half_read():
    twice = [FramePrompt(4, box=(0, 0, 4, 4)), FramePrompt(4, points=[PointPrompt(2, 2)])]
    with pytest.raises(PromptError, match="frame 4 has more than one"):
        check_frame_prompts(twice, 64, 48, 0, 10)


def test_boxes_after_a_tracked_mask_frame_are_corrections_and_before_it_are_refused():
    later = [FramePrompt(frame=3), FramePrompt(7, box=(0, 0, 4, 4))]
    assert MaskPrompt(mask_path="/m.png", frame_prompts=later).tracked_mask_frame == 3
    check_frame_prompts(later, 64, 48, 0, 10, mask_given=True)
    earlier = [FramePrompt(frame=3), FramePrompt(2, box=(0, 0, 4, 4))]
    with pytest.raises(PromptError, match="before the tracked mask's frame"):
        check_frame_prompts(earlier, 64, 48, 0, 10, mask_given=True)


def test_a_refusal_says_where_each_object_is_and_its_colours():
    # Issue 15, point 3: "(their colours: orange/brown, blue)" did not say which object is which.
    import numpy as np

    from peanut_server.masker.candidates import Candidate
    from peanut_server.masker.prompt import parse_prompt
    from peanut_server.masker.ranking import rank_candidates

    def candidate(x: float, colours: dict[str, float]) -> Candidate:
        return Candidate(
            mask=np.zeros((90, 160), bool), bbox=(0, 0, 1, 1), area=100, centroid=(x, 45.0), colours=colours
        )

    objects = [candidate(20, {"orange": 0.6, "brown": 0.3}), candidate(140, {"blue": 0.9})]
    with pytest.raises(PromptError) as refused:
        rank_candidates(parse_prompt("the green car"), objects, (160, 90))
    assert "left, orange/brown" in refused.value.message and "right, blue" in refused.value.message
    with pytest.raises(PromptError) as ambiguous:
        rank_candidates(parse_prompt("the car"), objects, (160, 90))
    assert "left, orange/brown" in ambiguous.value.message and "right, blue" in ambiguous.value.message
