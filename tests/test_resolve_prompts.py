"""The Resolve door for boxes and the approximate checkbox (plugins/resolve, issue 11).

The scene and the fake Resolve come from tests/test_resolve_script.py; the daemon is real.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from tests.daemon import daemon  # noqa: F401  (fixture)
from tests.otio_support import square_box
from tests.test_resolve_script import LEFT, make_scene, pr


def test_a_box_reaches_the_daemon_and_masks_the_square(tmp_path, daemon):  # noqa: F811
    resolve, _, timeline, _, _, _ = make_scene(tmp_path)
    x0, y0, x1, y1 = square_box(LEFT)
    placed = pr.remove_current_clip(
        resolve,
        box=f"{LEFT}:{x0},{y0},{x1 - x0},{y1 - y0}",
        server=pr.GrpcTransport(daemon.address, str(daemon.state_dir)),
        options={"eraser": "telea"},
    )
    matte_dir = Path(placed.GetMediaPoolItem().files[0]).parents[1] / "matte"
    # The matte is the composite's alpha (the mask dilated and feathered): it must cover the
    # square, and stay near it.
    matte = cv2.imread(str(matte_dir / f"frame_{LEFT:06d}.png"), cv2.IMREAD_UNCHANGED) > 0
    square = matte.copy()
    square[:] = False
    square[y0:y1, x0:x1] = True
    assert (matte & square).sum() >= 0.9 * square.sum()
    assert matte.sum() <= 6 * square.sum()


def test_a_noun_with_a_box_is_refused_unless_approximate(tmp_path, daemon):  # noqa: F811
    resolve, _, _, _, _, _ = make_scene(tmp_path)
    x0, y0, x1, y1 = square_box(LEFT)
    box = f"{LEFT}:{x0},{y0},{x1 - x0},{y1 - y0}"
    transport = pr.GrpcTransport(daemon.address, str(daemon.state_dir))
    with pytest.raises(pr.ResolveScriptError, match='"square"'):
        pr.remove_current_clip(resolve, prompt="the square", box=box, server=transport, options={"eraser": "telea"})
    warnings: list[str] = []
    placed = pr.remove_current_clip(
        resolve,
        prompt="the square",
        box=box,
        approximate=True,
        server=transport,
        options={"eraser": "telea"},
        on_warning=warnings.append,
    )
    assert placed is not None
    # The editor is told which word was not checked (the job's warnings come back with the result).
    assert any('could not check "square"' in w for w in warnings), warnings


def test_the_cli_route_reads_the_jobs_warnings():
    job = {
        "state": "JOB_STATE_SUCCEEDED",
        "warnings": ["check frames 19, 22-24: the mask there does not look like the object on frame 0"],
        "result": {"outputPath": "/o/c", "mattePath": "/o/m", "frameCount": "25"},
    }
    outcome = pr.outcome_from_job_dict(job)
    assert outcome.frame_count == 25 and outcome.warnings == job["warnings"]
    del job["warnings"]
    assert pr.outcome_from_job_dict(job).warnings == []


def test_cli_transport_passes_the_box_and_approximate():
    request = pr.JobRequest("/m/a.mov", 3, 9, "the dog", "", "/o/c", "/o/m", box="4:10,20,30,40", approximate=True)
    argv = pr.CliTransport("peanut").command(request)
    assert argv[argv.index("--box") + 1] == "4:10,20,30,40" and "--approximate" in argv


def test_boxes_on_several_frames_reach_both_routes():
    # The second box corrects the tracking from frame 19 on (a "check frames 19" warning's answer).
    request = pr.JobRequest("/m/a.mov", 0, 40, "", "", "/o/c", "/o/m", box="0:10,20,30,40; 19:50,60,30,40")
    argv = pr.CliTransport("peanut").command(request)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--box"] == ["0:10,20,30,40", "19:50,60,30,40"]
    assert pr.parse_boxes(request.box) == [(0, 10, 20, 30, 40), (19, 50, 60, 30, 40)]
    with pytest.raises(pr.ResolveScriptError, match="one box per frame"):
        pr.parse_boxes("4:1,2,3,4;4:5,6,7,8")


def test_cli_transport_passes_include_effects_as_a_switch():
    request = pr.JobRequest("/m/a.mov", 3, 9, "", "/m/mask.png", "/o/c", "/o/m", {"include_effects": True})
    assert "--include-effects" in pr.CliTransport("peanut").command(request)
    request = pr.JobRequest("/m/a.mov", 3, 9, "", "/m/mask.png", "/o/c", "/o/m", {"include_effects": False})
    assert "--include-effects" not in pr.CliTransport("peanut").command(request)


@pytest.mark.parametrize("box", ["10,20,30,40", "4:10,20,30", "4:10,20,0,40", "-1:1,2,3,4"])
def test_a_bad_box_is_refused_before_anything(tmp_path, box):
    resolve, _, _, _, _, _ = make_scene(tmp_path)
    with pytest.raises(pr.ResolveScriptError, match="box"):
        pr.plan_current_clip(resolve, box=box)
