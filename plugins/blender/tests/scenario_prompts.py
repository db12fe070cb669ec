"""Runs inside Blender (the bpy venv): a box, a Mask datablock and the approximate checkbox drive
peanut.remove_object against a real daemon; reports JSON.

    python scenario_prompts.py CONFIG.json RESULT.json

CONFIG: zip, clip (movie), fps, width, height, address, work, box ([x, y, w, h] of the object on
source frame `frame`), frame, circle ([cx, cy, r] of the object on that frame, source pixels),
later ([frame, [x, y, w, h]]: the object's box on a later source frame).
The pytest side (tests/test_blender_extension.py) compares the mattes with the true masks.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import traceback

import bpy

config = json.load(open(sys.argv[1]))
result: dict = {"errors": []}


def call(op, *args, **kwargs):
    try:
        return {"ret": sorted(op(*args, **kwargs)), "error": ""}
    except RuntimeError as exc:
        return {"ret": ["RAISED"], "error": str(exc)}


def run(operators, name: str, **kwargs) -> dict:
    out = call(
        bpy.ops.peanut.remove_object,
        "EXEC_DEFAULT",
        server=config["address"],
        mode="MATTE",
        output_dir=os.path.join(config["work"], name),
        timeout=240,
        **kwargs,
    )
    job = operators.active_job()
    if job is not None and out["ret"] != ["RAISED"]:
        out.update(
            state=job.state,
            output=job.request.output_path,
            start=job.request.start,
            end=job.request.end,
            mask_path=job.request.mask_path,
            ignored=list(job.job.result.ignored_words) if job.job is not None else [],
            kept_boxes=[[f, list(b)] for f, b in job.request.kept_boxes],
        )
    return out


def preview(operators, name: str) -> dict:
    """Preview Mask on the current frame; a copy of the preview PNG (every preview writes the same
    file), read back by the pytest side, and the panel's line about it."""
    out = call(bpy.ops.peanut.preview_mask, "EXEC_DEFAULT", server=config["address"])
    image = bpy.data.images.get(operators.PREVIEW_IMAGE)
    out["png"] = ""
    if image is not None and out["ret"] == ["FINISHED"]:
        out["png"] = os.path.join(config["work"], f"{name}.png")
        shutil.copyfile(bpy.path.abspath(image.filepath), out["png"])
    out["info"] = operators._preview_info
    return out


def main() -> None:
    ret = bpy.ops.extensions.package_install_files(filepath=config["zip"], repo="user_default", enable_on_install=True)
    result["install"] = sorted(ret)
    package = [a.module for a in bpy.context.preferences.addons if "peanut" in a.module][0]
    operators = sys.modules[package + ".operators"]

    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = config["fps"], 1.0
    scene.render.resolution_x, scene.render.resolution_y = config["width"], config["height"]
    ed = scene.sequence_editor_create()
    src = ed.strips.new_movie(name="Shot", filepath=config["clip"], channel=2, frame_start=1)
    ed.active_strip = src
    # The playhead on source frame `frame`: the box and the mask are read there.
    scene.frame_current = int(src.frame_final_start) + config["frame"]

    result["box"] = run(operators, "box", box=config["box"])
    # A box and a noun: refused without the checkbox, named with it.
    result["noun_refused"] = run(operators, "noun", box=config["box"], prompt="the disc")
    result["noun_approximate"] = run(operators, "noun2", box=config["box"], prompt="the disc", approximate=True)
    # Outside the frame: a clear report, no job.
    w, h = config["width"], config["height"]
    result["box_outside"] = call(
        bpy.ops.peanut.remove_object,
        "EXEC_DEFAULT",
        server=config["address"],
        box=(w - 4, 0, 20, 20),
        output_dir=os.path.join(config["work"], "outside"),
    )

    # Keep Box Here on the start frame and on a later one, then run with no current box.
    settings = scene.peanut
    settings.box = config["box"]
    result["keep"] = [call(bpy.ops.peanut.keep_box)]
    # Preview Mask with the panel's box on this frame: the daemon cuts the box, no prompt needed.
    settings.use_box = True
    result["preview_box"] = preview(operators, "preview_box")
    # With a noun: refused as a job is, and shown when the panel's Approximate box is ticked.
    settings.prompt = "the disc"
    result["preview_noun"] = preview(operators, "preview_noun")
    settings.approximate = True
    result["preview_noun_approximate"] = preview(operators, "preview_noun_approximate")
    settings.prompt, settings.approximate, settings.use_box = "", False, False
    later, later_box = config["later"]
    scene.frame_current = int(src.frame_final_start) + later
    settings.box = later_box
    result["keep"].append(call(bpy.ops.peanut.keep_box))
    # ... and with no panel box, the box kept on the frame under the playhead.
    result["preview_kept"] = preview(operators, "preview_kept")
    # The Box ticked but not drawn (no width): refused as Remove refuses it, not the kept box instead.
    settings.use_box, settings.box = True, (0, 0, 0, 0)
    result["preview_empty_box"] = preview(operators, "preview_empty_box")
    settings.use_box = False
    result["kept"] = run(operators, "kept")
    call(bpy.ops.peanut.clear_kept_boxes)
    result["kept_cleared"] = len(settings.kept_boxes)
    scene.frame_current = int(src.frame_final_start) + config["frame"]

    # A Mask datablock drawn as a 16-point polygon around the object (normalised, y up).
    mask = bpy.data.masks.new("Disc")
    layer = mask.layers.new()
    spline = layer.splines.new()
    cx, cy, r = config["circle"]
    spline.points.add(15)
    for k, point in enumerate(spline.points):
        a = 2 * math.pi * k / 16
        co = ((cx + r * math.cos(a)) / w, 1 - (cy + r * math.sin(a)) / h)
        point.co = co
        point.handle_left = co
        point.handle_right = co
    spline.use_cyclic = True
    result["mask"] = run(operators, "mask", mask_name="Disc")


try:
    main()
except Exception:
    result["errors"].append(traceback.format_exc())
json.dump(result, open(sys.argv[2], "w"), indent=1)
