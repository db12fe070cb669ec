"""Operators: peanut.remove_object, peanut.cancel, peanut.preview_mask, peanut.check_server, peanut.start_server.

Network calls run on threads (jobs.py). From the UI, remove_object is a modal
operator polling its job on a timer; from a script with EXEC_DEFAULT it waits
for the job and places the result before returning.
"""

from __future__ import annotations

import logging
import os
import shlex
import time

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, IntVectorProperty, StringProperty

from . import blender_api, core, jobs
from .props import MODE_ITEMS, PRESET_ITEMS, UPSCALER_ITEMS, prefs

log = logging.getLogger(__name__)

# Session state the panel draws (one job at a time, like a render).
_active_job: jobs.RemovalJob | None = None
_server_status = jobs.ServerStatus()
_status_task: jobs.Task | None = None
_preview_info: str = ""
PREVIEW_IMAGE = "PEANUT mask preview"
POLL_SECONDS = 0.2


def active_job() -> jobs.RemovalJob | None:
    return _active_job


def server_status() -> jobs.ServerStatus:
    return _server_status


def preview_info() -> str:
    return _preview_info


def cancel_active() -> bool:
    """Cancel the running job (what peanut.cancel and ESC do). Safe from any thread."""
    job = _active_job
    if job is None or job.finished.is_set():
        return False
    job.cancel()
    return True


def user_dir(name: str) -> str:
    """A folder of the extension's own user directory (bpy.utils.extension_path_user), made if
    missing: previews, logs and the outputs of an unsaved file stay with the extension, out of
    the shared temporary folder, and are removed with it."""
    return bpy.utils.extension_path_user(__package__, path=name, create=True)


def _start_polling(op, context) -> set[str]:
    """Run `op` as a modal operator that a timer wakes every POLL_SECONDS: the work runs on a
    thread and the UI stays live. op.modal() ends it with _stop_polling()."""
    wm = context.window_manager
    op._timer = wm.event_timer_add(POLL_SECONDS, window=context.window)
    wm.modal_handler_add(op)
    return {"RUNNING_MODAL"}


def _stop_polling(op, context) -> None:
    context.window_manager.event_timer_remove(op._timer)
    op._timer = None


def _address(context, override: str) -> str:
    return override.strip() or prefs(context).server_address


def _output_base(context) -> str:
    configured = prefs(context).output_dir
    if configured:
        return os.path.realpath(bpy.path.abspath(configured))
    if bpy.data.filepath:
        return os.path.join(os.path.dirname(os.path.realpath(bpy.data.filepath)), "peanut")
    return user_dir("output")


def _prop_or_setting(op, settings, name: str):
    """A property set on the operator call wins; otherwise the panel's setting."""
    return getattr(op, name) if op.properties.is_property_set(name) else getattr(settings, name)


def _prompt_and_mask_file(op, settings) -> tuple[str, str]:
    """What Remove and Preview both send: the prompt, and the mask file as an absolute path
    (the daemon does not know the .blend's folder) or ""."""
    prompt = _prop_or_setting(op, settings, "prompt").strip()
    mask_path = _prop_or_setting(op, settings, "mask_path").strip()
    return prompt, os.path.realpath(bpy.path.abspath(mask_path)) if mask_path else ""


# -- result placement ------------------------------------------------------------------------------


def _copy_look(source, target) -> None:
    """Make the new strip sit exactly over the source on screen (transform, crop, colour space)."""
    for attr in ("scale_x", "scale_y", "offset_x", "offset_y", "rotation", "origin", "filter"):
        if hasattr(source.transform, attr):
            try:
                setattr(target.transform, attr, getattr(source.transform, attr))
            except (AttributeError, TypeError, ValueError):
                pass
    for attr in ("min_x", "max_x", "min_y", "max_y"):
        setattr(target.crop, attr, getattr(source.crop, attr))
    for attr in ("use_flip_x", "use_flip_y"):
        setattr(target, attr, getattr(source, attr))
    try:
        target.colorspace_settings.name = source.colorspace_settings.name
    except (AttributeError, TypeError, ValueError):
        pass


