"""Runs inside Blender (the bpy venv): install the built extension, drive its operators, report JSON.

    python scenario.py CONFIG.json RESULT.json

CONFIG: zip, clip (movie), clip_frames (int), fps, mask (static mask image),
address (live daemon), dead_address (nothing listens), work (folder for outputs
and renders). The pytest side (tests/test_blender_extension.py) checks pixels.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback

import bpy

config = json.load(open(sys.argv[1]))
result: dict = {"errors": []}


def call(op, *args, **kwargs):
    """Run an operator like a script would; ERROR reports come back as RuntimeError in background mode."""
    try:
        return {"ret": sorted(op(*args, **kwargs)), "error": ""}
    except RuntimeError as exc:
        return {"ret": ["RAISED"], "error": str(exc)}


def strip_state(s) -> dict:
    return {
        "name": s.name,
        "type": s.type,
        "channel": s.channel,
        "mute": s.mute,
        "frame_start": s.frame_start,
        "frame_final_start": s.frame_final_start,
        "frame_final_end": s.frame_final_end,
        "frame_final_duration": s.frame_final_duration,
        "frame_offset_start": s.frame_offset_start,
        "frame_offset_end": s.frame_offset_end,
        "animation_offset_start": getattr(s, "animation_offset_start", 0),
        "directory": bpy.path.abspath(getattr(s, "directory", "") or ""),
        "filepath": bpy.path.abspath(getattr(s, "filepath", "") or ""),
        "elements": [e.filename for e in s.elements] if hasattr(s, "elements") and s.type == "IMAGE" else [],
    }


def strips(ed) -> dict:
    return {s.name: strip_state(s) for s in ed.strips_all}


def main() -> None:
    # -- install the .zip the way a user does, into the isolated user resources ------------------
    modules_before = set(sys.modules)
    ret = bpy.ops.extensions.package_install_files(filepath=config["zip"], repo="user_default", enable_on_install=True)
    result["install"] = sorted(ret)
    result["addons"] = [a.module for a in bpy.context.preferences.addons if "peanut" in a.module]
    result["operators"] = {
        name: hasattr(bpy.types, cls)
        for name, cls in (
            ("peanut.remove_object", "PEANUT_OT_remove_object"),
            ("peanut.cancel", "PEANUT_OT_cancel"),
            ("peanut.preview_mask", "PEANUT_OT_preview_mask"),
        )
    }
    result["panel"] = hasattr(bpy.types, "PEANUT_PT_main")
    package = result["addons"][0]
    operators = sys.modules[package + ".operators"]

    # -- a scene with a trimmed movie strip that does not start at frame 1 ------------------------
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = config["fps"], 1.0
    scene.render.resolution_x, scene.render.resolution_y = config["width"], config["height"]
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"  # renders show the pixels, not a filmic look
    ed = scene.sequence_editor_create()
    src = ed.strips.new_movie(name="Shot", filepath=config["clip"], channel=2, frame_start=11)
    src.animation_offset_start = 2  # the strip's media starts at file frame 2
    src.frame_offset_start = 3
    src.frame_offset_end = 4
    # Channel 3 is busy over the shot; channel 5 only after it: the result must land on 4.
    blocker = ed.strips.new_effect(
        name="Blocker", type="COLOR", channel=3, frame_start=src.frame_final_start - 2, length=6
    )
    blocker.mute = True
    later = ed.strips.new_effect(name="Later", type="COLOR", channel=5, frame_start=src.frame_final_end + 5, length=5)
    later.mute = True
    ed.active_strip = src
    scene.frame_start, scene.frame_end = src.frame_final_start, src.frame_final_end - 1
    result["source_before"] = strip_state(src)
    result["clip_frame_duration"] = src.frame_duration

    # -- connection state ------------------------------------------------------------------------
    result["check_server"] = call(bpy.ops.peanut.check_server, server=config["address"])
    status = operators.server_status()
    # The client is imported on first use; it must be the vendored copy, not a peanut_server package.
    result["toplevel_peanut_server"] = "peanut_server" in sys.modules
    client = sys.modules.get(package + ".vendor.peanut_server.client")
    result["client_file"] = client.__file__ if client else ""
    result["heavy_modules_loaded"] = sorted(
        m for m in set(sys.modules) - modules_before if m.split(".")[0] in ("torch", "cv2", "av")
    )
    result["server_status"] = {"ok": status.ok, "message": status.message, "backends": status.backends}

    # -- a daemon that is down: a report, not a traceback -----------------------------------------
    t0 = time.monotonic()
    result["down"] = call(
        bpy.ops.peanut.remove_object,
        "EXEC_DEFAULT",
        mask_path=config["mask"],
        server=config["dead_address"],
        output_dir=os.path.join(config["work"], "down"),
    )
    result["down"]["seconds"] = time.monotonic() - t0
    result["down"]["strips"] = len(ed.strips_all)

    # -- preview the mask on the current frame -----------------------------------------------------
    scene.frame_current = src.frame_final_start + 1
    result["preview"] = call(
        bpy.ops.peanut.preview_mask, "EXEC_DEFAULT", mask_path=config["mask"], server=config["address"]
    )
    image = bpy.data.images.get(operators.PREVIEW_IMAGE)
    if image is not None:
        px = list(image.pixels)
        result["preview"]["size"] = list(image.size)
        # The mask itself, red channel thresholded, rows bottom-up as Blender stores them.
        result["preview"]["mask_rows_bottom_up"] = [
            "".join("1" if px[4 * (y * image.size[0] + x)] > 0.5 else "0" for x in range(image.size[0]))
            for y in range(image.size[1])
        ]
        result["preview"]["filepath"] = bpy.path.abspath(image.filepath)
    result["user_dir"] = bpy.utils.extension_path_user(package)
    result["remove_bl_options"] = sorted(operators.PEANUT_OT_remove_object.bl_options)

    # -- remove: one undo step, placement, render before/after -----------------------------------
    # A marker made just before the undo push tells which step one undo lands on.
    scene.timeline_markers.new("before PEANUT", frame=1)
    bpy.ops.ed.undo_push(message="before PEANUT")
    n_before = len(ed.strips_all)
    before = strips(ed)
    # undo=True: push an undo step as a click in the UI does (scripted calls skip it by default).
    result["remove"] = call(
        bpy.ops.peanut.remove_object,
        "EXEC_DEFAULT",
        True,
        mask_path=config["mask"],
        server=config["address"],
        import_matte=True,
        output_dir=os.path.join(config["work"], "out"),
    )
    after = strips(bpy.context.scene.sequence_editor)
    result["added"] = [after[name] for name in after if name not in before]
    result["source_after"] = after.get("Shot")
    job = operators.active_job()
    if job is None:
        raise RuntimeError(f"no job was started: {result['remove']}")
    result["job"] = {
        "id": job.job_id,
        "state": job.state,
        "output": job.request.output_path,
        "matte": job.request.matte_path,
        "start": job.request.start,
        "end": job.request.end,
    }

    # One undo step takes the new strips away again (and only that step: the marker stays).
    result["undo"] = call(bpy.ops.ed.undo)
    ed = bpy.context.scene.sequence_editor
    result["after_undo"] = {
        "count": len(ed.strips_all),
        "before": n_before,
        "names": sorted(s.name for s in ed.strips_all),
        "marker": "before PEANUT" in bpy.context.scene.timeline_markers,
    }
    result["redo"] = call(bpy.ops.ed.redo)
    scene = bpy.context.scene
    ed = scene.sequence_editor
    result["after_redo"] = sorted(s.name for s in ed.strips_all)

    # Render the sequencer at one frame with the result muted (before) and playing (after).
    cleaned = next((s for s in ed.strips_all if s.name not in before and not s.mute), None)
    if cleaned is not None:
        scene.frame_set(cleaned.frame_final_start + 2)
        result["render_frame"] = scene.frame_current
        for label, mute in (("before", True), ("after", False)):
            cleaned.mute = mute
            scene.render.filepath = os.path.join(config["work"], f"render_{label}.png")
            scene.render.image_settings.file_format = "PNG"
            bpy.ops.render.render(write_still=True)
        cleaned.mute = False
        # The cancel case below must find the channels as the first run did.
        for s in [s for s in ed.strips_all if s.name not in before]:
            ed.strips.remove(s)

    # -- cancel while the job runs: no strip, no files ------------------------------------------------
    ed.active_strip = ed.strips_all["Shot"]
    n_before = len(ed.strips_all)
    seen = {}

    def canceller():
        # What the Cancel button / ESC do, from another thread since EXEC_DEFAULT holds the main one.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job = operators.active_job()
            if job is not None and job.job_id and not job.finished.is_set():
                seen["job_id"], seen["state_at_cancel"] = job.job_id, job.state
                seen["cancelled"] = operators.cancel_active()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=canceller)
    thread.start()
    cancel_dir = os.path.join(config["work"], "cancel")
    result["cancel"] = call(
        bpy.ops.peanut.remove_object,
        "EXEC_DEFAULT",
        mask_path=config["mask"],
        server=config["address"],
        import_matte=True,
        output_dir=cancel_dir,
    )
    thread.join()
    job = operators.active_job()
    result["cancel"].update(seen)
    result["cancel"]["state"] = job.state
    result["cancel"]["strips_added"] = len(bpy.context.scene.sequence_editor.strips_all) - n_before
    result["cancel"]["files_left"] = (
        sorted(os.path.join(d, f) for d, _, fs in os.walk(cancel_dir) for f in fs) if os.path.isdir(cancel_dir) else []
    )
    result["cancel"]["dirs_left"] = sorted(os.listdir(cancel_dir)) if os.path.isdir(cancel_dir) else []
    result["cancel_poll_after"] = bpy.types.PEANUT_OT_cancel.poll(bpy.context)

    # -- unsupported strip: a clear report --------------------------------------------------------------
    ed.active_strip = ed.strips_all["Blocker"]
    result["wrong_type"] = call(bpy.ops.peanut.remove_object, "EXEC_DEFAULT", prompt="dog", server=config["address"])


try:
    main()
except Exception:
    result["errors"].append(traceback.format_exc())
with open(sys.argv[2], "w") as f:
    json.dump(result, f, indent=1, default=str)
