"""Text prompts, mask previews and timelines, end to end through a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import opentimelineio as otio
import pytest

from peanut_server.api import peanut_pb2 as pb
from peanut_server.client import ClientError
from peanut_server.media import frame_filename
from peanut_server.metrics.masks import evaluate
from tests.otio_support import make_square_video, read_png, square_frame
from tests.synthetic import MovingObject, composite_clip

REPO = Path(__file__).resolve().parents[1]
SIZE = (320, 192)
RED, BLUE = (215, 40, 40), (40, 70, 200)


@pytest.fixture(scope="module")
def two_discs(tmp_path_factory, shared_data: Path):
    """A panning real background with a red and a blue textured disc; PNG folder + true masks."""
    image = cv2.cvtColor(cv2.imread(str(shared_data / "davis" / "tennis" / "00000.png")), cv2.COLOR_BGR2RGB)
    objects = [
        MovingObject(RED, (60, 60), (170, 120), radius=18, seed=1),
        MovingObject(BLUE, (260, 140), (170, 40), radius=18, seed=2),
    ]
    frames, truth = composite_clip(image, objects, 20, SIZE, pan=(0.7, 0.2))
    folder = tmp_path_factory.mktemp("discs") / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder, frames, truth


def test_remove_by_prompt_through_the_cli(daemon, two_discs, tmp_path):
    folder, frames, truth = two_discs
    out = tmp_path / "cleaned"
    env = dict(os.environ, PEANUT_STATE_DIR=str(daemon.state_dir))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "peanut_server.cli",
            "remove",
            str(folder),
            "-o",
            str(out),
            "--prompt",
            "the red ball",
            "--approximate",
            "--json",
            "-q",
            "--matte-mode",
            "object",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    result = job["result"]
    backends = {b["stage"]: b["backend"] for b in result["backends"]}
    assert backends["STAGE_MASKER"] == "motion"
    assert result["ignored_words"] == ["ball"]  # the no-weights masker checked "red" only
    # The ignored word is named once in the job (it is sent live, and the result repeats it).
    assert sum("approximate" in w for w in job["warnings"]) == 1, job["warnings"]
    assert "red" in result["chosen_object"] and result["chosen_score"] > 0.5
    mattes = [
        cv2.imread(os.path.join(result["matte_path"], frame_filename(i)), cv2.IMREAD_GRAYSCALE) > 127 for i in range(20)
    ]
    assert evaluate(mattes, truth[0]).JF >= 0.85
    # The red disc is gone, the blue one is untouched.
    for i in (5, 10, 15):
        cleaned = read_png(str(out / frame_filename(i)))
        red_left = np.abs(cleaned[truth[0][i]].astype(int) - RED).max(axis=1) < 45
        assert red_left.mean() < 0.05
        blue = truth[1][i] & ~cv2.dilate(truth[0][i].astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
        assert np.array_equal(cleaned[blue], frames[i][blue])


def test_preview_mask_for_one_frame(daemon, two_discs):
    folder, _, truth = two_discs
    with daemon.client() as client:
        reply = client.preview_mask(str(folder), 10, prompt="the blue ball", approximate=True)
    mask = cv2.imdecode(np.frombuffer(reply.mask_png, np.uint8), cv2.IMREAD_GRAYSCALE) > 127
    assert (reply.width, reply.height) == SIZE and mask.shape == (SIZE[1], SIZE[0])
    assert reply.backend == "motion" and "blue" in reply.chosen_object
    iou = (mask & truth[1][10]).sum() / (mask | truth[1][10]).sum()
    assert iou > 0.7 and reply.mask_pixels == int(mask.sum())


def test_bad_prompts_get_actionable_messages(daemon, two_discs, tmp_path):
    folder, _, _ = two_discs
    with daemon.client() as client:
        with pytest.raises(ClientError) as err:
            client.submit(str(folder), output_path=str(tmp_path / "o"), prompt="   ")
        assert err.value.code == "INVALID_ARGUMENT" and "nothing to remove" in err.value.message
        # A noun the no-weights masker cannot check: refused at submit, before any work.
        with pytest.raises(ClientError) as err:
            client.submit(str(folder), output_path=str(tmp_path / "o1"), prompt="the green car")
        assert err.value.code == "FAILED_PRECONDITION" and '"car"' in err.value.message
        assert not (tmp_path / "o1").exists()
        job = client.submit(str(folder), output_path=str(tmp_path / "o2"), prompt="the green car", approximate=True)
        final = client.wait(job.id, timeout=300)
        assert final.state == pb.JOB_STATE_FAILED
        assert "green" in final.error and final.error_code.startswith("PROMPT_")
        assert not (tmp_path / "o2").exists()
        job = client.submit(str(folder), output_path=str(tmp_path / "o3"), prompt="the ball", approximate=True)
        final = client.wait(job.id, timeout=300)
        assert final.state == pb.JOB_STATE_FAILED and final.error_code.startswith("PROMPT_")
        assert any(word in final.error for word in ("colour", "left", "right", "biggest")), final.error


def test_process_timeline_through_the_daemon(daemon, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    make_square_video(media / "A001.mkv", 40, fps=Fraction(25))
    mask = np.zeros((48, 64), np.uint8)
    mask[28:48, 36:64] = 255  # covers the moving red square's whole path
    cv2.imwrite(str(media / "square_mask.png"), mask)
    timeline = otio.schema.Timeline(name="cut", global_start_time=otio.opentime.RationalTime(90000, 25))
    track = otio.schema.Track(name="V1")
    timeline.tracks.append(track)
    track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(duration=otio.opentime.RationalTime(10, 25))))
    clip = otio.schema.Clip(
        name="A001",
        media_reference=otio.schema.ExternalReference(
            target_url="media/A001.mkv",
            available_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, 25), otio.opentime.RationalTime(40, 25)
            ),
        ),
        source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(7, 25), otio.opentime.RationalTime(12, 25)),
        metadata={"peanut": {"mask": "media/square_mask.png"}},
    )
    track.append(clip)
    source = tmp_path / "cut.otio"
    otio.adapters.write_to_file(timeline, str(source))
    out = tmp_path / "cut_peanut.otio"
    with daemon.client() as client:
        job = client.process_timeline(
            str(source), str(out), str(tmp_path / "peanut_media"), options={"eraser": "telea"}
        )
        final = client.wait(job.id, timeout=300)
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
    result = otio.adapters.read_from_file(str(out))
    assert result.tracks[0].is_equivalent_to(timeline.tracks[0])
    cleaned = [t for t in result.tracks if t.name == "PEANUT cleaned"][0]
    placed = list(cleaned.find_clips())
    assert len(placed) == 1 and placed[0].range_in_parent() == clip.range_in_parent()
    # Frame identity and untouched pixels: cleaned frame i is source frame 7 + i, equal to it
    # (lossless in, PNG out) everywhere away from the mask, its dilation and feather.
    outside = cv2.dilate(mask, np.ones((33, 33), np.uint8)) == 0
    reference = placed[0].media_reference
    assert reference.number_of_images_in_sequence() == 12
    for i in range(12):
        cleaned_frame = read_png(reference.target_url_for_image_number(i))
        assert cleaned_frame.shape == (48, 64, 3)
        assert np.array_equal(cleaned_frame[outside], square_frame(7 + i)[outside]), i
    assert final.result.output_files