def _add_media(collection, name: str, path: str, start: int, count: int, channel: int, timeline_start: int):
    """An image-sequence strip for a PNG folder, or a movie strip for a video file."""
    if os.path.isdir(path):
        files = core.sequence_files(path, start, count)
        missing = [f for f in files if not os.path.isfile(os.path.join(path, f))]
        if missing:
            raise core.StripError(f"{len(missing)} of {count} result frames are missing in {path} (first {missing[0]})")
        strip = collection.new_image(
            name=name, filepath=os.path.join(path, files[0]), channel=channel, frame_start=timeline_start
        )
        for f in files[1:]:
            strip.elements.append(f)
    else:
        strip = collection.new_movie(name=name, filepath=path, channel=channel, frame_start=timeline_start)
    if int(strip.frame_final_duration) != count:
        n = int(strip.frame_final_duration)
        collection.remove(strip)
        raise core.StripError(f"the result has {n} frames, the strip shows {count}")
    return strip


def place_result(context, source, rng: core.SourceRange, job: jobs.RemovalJob, prompt: str, import_matte: bool) -> list:
    """Add the result strip(s) above the source; the source strip is not touched."""
    editor = context.scene.sequence_editor
    collection = blender_api.container_of(editor, source)
    result = job.job.result
    label = prompt or (os.path.splitext(os.path.basename(job.request.mask_path))[0] if job.request.mask_path else "")
    start, end = rng.timeline_start, rng.timeline_start + rng.length
    added = []
    try:
        if job.request.mode == "matte":
            channel = core.first_free_channel(blender_api.occupied(collection), source.channel, start, end)
            added.append(
                _add_media(
                    collection,
                    core.result_name(source.name, label, "matte"),
                    result.matte_path or job.request.matte_path,
                    rng.start,
                    rng.length,
                    channel,
                    start,
                )
            )
        else:
            channel = core.first_free_channel(blender_api.occupied(collection), source.channel, start, end)
            clean = _add_media(
                collection,
                core.result_name(source.name, label),
                result.output_path or job.request.output_path,
                rng.start,
                rng.length,
                channel,
                start,
            )
            added.append(clean)
            if import_matte and (result.matte_path or job.request.matte_path):
                channel = core.first_free_channel(blender_api.occupied(collection), clean.channel, start, end)
                matte = _add_media(
                    collection,
                    core.result_name(source.name, label, "matte"),
                    result.matte_path or job.request.matte_path,
                    rng.start,
                    rng.length,
                    channel,
                    start,
                )
                matte.mute = True
                added.append(matte)
    except Exception:
        for strip in added:  # all or nothing
            collection.remove(strip)
        raise
    for strip in added:
        _copy_look(source, strip)
    return added


# -- operators -------------------------------------------------------------------------------------


