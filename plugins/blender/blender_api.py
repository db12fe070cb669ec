"""The few places where the sequencer API differs between Blender 4.2 LTS and 5.0.

4.2/4.3 say `sequences` (SequenceEditor.sequences, MetaSequence.sequences,
context.active_sequence_strip); 4.4 added `strips` beside them and 5.0 removed
the old names. Everything else in the extension goes through these helpers.
"""

from __future__ import annotations

import os

import bpy

from . import core


def strips_collection(owner):
    """The editable strip collection of a SequenceEditor or a meta strip."""
    return owner.strips if hasattr(owner, "strips") else owner.sequences


def all_strips(editor) -> list:
    return list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)


def active_strip(context):
    scene = context.scene
    editor = scene.sequence_editor if scene else None
    return editor.active_strip if editor else None


def container_of(editor, strip):
    """The collection the strip lives in: its meta strip's, or the editor's top level."""
    meta = strip.parent_meta() if hasattr(strip, "parent_meta") else None
    return strips_collection(meta if meta is not None else editor)


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def _retimed(strip) -> bool:
    keys = list(getattr(strip, "retiming_keys", []) or [])
    if not keys:
        return False
    # Two keys on the content's ends are the identity mapping Blender may keep after a reset.
    identity = (
        len(keys) == 2
        and abs(keys[0].timeline_frame - strip.frame_start) < 0.5
        and abs(keys[1].timeline_frame - (strip.frame_start + strip.frame_duration)) < 0.5
    )
    return not identity


def timing_of(scene, strip) -> core.StripTiming:
    return core.StripTiming(
        frame_start=float(strip.frame_start),
        frame_final_start=int(strip.frame_final_start),
        frame_final_end=int(strip.frame_final_end),
        frame_offset_start=float(strip.frame_offset_start),
        frame_offset_end=float(strip.frame_offset_end),
        animation_offset_start=int(getattr(strip, "animation_offset_start", 0)),
        media_fps=float(strip.fps) if strip.type == "MOVIE" else None,
        scene_fps=scene_fps(scene),
        reversed=bool(getattr(strip, "use_reverse_frames", False)),
        strobe=float(getattr(strip, "strobe", 1.0)),
        retimed=_retimed(strip),
    )


def source_range(scene, strip) -> core.SourceRange:
    """What the strip shows, as a daemon source range. Raises core.StripError."""
    if strip is None:
        raise core.StripError("select a movie or image strip first")
    timing = timing_of(scene, strip)
    if strip.type == "MOVIE":
        path = os.path.realpath(bpy.path.abspath(strip.filepath))
        if not os.path.isfile(path):
            raise core.StripError(f"the strip's movie is missing: {path}")
        return core.movie_strip_range(path, timing)
    if strip.type == "IMAGE":
        directory = os.path.realpath(bpy.path.abspath(strip.directory))
        if not os.path.isdir(directory):
            raise core.StripError(f"the strip's image folder is missing: {directory}")
        elements = [e.filename for e in strip.elements]
        return core.image_strip_range(directory, elements, timing)
    raise core.StripError(f"PEANUT works on movie and image strips, not {strip.type.lower()} strips")


def occupied(collection) -> list[tuple[int, int, int]]:
    return [(s.channel, int(s.frame_final_start), int(s.frame_final_end)) for s in collection]


def tag_redraw_sequencer() -> None:
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()


def mask_polygons(mask, width: int, height: int, frame: int) -> list[list[tuple[float, float]]]:
    """The closed splines of a Mask datablock's visible layers, in source pixels (x right, y down).

    Mask coordinates are normalised to the frame (0..1, y up); points are evaluated at `frame`
    (their animation, if any, is followed by Blender when the frame is set)."""
    polygons = []
    for layer in mask.layers:
        if layer.hide_render:
            continue
        for spline in layer.splines:
            pts = [
                (
                    (p.handle_left[0] * width, (1 - p.handle_left[1]) * height),
                    (p.co[0] * width, (1 - p.co[1]) * height),
                    (p.handle_right[0] * width, (1 - p.handle_right[1]) * height),
                )
                for p in spline.points
            ]
            if len(pts) >= 3:
                polygons.append(core.bezier_polygon(pts))
    return polygons


def source_size(scene, strip) -> tuple[int, int]:
    """The strip's media size in pixels (what the daemon's source pixels are)."""
    elements = getattr(strip, "elements", None)
    if elements:
        element = elements[0]
        if getattr(element, "orig_width", 0) and getattr(element, "orig_height", 0):
            return int(element.orig_width), int(element.orig_height)
    if strip.type == "MOVIE":
        # Not loaded yet: open it as a clip to read its size, then drop it again.
        clip = bpy.data.movieclips.load(bpy.path.abspath(strip.filepath), check_existing=True)
        try:
            return int(clip.size[0]), int(clip.size[1])
        finally:
            if clip.users == 0:
                bpy.data.movieclips.remove(clip)
    render = scene.render
    return int(render.resolution_x), int(render.resolution_y)
