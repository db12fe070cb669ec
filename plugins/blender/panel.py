"""The PEANUT tab in the sequencer sidebar. Draws cached state only: no network calls in draw()."""

from __future__ import annotations

import bpy

from . import core, operators
from .props import prefs


class PEANUT_PT_main(bpy.types.Panel):
    bl_label = "PEANUT"
    bl_idname = "PEANUT_PT_main"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "PEANUT"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.peanut
        p = prefs(context)
        status = operators.server_status()
        if not status.checked:
            # First draw: ask in the background; the panel redraws when the answer comes.
            operators.request_status_check(p.server_address, p.state_dir)

        box = layout.box()
        row = box.row()
        row.label(text=status.address or p.server_address or "auto (server.json)", icon="URL")
        row.operator("peanut.check_server", text="", icon="FILE_REFRESH")
        if status.ok:
            box.label(text=status.message, icon="CHECKMARK")
            box.prop(settings, "show_backends", icon="TRIA_DOWN" if settings.show_backends else "TRIA_RIGHT")
            if settings.show_backends:
                col = box.column(align=True)
                for stage, name, available, reason in status.backends:
                    col.label(
                        text=f"{stage}: {name}" + ("" if available else f" ({reason})"),
                        icon="CHECKBOX_HLT" if available else "CHECKBOX_DEHLT",
                    )
        else:
            box.label(text=status.message if status.checked else "checking...", icon="ERROR")
            if status.checked:
                box.operator("peanut.start_server", icon="PLAY")

        col = layout.column()
        col.prop(settings, "prompt")
        col.prop(settings, "mask_path")
        col.prop(settings, "mask_datablock")
        row = col.row(align=True)
        row.prop(settings, "use_box", text="")
        sub = row.row(align=True)
        sub.enabled = settings.use_box
        sub.prop(settings, "box", text="")
        row = col.row(align=True)
        row.operator("peanut.keep_box", icon="ADD")
        strip = context.scene.sequence_editor.active_strip if context.scene.sequence_editor else None
        kept = [frame for frame, _ in core.kept_boxes(settings.kept_boxes, strip.name)] if strip is not None else []
        if settings.kept_boxes:
            row.operator("peanut.clear_kept_boxes", text="", icon="X")
        if kept:
            col.label(text=f"Boxes kept on source frames {', '.join(map(str, kept))}")
        col.prop(settings, "approximate")
        col.prop(settings, "include_effects")
        col.prop(settings, "mode", expand=True)
        col.prop(settings, "preset")
        col.prop(settings, "mask_dilation")
        col.prop(settings, "upscaler")
        if settings.mode == "REMOVE":
            col.prop(settings, "import_matte")

        job = operators.active_job()
        running = job is not None and not job.finished.is_set()
        row = layout.row(align=True)
        row.enabled = not running
        row.operator("peanut.preview_mask", icon="HIDE_OFF")
        row.operator("peanut.remove_object", text="Remove", icon="BRUSH_DATA")
        if running:
            total = max(job.frames_total, 1)
            text = f"{job.stage}: {job.frames_done}/{job.frames_total}  {core.format_eta(job.eta)}"
            if hasattr(layout, "progress"):  # Blender 4.0+
                layout.progress(factor=job.frames_done / total, type="BAR", text=text)
            else:
                layout.label(text=text)
            layout.operator("peanut.cancel", icon="CANCEL")
        elif job is not None and job.error:
            layout.label(text=job.error, icon="ERROR")

        image = bpy.data.images.get(operators.PREVIEW_IMAGE)
        if image is not None and image.preview is not None:
            layout.label(text=f"Mask: {operators.preview_info()}")
            layout.template_icon(icon_value=image.preview.icon_id, scale=8.0)


CLASSES = (PEANUT_PT_main,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