class PEANUT_OT_remove_object(bpy.types.Operator):
    """Remove an object from the active strip; the cleaned shot lands on the channel above"""

    bl_idname = "peanut.remove_object"
    bl_label = "Remove Object"
    # UNDO: the placed strips are one undo step. No REGISTER: "Adjust Last Operation" would
    # run execute() again, which waits for a whole new job on the UI thread.
    bl_options = {"UNDO"}

    prompt: StringProperty(name="Prompt", default="")
    mask_path: StringProperty(name="Mask", default="", subtype="FILE_PATH")
    box: IntVectorProperty(
        name="Box",
        size=4,
        default=(0, 0, 0, 0),
        description="X, Y, width, height of the object on the current frame, source pixels",
    )
    mask_name: StringProperty(
        name="Mask shape",
        description="Name of a Mask datablock: the object on the current frame, tracked through the strip",
        default="",
    )
    approximate: BoolProperty(
        name="Approximate", default=False, description="Accept the best match on the words the masker understands"
    )
    include_effects: BoolProperty(name="Shadow too", default=False, description="Also remove the object's shadow")
    server: StringProperty(name="Server", description="Address overriding the preference", default="")
    mode: EnumProperty(name="Mode", items=MODE_ITEMS, default="REMOVE")
    preset: EnumProperty(name="Quality", items=PRESET_ITEMS, default="BALANCED")
    mask_dilation: IntProperty(name="Mask dilation", default=-1, min=-1, max=64)
    upscaler: EnumProperty(name="Upscaler", items=UPSCALER_ITEMS, default="auto")
    import_matte: BoolProperty(name="Import matte", default=False)
    strip_name: StringProperty(name="Strip", description="Strip to process; empty: the active strip", default="")
    output_dir: StringProperty(
        name="Output folder", description="Empty: the preference", default="", subtype="DIR_PATH"
    )
    timeout: IntProperty(
        name="Timeout", description="EXEC_DEFAULT only: seconds to wait, 0 = no limit", default=0, min=0
    )

    _timer = None

    @classmethod
    def poll(cls, context):
        return context.scene is not None and context.scene.sequence_editor is not None

    # Settings resolved once per call, kept on the instance for modal().
    def _prepare(self, context) -> bool:
        global _active_job
        if _active_job is not None and not _active_job.finished.is_set():
            self.report({"ERROR"}, "PEANUT is already running a job; cancel it or wait")
            return False
        settings = context.scene.peanut
        editor = context.scene.sequence_editor
        if self.strip_name:
            source = (
                editor.strips_all.get(self.strip_name)
                if hasattr(editor, "strips_all")
                else editor.sequences_all.get(self.strip_name)
            )
        else:
            source = editor.active_strip
        prompt, mask_path = _prompt_and_mask_file(self, settings)
        mode = _prop_or_setting(self, settings, "mode")
        box = (
            tuple(self.box)
            if self.properties.is_property_set("box")
            else tuple(settings.box)
            if settings.use_box
            else None
        )
        shape = bpy.data.masks.get(self.mask_name) if self.mask_name else settings.mask_datablock
        if self.mask_name and shape is None:
            self.report({"ERROR"}, f"there is no Mask named {self.mask_name!r}")
            return False
        kept = core.kept_boxes(settings.kept_boxes, source.name) if source is not None else []
        if not prompt and not mask_path and box is None and shape is None and not kept:
            self.report({"ERROR"}, "type what to remove (prompt), draw a box or a mask, or choose a mask file")
            return False
        try:
            rng = blender_api.source_range(context.scene, source)
        except core.StripError as exc:
            self.report({"ERROR"}, str(exc))
            return False
        # A box or a drawn mask shows the object on the current frame: that source frame.
        here = rng.source_frame(context.scene.frame_current)
        if (box is not None or shape is not None) and here is None:
            self.report({"ERROR"}, "move the playhead onto the strip: the box or mask is read on the current frame")
            return False
        base = os.path.realpath(bpy.path.abspath(self.output_dir)) if self.output_dir else _output_base(context)
        os.makedirs(base, exist_ok=True)
        label = prompt or (
            shape.name
            if shape is not None
            else "box"
            if box is not None or kept
            else os.path.splitext(os.path.basename(mask_path))[0]
        )
        output = core.unique_output_dir(base, source.name, label)
        width, height = (
            blender_api.source_size(context.scene, source) if box is not None or shape is not None or kept else (0, 0)
        )
        if box is not None and (problem := core.box_in_source(box, width, height)):
            self.report({"ERROR"}, problem)
            return False
        for frame, kept_box in kept:
            if problem := core.box_in_source(kept_box, width, height):
                self.report({"ERROR"}, f"the box kept on source frame {frame}: {problem}")
                return False
        mask_frame = None
        if shape is not None and box is None:
            polygons = blender_api.mask_polygons(shape, width, height, context.scene.frame_current)
            if not polygons:
                self.report({"ERROR"}, f"the Mask {shape.name!r} has no closed shape with three points or more")
                return False
            # The drawn shape becomes a one-image mask of the object on this frame, which the daemon tracks.
            mask_path = output + f"_shape_{here:06d}.png"
            core.write_grey_png(mask_path, core.rasterize(polygons, width, height))
            mask_frame = here
        kept, problem = core.job_boxes(here, box, kept, mask_frame, rng)
        if problem:
            self.report({"ERROR"}, problem)
            return False
        options: dict = {"preset": _prop_or_setting(self, settings, "preset").lower()}
        dilation = _prop_or_setting(self, settings, "mask_dilation")
        if dilation >= 0:
            options["mask_dilation"] = dilation
        upscaler = _prop_or_setting(self, settings, "upscaler")
        if upscaler != "auto":
            options["upscaler"] = upscaler
        if _prop_or_setting(self, settings, "include_effects"):
            options["include_effects"] = True
        p = prefs(context)
        request = jobs.RemovalRequest(
            address=_address(context, self.server),
            state_dir=p.state_dir,
            source_path=rng.path,
            start=rng.start,
            end=rng.end,
            output_path=output,
            matte_path=output + "_matte",
            prompt=prompt,
            mask_path=mask_path,
            mode="matte" if mode == "MATTE" else "remove",
            options=options,
            box=box,
            box_frame=here if box is not None else 0,
            mask_frame=mask_frame,
            kept_boxes=kept,
            approximate=bool(_prop_or_setting(self, settings, "approximate")),
        )
        self._source_name = source.name
        self._range = rng
        self._prompt = label
        self._import_matte = bool(_prop_or_setting(self, settings, "import_matte"))
        log.info("PEANUT: %s frames %d-%d of %s -> %s", source.name, rng.start, rng.end - 1, rng.path, output)
        _active_job = jobs.RemovalJob(request).start()
        return True

    def _finish(self, context) -> set[str]:
        job = _active_job
        blender_api.tag_redraw_sequencer()
        for warning in job.warnings:
            self.report({"WARNING"}, warning)
        if job.state == "cancelled":
            self.report({"WARNING"}, "PEANUT job cancelled; nothing was added")
            return {"CANCELLED"}
        if job.state != "succeeded":
            self.report({"ERROR"}, f"PEANUT: {job.error or job.state}")
            return {"CANCELLED"}
        editor = context.scene.sequence_editor
        source = blender_api.all_strips(editor)
        source = next((s for s in source if s.name == self._source_name), None)
        if source is None:
            self.report({"ERROR"}, f"the strip {self._source_name!r} is gone; result left in {job.request.output_path}")
            return {"CANCELLED"}
        try:
            added = place_result(context, source, self._range, job, self._prompt, self._import_matte)
        except core.StripError as exc:
            self.report({"ERROR"}, f"PEANUT: {exc}")
            return {"CANCELLED"}
        if job.job.result.ignored_words:
            self.report({"WARNING"}, "PEANUT (approximate) ignored: " + ", ".join(job.job.result.ignored_words))
        backends = ", ".join(f"{b.backend}" for b in job.job.result.backends)
        self.report(
            {"INFO"}, f"PEANUT: added {', '.join(s.name for s in added)} on channel {added[0].channel} ({backends})"
        )
        return {"FINISHED"}

    def execute(self, context):
        if not self._prepare(context):
            return {"CANCELLED"}
        job = _active_job
        deadline = time.monotonic() + self.timeout if self.timeout else None
        while not job.finished.wait(POLL_SECONDS):
            if deadline is not None and time.monotonic() > deadline:
                job.cancel()
                job.finished.wait(30)
                self.report({"ERROR"}, f"PEANUT: gave up after {self.timeout}s; job cancelled")
                return {"CANCELLED"}
        return self._finish(context)

    def invoke(self, context, event):
        return _start_polling(self, context) if self._prepare(context) else {"CANCELLED"}

    def modal(self, context, event):
        job = _active_job
        if job is None:  # the add-on was reloaded under a running operator: nothing to follow
            _stop_polling(self, context)
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS":
            cancel_active()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        blender_api.tag_redraw_sequencer()
        if not job.finished.is_set():
            return {"PASS_THROUGH"}
        _stop_polling(self, context)
        return self._finish(context)


