"""The Blender sequencer extension (plugins/blender), in real Blender.

The end-to-end test runs plugins/blender/tests/scenario.py in the bpy venv
(bpy 5.0.1 on Python 3.11; $PEANUT_BPY_PYTHON, else created here with
scripts/setup_bpy_venv.sh): it installs the built .zip, builds a scene with a
trimmed movie strip, runs the operators against a real daemon and reports JSON;
the pixel checks happen here with numpy.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.daemon import daemon  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "blender"
W, H, N_FRAMES, FPS = 160, 96, 24, 25
BAND = (62, 88)  # rows (on the clay court) the disc travels in
RADIUS = 8
DISC_COLOURS = ((220, 30, 40), (20, 230, 240))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"peanut_blender_{name}", PLUGIN / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


core = _load("core")
build = _load("build")
jobs = _load("jobs")  # its client import is lazy: loadable without the vendored copy


def _platform() -> str:
    if sys.platform.startswith("linux"):
        return "linux-x64"
    if sys.platform == "darwin":
        return "macos-arm64" if os.uname().machine == "arm64" else "macos-x64"
    return "windows-x64"


@pytest.fixture(scope="session")
def bpy_python() -> str:
    path = os.environ.get("PEANUT_BPY_PYTHON")
    if path:
        return path
    venv = REPO / ".venv-bpy"
    subprocess.run(
        ["bash", str(REPO / "scripts" / "setup_bpy_venv.sh")], env=dict(os.environ, DIR=str(venv)), check=True
    )
    return str(venv / "bin" / "python")


@pytest.fixture(scope="session")
def built_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("blender_dist")
    return build.build([_platform()], out, PLUGIN / "dist" / "wheels")


# -- pure logic ------------------------------------------------------------------------------------


def timing(**kw) -> core.StripTiming:
    base = dict(
        frame_start=10.0,
        frame_final_start=13,
        frame_final_end=33,
        frame_offset_start=3.0,
        frame_offset_end=5.0,
        animation_offset_start=2,
        media_fps=25.0,
        scene_fps=25.0,
    )
    base.update(kw)
    return core.StripTiming(**base)


def test_visible_range_counts_hold_offset_and_trim():
    # Values read off bpy 5.0.1 for a 30-frame movie: frame_start 10, anim offset 2, trims 3 / 5.
    first, length, at = core.visible_range(timing())
    assert (first, length, at) == (5, 20, 13)
    rng = core.movie_strip_range("/x/clip.mp4", timing())
    assert (rng.start, rng.end, rng.timeline_start, rng.length) == (5, 25, 13, 20)


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(media_fps=30.0), "fps"),
        (dict(reversed=True), "reversed"),
        (dict(strobe=2.0), "strobe"),
        (dict(retimed=True), "retimed"),
        (dict(frame_offset_start=-2.0), "extended"),
        (dict(frame_start=10.5), "sub-frame"),
        (dict(frame_final_end=13), "no frames"),
    ],
)
def test_visible_range_refuses_what_cannot_be_laid_back(kw, words):
    with pytest.raises(core.StripError, match=words):
        core.visible_range(timing(**kw))


def test_image_strip_maps_to_folder_index_in_natural_order(tmp_path):
    for i in range(12):  # frame_2 sorts before frame_10 for the daemon
        (tmp_path / f"frame_{i}.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    elements = [f"frame_{i}.png" for i in range(2, 12)]  # strip made from frame_2 on
    t = timing(
        frame_start=1.0,
        frame_final_start=2,
        frame_final_end=8,
        frame_offset_start=1.0,
        frame_offset_end=1.0,
        animation_offset_start=1,
        media_fps=None,
    )
    rng = core.image_strip_range(str(tmp_path), elements, t)
    # content frame 0 = elements[1] = frame_3; first visible = elements[2] = frame_4 = folder index 4
    assert (rng.start, rng.end, rng.timeline_start) == (4, 10, 2)
    with pytest.raises(core.StripError, match="contiguous"):
        core.image_strip_range(
            str(tmp_path),
            ["frame_1.png", "frame_3.png", "frame_5.png"],
            timing(
                frame_start=1.0,
                frame_final_start=1,
                frame_final_end=4,
                frame_offset_start=0.0,
                frame_offset_end=0.0,
                animation_offset_start=0,
                media_fps=None,
            ),
        )


def test_first_free_channel_skips_overlaps_only():
    occupied = [(2, 10, 30), (3, 8, 12), (4, 30, 40), (5, 0, 100)]
    assert core.first_free_channel(occupied, 2, 10, 30) == 4  # 3 overlaps, 4 only touches at 30
    assert core.first_free_channel(occupied, 4, 10, 30) == 6
    with pytest.raises(core.StripError):
        core.first_free_channel([(c, 0, 10) for c in range(1, 129)], 1, 0, 10)


def test_names_and_output_dirs(tmp_path):
    name = core.result_name("Shot", "the red car " * 10, "matte")
    assert name.endswith(" matte") and len(name.encode()) <= core.NAME_LIMIT and name.startswith("Shot - the red")
    first = core.unique_output_dir(str(tmp_path), "Shot 1", "the dog!")
    assert Path(first).name == "Shot_1_the_dog"
    Path(first + "_matte").mkdir()
    assert core.unique_output_dir(str(tmp_path), "Shot 1", "the dog!") == first + "_2"
    assert core.format_eta(-1) == "ETA unknown" and core.format_eta(75) == "ETA 1m15s"


def test_start_daemon_does_not_wait_for_the_server(tmp_path):
    log = tmp_path / "logs" / "server.log"
    go = tmp_path / "go"
    # The child runs until the test lets it go: start_daemon returning at all shows it did not wait.
    waits = f"import os, time; print('up', flush=True)\nwhile not os.path.exists({str(go)!r}): time.sleep(0.05)"
    proc = jobs.start_daemon([sys.executable, "-c", waits], str(log))
    assert proc.poll() is None  # returned while it runs
    go.touch()
    assert proc.wait(30) == 0
    assert log.read_text().strip() == "up"


# -- the build -----------------------------------------------------------------------------------


def test_built_zip_has_extension_layout(built_zip, tmp_path):
    with zipfile.ZipFile(built_zip) as zf:
        names = set(zf.namelist())
        manifest = zf.read("blender_manifest.toml").decode()
        zf.extractall(tmp_path)
    import tomllib

    data = tomllib.loads(manifest)
    assert data["id"] == "peanut" and data["type"] == "add-on" and data["blender_version_min"] == "4.2.0"
    assert data["platforms"] == [_platform()]
    wheels = [w.removeprefix("./") for w in data["wheels"]]
    assert {Path(w).name.split("-")[0] for w in wheels} == {
        "grpcio",
        "protobuf",
        "typing_extensions",
        "googleapis_common_protos",
    }
    assert all(w in names for w in wheels)
    assert any("cp311" in w and w.startswith("wheels/grpcio") for w in wheels)
    for module in (
        "__init__.py",
        "operators.py",
        "panel.py",
        "vendor/peanut_server/client.py",
        "vendor/peanut_server/statedir.py",
        "vendor/peanut_server/api/peanut_pb2_grpc.py",
    ):
        assert module in names
    assert not any(n.startswith(("tests/", "dist/")) or n == "build.py" for n in names)
    # The vendored client stands alone: no repo on the path, and it pulls in no numpy / torch.
    probe = (
        "import sys; import vendor.peanut_server.client as c; "
        "bad = [m for m in ('numpy', 'torch', 'cv2', 'peanut_server') if m in sys.modules]; "
        "print(c.__file__); assert not bad, bad"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); {probe}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(str(tmp_path))


def test_build_refuses_heavy_or_absolute_imports():
    assert build.forbidden_imports("import numpy as np\nfrom peanut_server.api import x\nfrom . import y\n") == [
        "numpy",
        "peanut_server.api",
    ]
    assert build.forbidden_imports('"""from peanut_server.api import peanut_pb2"""\nimport grpc\n') == []


# -- end to end in Blender ----------------------------------------------------------------------------


def _frame(i: int, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB frame i (index bits along the top, a striped disc in the band) and the disc's mask."""
    frame = background.copy()
    for bit in range(10):  # 16-px blocks in rows 0..11 spell the frame index
        frame[0:12, bit * 16 : (bit + 1) * 16] = 235 if i >> bit & 1 else 20
    yy, xx = np.mgrid[0:H, 0:W]
    cx, cy = 20 + i * 5, (BAND[0] + BAND[1]) // 2
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= RADIUS**2
    stripes = ((xx + yy) // 3 % 2).astype(bool)
    frame[disc & stripes] = DISC_COLOURS[0]
    frame[disc & ~stripes] = DISC_COLOURS[1]
    return frame, disc


@pytest.fixture()
def scene_media(tmp_path, shared_data):
    bg = cv2.imread(str(shared_data / "davis" / "tennis" / "00000.png"))
    bg = cv2.GaussianBlur(cv2.resize(bg, (W, H), interpolation=cv2.INTER_AREA), (0, 0), 3)
    bg = cv2.cvtColor(bg, cv2.COLOR_BGR2RGB)
    frames, discs = [], []
    clip = tmp_path / "media" / "shot.mkv"
    clip.parent.mkdir()
    with av.open(str(clip), "w") as out:  # FFV1 RGB: lossless, so pixels compare exactly
        stream = out.add_stream("ffv1", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        for i in range(N_FRAMES):
            frame, disc = _frame(i, bg)
            frames.append(frame)
            discs.append(disc)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    # One mask per source frame (the disc grown by 2 px): as the disc moves, every
    # frame shows the court behind it somewhere, which a video eraser can use.
    mask_path = tmp_path / "media" / "disc_masks"
    mask_path.mkdir()
    mask_imgs = []
    for i, disc in enumerate(discs):
        mask = cv2.dilate(disc.astype(np.uint8) * 255, np.ones((5, 5), np.uint8))
        cv2.imwrite(str(mask_path / f"mask_{i:04d}.png"), mask)
        mask_imgs.append(mask)
    return {"clip": clip, "mask": mask_path, "frames": frames, "discs": discs, "clean": bg, "mask_imgs": mask_imgs}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_remove_object_in_blender(daemon, bpy_python, built_zip, scene_media, tmp_path):  # noqa: F811
    work = tmp_path / "work"
    work.mkdir()
    config = {
        "zip": str(built_zip),
        "clip": str(scene_media["clip"]),
        "mask": str(scene_media["mask"]),
        "fps": FPS,
        "width": W,
        "height": H,
        "address": daemon.address,
        "dead_address": f"127.0.0.1:{_free_port()}",
        "work": str(work),
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"), PEANUT_STATE_DIR=str(daemon.state_dir))
    proc = subprocess.run(
        [
            bpy_python,
            str(PLUGIN / "tests" / "scenario.py"),
            str(tmp_path / "config.json"),
            str(tmp_path / "result.json"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads((tmp_path / "result.json").read_text())
    assert not r["errors"], r["errors"][0] + "\n" + daemon.log()

    # Installed from the .zip, operators registered, thin.
    assert r["install"] == ["FINISHED"] and r["addons"] == ["bl_ext.user_default.peanut"]
    assert all(r["operators"].values()) and r["panel"]
    assert r["heavy_modules_loaded"] == [] and not r["toplevel_peanut_server"]
    assert "/extensions/user_default/peanut/vendor/peanut_server/client.py" in r["client_file"]

    # Connection state from GetInfo.
    assert r["check_server"]["ret"] == ["FINISHED"] and r["server_status"]["ok"]
    assert any(name == "lanczos" and ok for _, name, ok, _ in r["server_status"]["backends"])

    # Daemon down: an ERROR report with a clear message, no traceback, nothing added, no long hang.
    assert r["down"]["ret"] == ["RAISED"]
    assert "no PEANUT daemon answers" in r["down"]["error"] and "Traceback" not in r["down"]["error"]
    assert r["down"]["seconds"] < 30

    # Mask preview of the current frame: that frame's disc mask, at source size.
    assert r["preview"]["ret"] == ["FINISHED"] and r["preview"]["size"] == [W, H]
    # The current frame is timeline frame_final_start + 1: source frame 5 + 1 (see below).
    preview = np.array([[c == "1" for c in row] for row in r["preview"]["mask_rows_bottom_up"]])[::-1]
    ious = [(preview & (m > 0)).sum() / max((preview | (m > 0)).sum(), 1) for m in scene_media["mask_imgs"]]
    assert int(np.argmax(ious)) == 6 and ious[6] > 0.95, ious
    # Issue 15, point 13: temporary files in the extension's user folder; no "Adjust Last
    # Operation" (REGISTER) re-running a whole job, one undo step (UNDO).
    assert r["preview"]["filepath"].startswith(r["user_dir"]), (r["preview"]["filepath"], r["user_dir"])
    assert r["remove_bl_options"] == ["UNDO"]

    # Source range: hold offset 2 + trim 3 -> first source frame 5; 24 - 2 - 3 - 4 = 15 frames shown.
    src = r["source_before"]
    assert src["frame_final_start"] == 14 and src["frame_final_duration"] == N_FRAMES - 2 - 3 - 4
    assert r["job"]["start"] == 5 and r["job"]["end"] == 5 + src["frame_final_duration"]
    assert r["remove"]["ret"] == ["FINISHED"] and r["job"]["state"] == "succeeded"
    assert r["source_after"] == src  # the source strip is not modified

    added = {("matte" if s["mute"] else "clean"): s for s in r["added"]}
    assert len(r["added"]) == 2, r["added"]
    clean, matte = added["clean"], added["matte"]
    assert clean["type"] == "IMAGE" and clean["channel"] == 4  # 3 is busy over the shot
    assert matte["channel"] == 5 and matte["mute"]  # 5 is only used after the shot
    for strip in (clean, matte):
        assert strip["frame_final_start"] == src["frame_final_start"]
        assert strip["frame_final_duration"] == src["frame_final_duration"]
    assert clean["name"] == "Shot - disc_masks" and matte["name"] == "Shot - disc_masks matte"
    start, count = r["job"]["start"], src["frame_final_duration"]
    assert clean["elements"] == [f"frame_{start + i:06d}.png" for i in range(count)]
    assert Path(clean["directory"]).resolve() == Path(r["job"]["output"]).resolve()
    assert Path(matte["directory"]).resolve() == Path(r["job"]["matte"]).resolve()

    # Pixels: equal to the source outside the (dilated, feathered) mask, object gone inside.
    for i in range(count):
        keep = cv2.dilate(scene_media["mask_imgs"][start + i], np.ones((33, 33), np.uint8)) == 0
        assert keep[0:12].all()  # the frame-index bits lie in the compared area
        out = _read_rgb(Path(clean["directory"]) / clean["elements"][i])
        source = scene_media["frames"][start + i]
        assert out.shape == source.shape
        np.testing.assert_array_equal(out[keep], source[keep], err_msg=f"output frame {i}")
        disc = scene_media["discs"][start + i]
        err_out = np.abs(out[disc].astype(int) - scene_media["clean"][disc]).mean()
        err_src = np.abs(source[disc].astype(int) - scene_media["clean"][disc]).mean()
        assert err_out < 0.5 * err_src, (i, err_out, err_src)
        # and no pixel of the disc keeps one of its two colours
        near = [np.abs(out[disc].astype(int) - colour).sum(axis=1) < 90 for colour in DISC_COLOURS]
        assert (near[0] | near[1]).mean() < 0.02, i

    # One undo step removes both new strips, and only them (the step before is kept); redo brings them back.
    assert r["undo"]["ret"] == ["FINISHED"] and r["after_undo"]["marker"]
    assert r["after_undo"]["count"] == r["after_undo"]["before"]
    assert not {clean["name"], matte["name"]} & set(r["after_undo"]["names"])
    assert {clean["name"], matte["name"]} <= set(r["after_redo"])

    # Cancel while running: cancelled on the daemon, no strip, no partial files.
    c = r["cancel"]
    assert c.get("cancelled") and c["state"] == "cancelled" and c["strips_added"] == 0
    assert c["files_left"] == [] and c["dirs_left"] == []
    with daemon.client() as client:
        assert client.get_job(c["job_id"]).state == 5  # JOB_STATE_CANCELLED
    assert r["cancel_poll_after"] is False

    # A strip PEANUT cannot process: a clear report.
    assert r["wrong_type"]["ret"] == ["RAISED"] and "movie and image strips" in r["wrong_type"]["error"]

    # The note's picture: before / after, rendered by Blender's sequencer.
    before, after = _read_rgb(work / "render_before.png"), _read_rgb(work / "render_after.png")
    frame = start + r["render_frame"] - src["frame_final_start"]
    # Blender's movie decode + colour management: close to the source, not bit-exact.
    assert np.abs(before.astype(int) - scene_media["frames"][frame]).mean() < 2.0
    disc = scene_media["discs"][frame]
    assert (
        np.abs(after[disc].astype(int) - scene_media["clean"][disc]).mean()
        < 0.5 * np.abs(before[disc].astype(int) - scene_media["clean"][disc]).mean()
    )
    out_dir = REPO / "out"
    out_dir.mkdir(exist_ok=True)
    sheet = np.concatenate([before, np.full((H, 4, 3), 255, np.uint8), after], axis=1)
    sheet = cv2.resize(sheet, (sheet.shape[1] * 3, sheet.shape[0] * 3), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(out_dir / "blender_before_after.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def test_the_playhead_maps_to_the_source_frame_the_strip_shows_there():
    rng = core.SourceRange("/m/a.mov", 10, 50, 101)  # source 10-49 on timeline 101-140
    assert [rng.source_frame(f) for f in (100, 101, 125, 140, 141)] == [None, 10, 34, 49, None]


def test_kept_boxes_go_in_frame_order_and_the_current_box_wins_its_frame():
    rng = core.SourceRange("/m/a.mov", 10, 50, 1)
    kept = [(30, (5, 5, 9, 9)), (12, (1, 1, 9, 9)), (20, (2, 2, 9, 9))]
    boxes, problem = core.job_boxes(20, (3, 3, 9, 9), kept, None, rng)
    assert problem == "" and boxes == [(12, (1, 1, 9, 9)), (30, (5, 5, 9, 9))]
    assert core.job_boxes(20, None, kept, None, rng)[0] == sorted(kept)
    boxes, problem = core.job_boxes(20, None, [(60, (1, 1, 9, 9))], None, rng)
    assert boxes == [] and "outside the strip (10-49)" in problem
    # With a drawn mask on frame 20, a kept box corrects later frames only.
    boxes, problem = core.job_boxes(20, None, kept, 20, rng)
    assert boxes == [] and "before the drawn mask's frame (20)" in problem


def test_box_and_mask_shape_drive_remove_object_in_blender(
    daemon,  # noqa: F811 (the fixture imported above)
    bpy_python,
    built_zip,
    scene_media,  # noqa: F811
    tmp_path,
):
    """A box on the current frame, a Mask datablock drawn there, and the approximate checkbox,
    through peanut.remove_object in real Blender; the mattes are compared with the true discs."""
    work = tmp_path / "work"
    work.mkdir()
    frame = 3
    cx, cy = 20 + frame * 5, (BAND[0] + BAND[1]) // 2  # where _frame() puts the disc
    r = RADIUS + 1
    config = {
        "zip": str(built_zip),
        "clip": str(scene_media["clip"]),
        "fps": FPS,
        "width": W,
        "height": H,
        "address": daemon.address,
        "work": str(work),
        "frame": frame,
        "box": [cx - r, cy - r, 2 * r + 1, 2 * r + 1],
        "circle": [cx, cy, r],
        # A box kept on a later frame, around the disc there: it corrects the tracking from there.
        "later": [frame + 5, [cx + 25 - r, cy - r, 2 * r + 1, 2 * r + 1]],
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"), PEANUT_STATE_DIR=str(daemon.state_dir))
    proc = subprocess.run(
        [
            bpy_python,
            str(PLUGIN / "tests" / "scenario_prompts.py"),
            str(tmp_path / "config.json"),
            str(tmp_path / "result.json"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads((tmp_path / "result.json").read_text())
    assert not r["errors"], r["errors"][0] + "\n" + daemon.log()

    discs = scene_media["discs"]
    # Doing nothing: the frame-3 disc on every frame.
    still = np.mean([(discs[frame] & d).sum() / (discs[frame] | d).sum() for d in discs])

    def matte_iou(run: dict) -> float:
        assert run["ret"] == ["FINISHED"] and run["state"] == "succeeded", run
        assert (run["start"], run["end"]) == (0, N_FRAMES)
        out = Path(run["output"])
        ious = []
        for i in range(N_FRAMES):
            m = cv2.imread(str(out / f"frame_{i:06d}.png"), cv2.IMREAD_GRAYSCALE) > 127
            ious.append((m & discs[i]).sum() / max((m | discs[i]).sum(), 1))
        return float(np.mean(ious))

    assert matte_iou(r["box"]) > still + 0.3
    shape = r["mask"]
    assert shape["mask_path"].endswith(f"_shape_{frame:06d}.png")
    drawn = cv2.imread(shape["mask_path"], cv2.IMREAD_GRAYSCALE) > 127
    assert (drawn & discs[frame]).sum() / (drawn | discs[frame]).sum() > 0.7  # the polygon, rasterised
    assert matte_iou(shape) > still + 0.3
    # A noun the no-weights masker cannot check: refused without the checkbox, named with it.
    assert r["noun_refused"]["ret"] == ["RAISED"] and '"disc"' in r["noun_refused"]["error"]
    assert r["noun_approximate"]["ret"] == ["FINISHED"] and r["noun_approximate"]["ignored"] == ["disc"]
    assert r["box_outside"]["ret"] == ["RAISED"] and "outside" in r["box_outside"]["error"]
    # Boxes kept on two frames (Keep Box Here), the current one unused: both go to the daemon.
    kept = r["kept"]
    assert kept["kept_boxes"] == [[frame, config["box"]], config["later"]], kept
    assert matte_iou(kept) > still + 0.3
    assert r["kept_cleared"] == 0
    # Preview Mask without a prompt: the panel's box on the current frame, then a box kept on it.
    assert r["preview_noun"]["ret"] == ["RAISED"] and '"disc"' in r["preview_noun"]["error"], r["preview_noun"]
    assert r["preview_empty_box"]["ret"] == ["RAISED"], r["preview_empty_box"]
    assert "width and a height" in r["preview_empty_box"]["error"], r["preview_empty_box"]
    for name, at in (
        ("preview_box", frame),
        ("preview_noun_approximate", frame),
        ("preview_kept", config["later"][0]),
    ):
        assert r[name]["ret"] == ["FINISHED"] and r[name]["png"], r[name]
        cut = cv2.imread(r[name]["png"], cv2.IMREAD_GRAYSCALE) > 127
        assert (cut & discs[at]).sum() / (cut | discs[at]).sum() > 0.7, name
