"""The `peanut` command as a user runs it: through a daemon, and --local."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from peanut_server.cli import EXIT_NO_DAEMON, build_parser, parse_args
from peanut_server.media import frame_filename
from tests.clips import make_object_clip

REPO = Path(__file__).resolve().parents[1]


def peanut(*args: str, state_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PEANUT_STATE_DIR=str(state_dir))
    return subprocess.run(
        [sys.executable, "-m", "peanut_server.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture()
def clip(tmp_path: Path, shared_data: Path):
    return make_object_clip(
        tmp_path / "clip", shared_data / "davis" / "tennis" / "00000.png", n_frames=10, size=(96, 64)
    )


def test_remove_through_the_daemon(daemon, clip, tmp_path):
    out = tmp_path / "cleaned"
    done = peanut(
        "remove",
        str(clip.frames),
        "-o",
        str(out),
        "--mask",
        str(clip.masks),
        "--start",
        "3",
        "--end",
        "8",
        "--eraser",
        "telea",
        "--json",
        state_dir=daemon.state_dir,
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    assert sorted(os.listdir(out)) == [frame_filename(i) for i in range(3, 8)]
    # The client found the daemon through the state directory; info and jobs work the same way.
    info = peanut("info", state_dir=daemon.state_dir)
    assert info.returncode == 0 and "eraser" in info.stdout
    jobs = peanut("jobs", state_dir=daemon.state_dir)
    assert job["id"] in jobs.stdout and "succeeded" in jobs.stdout


def test_remove_local_without_daemon(clip, tmp_path):
    out = tmp_path / "cleaned"
    done = peanut(
        "remove",
        str(clip.frames),
        "-o",
        str(out),
        "--mask",
        str(clip.masks),
        "--local",
        "--eraser",
        "telea",
        state_dir=tmp_path / "nostate",
    )
    assert done.returncode == 0, done.stderr
    assert "done: 10 frames" in done.stdout
    assert len(os.listdir(out)) == 10


@pytest.mark.parametrize("local", [False, True])
def test_bad_input_exits_non_zero_with_one_line(daemon, clip, tmp_path, local):
    args = ["remove", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o"), "--mask", str(clip.masks)]
    done = peanut(*args, *(["--local"] if local else []), state_dir=daemon.state_dir)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.mp4" in lines[0] and "Traceback" not in done.stderr


def test_no_daemon_is_a_clear_message(tmp_path, clip):
    done = peanut("info", "--server", "127.0.0.1:1", state_dir=tmp_path / "s")
    assert done.returncode == 3
    assert "no PEANUT daemon answers at 127.0.0.1:1" in done.stderr


def test_nothing_to_remove_is_refused(daemon, clip, tmp_path):
    done = peanut("remove", str(clip.frames), "-o", str(tmp_path / "o"), state_dir=daemon.state_dir)
    assert done.returncode == 2 and "nothing to remove" in done.stderr


# -- honest prompts, boxes and points (issue 11) ----------------------------------------------

TENNIS_FRAMES = 8


@pytest.fixture(scope="module")
def tennis(tmp_path_factory, shared_data: Path):
    """The first frames of DAVIS tennis as a frame folder and as an H.264 video, with the true masks."""
    from tests.clips import frames_to_video, read_davis

    frames, masks = read_davis(shared_data / "davis" / "tennis", TENNIS_FRAMES)
    root = tmp_path_factory.mktemp("tennis")
    folder = root / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder, frames_to_video(frames, root / "tennis.mp4"), masks


def matte_iou(matte: Path, truth: list) -> float:
    names = sorted(os.listdir(matte))
    assert len(names) == len(truth)
    ious = []
    for name, gt in zip(names, truth):
        m = cv2.imread(str(matte / name), cv2.IMREAD_GRAYSCALE) > 127
        ious.append((m & gt).sum() / max((m | gt).sum(), 1))
    return float(sum(ious) / len(ious))


@pytest.mark.parametrize("local", [True, False])
def test_a_noun_the_masker_cannot_check_is_refused(daemon, tennis, tmp_path, local):
    where = tmp_path / "outputs"
    where.mkdir()
    out = where / "o"
    done = peanut(
        "mask",
        str(tennis[0]),
        "-o",
        str(out),
        "--prompt",
        "the elephant",
        "--masker",
        "motion",
        *(["--local"] if local else []),
        state_dir=daemon.state_dir,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert '"elephant"' in lines[0] and "--approximate" in lines[0] and "--box" in lines[0]
    assert os.listdir(where) == []  # nothing written, not even a staging folder


def test_approximate_runs_and_names_the_ignored_words(tennis, tmp_path):
    done = peanut(
        "mask",
        str(tennis[0]),
        "-o",
        str(tmp_path / "o"),
        "--prompt",
        "the elephant",
        "--approximate",
        "--local",
        "--json",
        state_dir=tmp_path / "s",
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["result"]["ignored_words"] == ["elephant"]
    assert done.stderr.count('could not check "elephant"') == 1
    # The Job printed by --local carries the warnings as the daemon's does (Resolve's CLI route reads them).
    assert any('could not check "elephant"' in w for w in job["warnings"]), job.get("warnings")
    quiet = peanut(
        "mask",
        str(tennis[0]),
        "-o",
        str(tmp_path / "q"),
        "--prompt",
        "the elephant",
        "--approximate",
        "--local",
        "-q",
        state_dir=tmp_path / "s",
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "elephant" not in quiet.stderr and "ignored words (approximate): elephant" in quiet.stdout


@pytest.mark.parametrize("kind", ["folder", "video"])
def test_box_on_the_first_frame_tracks_the_player(tennis, tmp_path, kind):
    from tests.clips import box_of

    folder, video, truth = tennis
    x, y, w, h = box_of(truth[0])
    out = tmp_path / "m"
    done = peanut(
        "mask",
        str(folder if kind == "folder" else video),
        "-o",
        str(out),
        "--box",
        f"0:{x},{y},{w},{h}",
        "--local",
        state_dir=tmp_path / "s",
    )
    assert done.returncode == 0, done.stderr
    # The do-nothing answer (the box itself on every frame) scores 0.24 here: the true mask holds
    # the player's long shadow, so the box is mostly court.
    iou = matte_iou(out, truth)
    assert iou > boxed_iou((x, y, w, h), truth) + 0.1


def boxed_iou(box: tuple[int, int, int, int], truth: list) -> float:
    """Mean IoU of the box itself, repeated on every frame: what doing nothing scores."""
    x, y, w, h = box
    boxed = np.zeros_like(truth[0])
    boxed[y : y + h, x : x + w] = True
    return float(np.mean([(boxed & g).sum() / max((boxed | g).sum(), 1) for g in truth]))


def test_a_box_mid_range_tracks_backwards_and_points_work(tennis, daemon, tmp_path):
    from tests.clips import box_of

    folder, _, truth = tennis
    x, y, w, h = box_of(truth[5])
    out = tmp_path / "m"
    done = peanut(
        "mask", str(folder), "-o", str(out), "--box", f"5:{x},{y},{w},{h}", "--json", state_dir=daemon.state_dir
    )
    assert done.returncode == 0, done.stderr
    assert matte_iou(out, truth) > boxed_iou((x, y, w, h), truth) + 0.1
    ys, xs = np.nonzero(truth[0])
    cy, cx = int(np.median(ys)), int(np.median(xs))
    out = tmp_path / "p"
    done = peanut("mask", str(folder), "-o", str(out), "--point", f"0:{cx},{cy}", "--local", state_dir=tmp_path / "s")
    assert done.returncode == 0, done.stderr
    assert matte_iou(out, truth) >= 0.4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--box", "0:10,10,20"], "expected F:X,Y,W,H"),
        (["--box", "x:10,10,20,20"], "expected F:X,Y,W,H"),
        (["--box", "0:10,10,0,20"], "width and height must be positive"),
        (["--box", "0:420,10,40,20"], "reaches outside the 432x240 frame"),
        (["--box", "9:10,10,20,20"], "frame 9, outside the range 0..7"),
        (["--point", "0:10"], "expected F:X,Y"),
        (["--point", "0:10,900"], "outside the 432x240 frame"),
        (["--exclude-point", "0:10,10"], "only excluded points"),
    ],
)
def test_bad_boxes_and_points_are_refused_with_one_line(tennis, tmp_path, args, message):
    done = peanut("mask", str(tennis[0]), "-o", str(tmp_path / "o"), *args, "--local", state_dir=tmp_path / "s")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_otio_box_metadata_drives_the_tracker(tennis, tmp_path):
    """The OTIO door: a clip with metadata peanut.box (source frame, source pixels) and a noun with
    peanut.approximate is cleaned like `peanut remove --box ... --approximate`."""
    import opentimelineio as otio

    from tests.clips import box_of

    _, video, truth = tennis
    rate = 25
    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    clip = otio.schema.Clip(
        name="tennis",
        media_reference=otio.schema.ExternalReference(
            target_url=str(video), available_range=tr(rt(0, rate), rt(8, rate))
        ),
        source_range=tr(rt(2, rate), rt(6, rate)),
    )  # shows source frames 2..7
    x, y, w, h = box_of(truth[3])
    clip.metadata["peanut"] = {"box": f"3:{x},{y},{w},{h}", "prompt": "the player", "approximate": "true"}
    timeline = otio.schema.Timeline(name="cut")
    track = otio.schema.Track(name="V1")
    track.append(clip)
    timeline.tracks.append(track)
    cut = tmp_path / "cut.otio"
    otio.adapters.write_to_file(timeline, str(cut))
    done = peanut(
        "otio",
        str(cut),
        "-o",
        str(tmp_path / "out.otio"),
        "--local",
        "--eraser",
        "telea",
        "-q",
        state_dir=tmp_path / "s",
    )
    assert done.returncode == 0, done.stderr
    out = otio.adapters.read_from_file(str(tmp_path / "out.otio"))
    matte = next(t for t in out.tracks if t.name == "PEANUT matte").find_clips()[0].media_reference
    folder = Path(matte.target_url_base)
    assert sorted(os.listdir(folder)) == [frame_filename(i) for i in range(2, 8)]
    assert matte_iou(folder, truth[2:8]) > boxed_iou((x, y, w, h), truth[2:8]) + 0.1

    # Without peanut.approximate the noun is refused before any work, naming the word.
    clip.metadata["peanut"] = {"box": f"3:{x},{y},{w},{h}", "prompt": "the player"}
    otio.adapters.write_to_file(timeline, str(cut))
    refused = peanut(
        "otio",
        str(cut),
        "-o",
        str(tmp_path / "out2.otio"),
        "--local",
        "--eraser",
        "telea",
        "-q",
        state_dir=tmp_path / "s",
    )
    assert refused.returncode == 2 and '"player"' in refused.stderr, refused.stderr
    assert not (tmp_path / "out2.otio").exists()


def test_a_one_frame_mask_is_tracked_with_mask_frame(tennis, tmp_path):
    folder, _, truth = tennis
    first = tmp_path / "frame2.png"
    cv2.imwrite(str(first), truth[2].astype(np.uint8) * 255)
    out = tmp_path / "m"
    done = peanut(
        "mask",
        str(folder),
        "-o",
        str(out),
        "--mask",
        str(first),
        "--mask-frame",
        "2",
        "--local",
        "--json",
        state_dir=tmp_path / "s",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["backends"][0]["backend"] == "motion"
    # The door: the given image is the object on frame 2 (kept there), and the masks around it follow
    # the player (tracking quality against the do-nothing baseline is tests/test_masker_davis.py's job).
    names = sorted(os.listdir(out))
    masks = [cv2.imread(str(out / n), cv2.IMREAD_GRAYSCALE) > 127 for n in names]
    ious = [(m & g).sum() / max((m | g).sum(), 1) for m, g in zip(masks, truth)]
    assert ious[2] > 0.9 and min(ious) > 0.3, ious


def test_a_box_after_the_mask_frame_restarts_the_tracking_there(tennis, tmp_path):
    folder, _, truth = tennis
    first = tmp_path / "frame0.png"
    cv2.imwrite(str(first), truth[0].astype(np.uint8) * 255)
    ys, xs = np.nonzero(truth[6])
    box = f"6:{xs.min()},{ys.min()},{xs.max() - xs.min() + 1},{ys.max() - ys.min() + 1}"
    before = peanut("mask", str(folder), "-o", str(tmp_path / "x"), "--mask", str(first), "--mask-frame", "2",
                    "--box", "1:0,0,10,10", "--local", state_dir=tmp_path / "s")  # fmt: skip
    assert before.returncode == 2 and "after frame 2" in before.stderr, before.stderr
    out = tmp_path / "m"
    done = peanut("mask", str(folder), "-o", str(out), "--mask", str(first), "--mask-frame", "0", "--box", box,
                  "--local", "--json", state_dir=tmp_path / "s")  # fmt: skip
    assert done.returncode == 0, done.stderr
    masks = [cv2.imread(str(out / n), cv2.IMREAD_GRAYSCALE) > 127 for n in sorted(os.listdir(out))]
    assert len(masks) == len(truth) == 8
    ious = [(m & g).sum() / max((m | g).sum(), 1) for m, g in zip(masks, truth)]
    assert ious[0] > 0.9 and ious[6] > 0.4, ious


def test_preview_of_a_tracked_mask_and_of_a_mask_file_through_the_daemon(daemon, tennis, tmp_path):
    """preview() is part of every masker: the pipeline asks the chosen one, whichever it is."""
    from peanut_server.api import peanut_pb2 as pb

    folder, _, truth = tennis
    first = tmp_path / "frame2.png"
    cv2.imwrite(str(first), truth[2].astype(np.uint8) * 255)
    with daemon.client() as client:
        on_it = client.preview_mask(str(folder), 2, mask_path=str(first), frame_prompts=[pb.FramePrompt(frame=2)])
        tracked = client.preview_mask(str(folder), 3, mask_path=str(first), frame_prompts=[pb.FramePrompt(frame=2)])
        still = client.preview_mask(str(folder), 3, mask_path=str(first))
    assert on_it.backend == tracked.backend == "motion" and still.backend == "external"

    def iou(reply, frame: int) -> float:
        mask = cv2.imdecode(np.frombuffer(reply.mask_png, np.uint8), cv2.IMREAD_GRAYSCALE) > 127
        return (mask & truth[frame]).sum() / (mask | truth[frame]).sum()

    assert iou(on_it, 2) > 0.9 and iou(tracked, 3) > 0.4 and iou(still, 3) > 0.4


def test_text_plus_a_box_the_box_picks_and_the_text_checks(tennis, tmp_path):
    from tests.clips import box_of

    folder, _, truth = tennis
    x, y, w, h = box_of(truth[0])
    wrong = peanut(
        "mask",
        str(folder),
        "-o",
        str(tmp_path / "a"),
        "--box",
        f"0:{x},{y},{w},{h}",
        "--prompt",
        "the blue one",
        "--local",
        state_dir=tmp_path / "s",
    )
    assert wrong.returncode == 2 and "is not blue" in wrong.stderr and not (tmp_path / "a").exists()
    right = peanut(
        "mask",
        str(folder),
        "-o",
        str(tmp_path / "b"),
        "--box",
        f"0:{x},{y},{w},{h}",
        "--prompt",
        "the one on the left",
        "--local",
        state_dir=tmp_path / "s",
    )
    assert right.returncode == 0, right.stderr


# -- what a new user trips over (issue 15) ------------------------------------------------------


def test_jobs_lists_a_finished_job_by_its_frames_not_the_last_stages_count(daemon, clip, tmp_path):
    # Point 1: `peanut jobs` showed `writing 1/1` for every finished job.
    done = peanut(
        "remove",
        str(clip.frames),
        "-o",
        str(tmp_path / "o"),
        "--mask",
        str(clip.masks),
        "--eraser",
        "telea",
        "--json",
        state_dir=daemon.state_dir,
    )
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["id"]
    line = next(row for row in peanut("jobs", state_dir=daemon.state_dir).stdout.splitlines() if job_id in row)
    assert "10 frames" in line and "1/1" not in line, line


def test_the_info_marks_are_explained(daemon):
    # Point 3: `*`, `+` and `-` were never explained.
    info = peanut("info", state_dir=daemon.state_dir)
    assert info.returncode == 0, info.stderr
    assert "* default" in info.stdout and "+ available" in info.stdout and "- not available" in info.stdout


def test_no_daemon_in_the_default_state_dir_names_the_state_dir_options(tmp_path):
    # Point 4: a daemon started with --state-dir D is not found by a plain `peanut info`.
    done = peanut("info", state_dir=tmp_path / "empty-state")
    assert done.returncode == 3
    assert str(tmp_path / "empty-state") in done.stderr
    assert "--state-dir" in done.stderr and "PEANUT_STATE_DIR" in done.stderr


@pytest.mark.parametrize("local", [False, True])
def test_an_existing_output_names_the_cli_option(daemon, clip, tmp_path, local):
    # Point 5: the CLI says --overwrite, not the request field "overwrite".
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    done = peanut(
        "remove",
        str(clip.frames),
        "-o",
        str(out),
        "--mask",
        str(clip.masks),
        "--eraser",
        "telea",
        *(["--local"] if local else []),
        state_dir=daemon.state_dir,
    )
    assert done.returncode == 2, done.stderr
    assert "--overwrite" in done.stderr and "[" not in done.stderr, done.stderr
    assert (out / "mine.txt").read_text() == "the user's"


def test_demo_does_not_replace_earlier_outputs_without_overwrite(tmp_path):
    # Point 6: the README promises that nothing the user owns is overwritten.
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "sample.mp4").write_bytes(b"an earlier sample")
    done = peanut("demo", "-o", str(folder), state_dir=tmp_path / "s", timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--overwrite" in done.stderr and "sample.mp4" in done.stderr
    assert (folder / "sample.mp4").read_bytes() == b"an earlier sample"
    assert sorted(os.listdir(folder)) == ["sample.mp4"]


def test_demo_outputs_are_ignored_by_git_and_documented():
    # Point 6: `peanut-demo/` is not in .gitignore; true_masks/ is not documented.
    assert "/peanut-demo/" in (REPO / ".gitignore").read_text().split()
    readme = (REPO / "README.md").read_text()
    assert "true_masks/" in readme


def test_a_typo_in_an_option_gets_the_subcommands_usage_and_a_suggestion(tmp_path):
    # Point 7: `--promt` printed the top-level usage, without "did you mean".
    done = peanut("remove", "clip.mp4", "-o", "out", "--promt", "the ball", state_dir=tmp_path / "s")
    assert done.returncode == 2
    assert "usage: peanut remove" in done.stderr and "did you mean --prompt" in done.stderr, done.stderr


def test_an_option_before_the_command_is_taken_or_pointed_after_it(tmp_path):
    # Seen as a new user (2026-12-01): `peanut --server ADDR remove ...` said only
    # "argument COMMAND: invalid choice: 'ADDR'". Then (2026-12-02) the README's
    # `peanut --state-dir DIR` was refused with "goes after the command": an option the
    # command takes is now taken before it too; one it does not take is named.
    parser = build_parser()
    args = parse_args(parser, ["--state-dir", "s", "--server=127.0.0.1:1", "jobs"])
    assert (args.state_dir, args.server) == ("s", "127.0.0.1:1")
    args = parse_args(parser, ["--state-dir", "s", "remove", "clip.mp4", "-o", "out"])
    assert (args.state_dir, args.source, args.output) == ("s", "clip.mp4", "out")
    done = peanut("--server", "127.0.0.1:1", "jobs", state_dir=tmp_path / "s")
    assert done.returncode == EXIT_NO_DAEMON and "127.0.0.1:1" in done.stderr, done.stderr
    done = peanut("--prompt", "the ball", "jobs", state_dir=tmp_path / "s")
    assert done.returncode == 2
    assert "peanut jobs takes no --prompt option" in done.stderr, done.stderr


def test_output_into_a_closed_pipe_is_not_an_internal_error(daemon, clip, tmp_path):
    # Point 8: `peanut jobs | head` ended in "internal error: BrokenPipeError".
    for n in range(2):
        assert (
            peanut(
                "remove",
                str(clip.frames),
                "-o",
                str(tmp_path / f"o{n}"),
                "--mask",
                str(clip.masks),
                "--eraser",
                "telea",
                "--no-wait",
                state_dir=daemon.state_dir,
            ).returncode
            == 0
        )
    env = dict(os.environ, PEANUT_STATE_DIR=str(daemon.state_dir))
    # `--help` of a big parser and a jobs list both outlive a reader that takes no line at all.
    proc = subprocess.Popen(
        [sys.executable, "-m", "peanut_server.cli", "jobs", "--json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first line
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "internal error" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_no_progress_bar_when_stderr_is_not_a_terminal(clip, tmp_path):
    # Point 9: the bar drew into logs; captured stderr is not a terminal.
    done = peanut(
        "remove",
        str(clip.frames),
        "-o",
        str(tmp_path / "o"),
        "--mask",
        str(clip.masks),
        "--local",
        "--eraser",
        "telea",
        state_dir=tmp_path / "s",
    )
    assert done.returncode == 0, done.stderr
    assert "frame/s" not in done.stderr and "|" not in done.stderr, done.stderr


def test_local_does_not_import_the_daemon(clip, tmp_path):
    # Point 9: --local ran the pipeline but imported the daemon module too.
    code = (
        "import sys; from peanut_server import cli; "
        f"rc = cli.main(['remove', {str(clip.frames)!r}, '-o', {str(tmp_path / 'o')!r}, '--mask', "
        f"{str(clip.masks)!r}, '--local', '--eraser', 'telea', '-q']); "
        "print(sorted(m for m in sys.modules if m.startswith('peanut_server.daemon'))); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PEANUT_STATE_DIR=str(tmp_path / "s")),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_every_option_has_help_and_the_top_level_help_has_examples():
    # Point 10: info --json, --neighbor-stride, --mask-threshold, --seed had no help; no examples.
    from peanut_server.cli import build_parser

    parser = build_parser()
    assert "examples:" in parser.format_help() and "peanut remove" in parser.format_help()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in ("remove", "mask", "info", "jobs", "watch", "resume", "cancel", "demo"):
        for action in commands[name]._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"peanut {name} {action.option_strings[0]} has no help"


def test_the_approximation_warning_is_printed_once_and_not_under_quiet_through_the_daemon(daemon, tennis, tmp_path):
    # Point 2: the no-weights masker's warning came twice on every run and showed under -q.
    args = ["mask", str(tennis[0]), "--prompt", "the elephant", "--approximate", "--masker", "motion"]
    done = peanut(*args, "-o", str(tmp_path / "o"), state_dir=daemon.state_dir)
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).count("elephant") == 1, (done.stdout, done.stderr)
    quiet = peanut(*args, "-o", str(tmp_path / "q"), "-q", state_dir=daemon.state_dir)
    assert quiet.returncode == 0, quiet.stderr
    assert "elephant" not in quiet.stderr, quiet.stderr


def test_lama_missing_is_logged_once_per_daemon(daemon, clip, tmp_path):
    # Point 11: without LaMa the daemon said so again on every job.
    for n in range(2):
        done = peanut(
            "remove",
            str(clip.frames),
            "-o",
            str(tmp_path / f"o{n}"),
            "--mask",
            str(clip.masks),
            "--eraser",
            "flowguided",
            state_dir=daemon.state_dir,
        )
        assert done.returncode == 0, done.stderr
    assert daemon.log().count("LaMa not used") <= 1, daemon.log()