class PEANUT_OT_cancel(bpy.types.Operator):
    """Cancel the running PEANUT job on the daemon (its partial output is removed)"""

    bl_idname = "peanut.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return _active_job is not None and not _active_job.finished.is_set()

    def execute(self, context):
        if cancel_active():
            self.report({"INFO"}, "PEANUT: cancelling")
            return {"FINISHED"}
        return {"CANCELLED"}


def _load_preview(png: bytes) -> bpy.types.Image:
    path = os.path.join(user_dir("preview"), f"peanut_preview_{os.getpid()}.png")
    with open(path, "wb") as f:
        f.write(png)
    image = bpy.data.images.get(PREVIEW_IMAGE)
    if image is None:
        image = bpy.data.images.load(path, check_existing=False)
        image.name = PREVIEW_IMAGE
    else:
        image.filepath = path
        image.reload()
    image.preview_ensure()
    image.preview.reload()
    return image


class PEANUT_OT_preview_mask(bpy.types.Operator):
    """Show the mask the daemon picks on the current frame (as an image in the panel)"""

    bl_idname = "peanut.preview_mask"
    bl_label = "Preview Mask"

    prompt: StringProperty(name="Prompt", default="")
    mask_path: StringProperty(name="Mask", default="", subtype="FILE_PATH")
    server: StringProperty(name="Server", default="")
    frame: IntProperty(name="Frame", description="Timeline frame; -1: the current frame", default=-1)

    _task = None
    _timer = None

    @classmethod
    def poll(cls, context):
        return context.scene is not None and context.scene.sequence_editor is not None

    def _start(self, context) -> bool:
        settings = context.scene.peanut
        prompt, mask_path = _prompt_and_mask_file(self, settings)
        try:
            strip = blender_api.active_strip(context)
            rng = blender_api.source_range(context.scene, strip)
        except core.StripError as exc:
            self.report({"ERROR"}, str(exc))
            return False
        frame = context.scene.frame_current if self.frame < 0 else self.frame
        source_frame = rng.source_frame(frame)
        if source_frame is None:
            self.report({"ERROR"}, f"frame {frame} is outside the active strip")
            return False
        # The box on this frame, as the job would send it: the panel's box, else one kept here.
        box = (
            tuple(settings.box)
            if settings.use_box
            else dict(core.kept_boxes(settings.kept_boxes, strip.name)).get(source_frame)
        )
        if not prompt and not mask_path and box is None:
            self.report({"ERROR"}, "type what to remove (prompt), draw a box, or choose a mask")
            return False
        if box is not None and (problem := core.box_in_source(box, *blender_api.source_size(context.scene, strip))):
            self.report({"ERROR"}, problem)  # as Remove says it: a preview must not run a box a job refuses
            return False
        address, state_dir = _address(context, self.server), prefs(context).state_dir
        approximate = bool(settings.approximate)  # as Remove sends it: a preview must not refuse what a job runs

        def call():
            client = jobs.make_client(address, state_dir)
            boxes = [jobs.client_module().box_prompt(source_frame, *box)] if box is not None else []
            try:
                return client.preview_mask(
                    rng.path,
                    source_frame,
                    prompt=prompt,
                    mask_path=mask_path,
                    frame_prompts=boxes,
                    approximate=approximate,
                )
            finally:
                client.close()

        self._task = jobs.Task(call, "peanut-preview").start()
        return True

    def _finish(self) -> set[str]:
        global _preview_info
        task = self._task
        if task.error:
            self.report({"ERROR"}, f"PEANUT: {task.error}")
            return {"CANCELLED"}
        response = task.result
        _load_preview(response.mask_png)
        what = f" '{response.chosen_object}'" if response.chosen_object else ""
        _preview_info = f"{response.backend}{what}: {response.mask_pixels} px"
        for warning in response.warnings:
            self.report({"WARNING"}, warning)
        blender_api.tag_redraw_sequencer()
        return {"FINISHED"}

    def execute(self, context):
        if not self._start(context):
            return {"CANCELLED"}
        self._task.done.wait()
        return self._finish()

    def invoke(self, context, event):
        return _start_polling(self, context) if self._start(context) else {"CANCELLED"}

    def modal(self, context, event):
        if event.type != "TIMER" or not self._task.done.is_set():
            return {"PASS_THROUGH"}
        _stop_polling(self, context)
        return self._finish()


def request_status_check(address: str, state_dir: str) -> jobs.Task:
    """Refresh the connection state in the background; a timer copies it for the panel."""
    global _status_task
    if _status_task is not None and not _status_task.done.is_set():
        return _status_task
    task = jobs.Task(lambda: jobs.fetch_status(address, state_dir), "peanut-info").start()
    _status_task = task

    def poll():
        global _server_status
        if not task.done.is_set():
            return POLL_SECONDS
        if task.result is not None:
            _server_status = task.result
        else:
            _server_status = jobs.ServerStatus(checked=True, message=task.error)
        blender_api.tag_redraw_sequencer()
        return None

    bpy.app.timers.register(poll, first_interval=POLL_SECONDS)
    return task


class PEANUT_OT_check_server(bpy.types.Operator):
    """Ask the daemon what it is and which backends it can run"""

    bl_idname = "peanut.check_server"
    bl_label = "Check Server"

    server: StringProperty(name="Server", default="")

    def execute(self, context):
        global _server_status
        task = request_status_check(_address(context, self.server), prefs(context).state_dir)
        if bpy.app.background:  # scripts want the answer now
            task.done.wait()
            _server_status = task.result or jobs.ServerStatus(checked=True, message=task.error)
            self.report({"INFO"} if _server_status.ok else {"ERROR"}, _server_status.message)
            return {"FINISHED"} if _server_status.ok else {"CANCELLED"}
        return {"FINISHED"}


class PEANUT_OT_start_server(bpy.types.Operator):
    """Start a PEANUT daemon with the command from the preferences"""

    bl_idname = "peanut.start_server"
    bl_label = "Start Server"

    def execute(self, context):
        p = prefs(context)
        command = shlex.split(p.server_command, posix=os.name == "posix")
        log_path = os.path.join(user_dir("logs"), "peanut-server.log")
        try:
            jobs.start_daemon(command, log_path)
        except OSError as exc:
            self.report({"ERROR"}, f"could not start `{p.server_command}`: {exc}")
            return {"CANCELLED"}
        address = p.server_address
        tries = {"left": 60}

        # Poll GetInfo once a second until the daemon answers (models may take a while to load).
        def poll():
            if _server_status.ok or tries["left"] <= 0:
                return None
            tries["left"] -= 1
            request_status_check(address, p.state_dir)
            return 1.0

        bpy.app.timers.register(poll, first_interval=1.0)
        self.report({"INFO"}, f"starting `{p.server_command}` (log: {log_path})")
        return {"FINISHED"}


class PEANUT_OT_keep_box(bpy.types.Operator):
    """Keep the box for the current frame: the earliest kept box starts the tracking, each later one
    corrects it there (for the frames a job said to check)"""

    bl_idname = "peanut.keep_box"
    bl_label = "Keep Box Here"
    bl_options = {"UNDO"}

    @classmethod
    def poll(cls, context):
        return context.scene is not None and context.scene.sequence_editor is not None

    def execute(self, context):
        settings = context.scene.peanut
        strip = context.scene.sequence_editor.active_strip
        try:
            rng = blender_api.source_range(context.scene, strip)
        except core.StripError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        here = rng.source_frame(context.scene.frame_current)
        if here is None:
            self.report({"ERROR"}, "move the playhead onto the strip: the box is kept for the current frame")
            return {"CANCELLED"}
        if settings.box[2] <= 0 or settings.box[3] <= 0:
            self.report({"ERROR"}, "set the box around the object on this frame first")
            return {"CANCELLED"}
        for i, kept in enumerate(settings.kept_boxes):
            if kept.strip == strip.name and kept.frame == here:  # one box per frame: the new one replaces it
                settings.kept_boxes.remove(i)
                break
        item = settings.kept_boxes.add()
        item.strip, item.frame, item.box = strip.name, here, tuple(settings.box)
        self.report({"INFO"}, f"box kept on source frame {here} of {strip.name}")
        return {"FINISHED"}


class PEANUT_OT_clear_kept_boxes(bpy.types.Operator):
    """Forget the kept boxes"""

    bl_idname = "peanut.clear_kept_boxes"
    bl_label = "Clear Kept Boxes"
    bl_options = {"UNDO"}

    def execute(self, context):
        context.scene.peanut.kept_boxes.clear()
        return {"FINISHED"}


CLASSES = (
    PEANUT_OT_keep_box,
    PEANUT_OT_clear_kept_boxes,
    PEANUT_OT_remove_object,
    PEANUT_OT_cancel,
    PEANUT_OT_preview_mask,
    PEANUT_OT_check_server,
    PEANUT_OT_start_server,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    if _active_job is not None and not _active_job.finished.is_set():
        _active_job.cancel()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
