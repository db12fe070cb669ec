"""Preferences (per user) and the panel's settings (per scene)."""

from __future__ import annotations

from dataclasses import dataclass

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    IntProperty,
    IntVectorProperty,
    PointerProperty,
    StringProperty,
)

MODE_ITEMS = [
    ("REMOVE", "Remove", "Cleaned frames (and the matte)"),
    ("MATTE", "Matte only", "Only the object's mask, as a matte strip"),
]
PRESET_ITEMS = [
    ("DRAFT", "Draft", "Fast, lower working resolution"),
    ("BALANCED", "Balanced", "The daemon's default"),
    ("QUALITY", "Quality", "Slow, full detail"),
]
UPSCALER_ITEMS = [
    ("auto", "Auto", "Learned upscaler when its weights are present, else Lanczos"),
    ("lanczos", "Lanczos", "No weights needed"),
    ("basicvsrpp", "BasicVSR++", "Learned; needs its weights on the daemon"),
]


class PeanutPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    server_address: StringProperty(
        name="Server address",
        description="host:port or unix:/path of the PEANUT daemon; empty: the one the running daemon announced",
        default="",
    )
    state_dir: StringProperty(
        name="State directory",
        description="The daemon's state directory (token, server.json); empty: $PEANUT_STATE_DIR or the per-user default",
        default="",
        subtype="DIR_PATH",
    )
    server_command: StringProperty(
        name="Server command",
        description="Command that starts a daemon when none answers",
        default="peanut-server",
    )
    output_dir: StringProperty(
        name="Output folder",
        description="Where cleaned frames go; empty: a 'peanut' folder beside the .blend file (temp folder if unsaved)",
        default="",
        subtype="DIR_PATH",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "server_address")
        layout.prop(self, "state_dir")
        layout.prop(self, "server_command")
        layout.prop(self, "output_dir")


@dataclass
class Prefs:
    """Preference values with defaults, also when the add-on runs unregistered from source."""

    server_address: str = ""
    state_dir: str = ""
    server_command: str = "peanut-server"
    output_dir: str = ""


def prefs(context=None) -> Prefs:
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    if addon is None or addon.preferences is None:
        return Prefs()
    p = addon.preferences
    return Prefs(
        p.server_address.strip(),
        bpy.path.abspath(p.state_dir) if p.state_dir else "",
        p.server_command.strip() or "peanut-server",
        p.output_dir,
    )


class PeanutKeptBox(bpy.types.PropertyGroup):
    """The object's box on one source frame of the strip, kept for the next job."""

    strip: StringProperty(name="Strip", description="The strip the box was kept on")
    frame: IntProperty(name="Frame", min=0, description="The strip's source frame the box is on")
    box: IntVectorProperty(
        name="Box", size=4, min=0, default=(0, 0, 0, 0), description="X, Y (top-left), width, height, source pixels"
    )


class PeanutSettings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", description="What to remove, e.g. 'the running dog'", default="")
    mask_path: StringProperty(
        name="Mask",
        description="External mask (image, folder or video) instead of a prompt",
        default="",
        subtype="FILE_PATH",
    )
    use_box: BoolProperty(name="Box", description="Point at the object with a box on the current frame", default=False)
    box: IntVectorProperty(
        name="Box",
        size=4,
        min=0,
        default=(0, 0, 0, 0),
        description="X, Y (top-left), width, height of the object on the current frame, in source pixels",
    )
    # Boxes kept on several frames: the earliest starts the tracking, each later one corrects it
    # there (the frames a job said to check).
    kept_boxes: CollectionProperty(type=PeanutKeptBox, name="Kept boxes")
    mask_datablock: PointerProperty(
        name="Mask shape",
        type=bpy.types.Mask,
        description="A Mask drawn in the Mask editor: the object on the current frame, tracked through the strip",
    )
    approximate: BoolProperty(
        name="Approximate",
        default=False,
        description="Accept the best match on the words the masker understands; the others are named in the "
        "report (without it such a prompt is refused)",
    )
    include_effects: BoolProperty(
        name="Shadow too",
        default=False,
        description="Also remove the object's shadow: dark regions that move with it and touch it",
    )
    mode: EnumProperty(name="Mode", items=MODE_ITEMS, default="REMOVE")
    preset: EnumProperty(name="Quality", items=PRESET_ITEMS, default="BALANCED")
    mask_dilation: IntProperty(
        name="Mask dilation",
        description="Grow the mask by this many pixels; -1: the preset's default",
        default=-1,
        min=-1,
        max=64,
    )
    upscaler: EnumProperty(name="Upscaler", items=UPSCALER_ITEMS, default="auto")
    import_matte: BoolProperty(name="Import matte", description="Add the matte, muted, above the result", default=False)
    show_backends: BoolProperty(name="Backends", default=False)


CLASSES = (PeanutPreferences, PeanutKeptBox, PeanutSettings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.peanut = bpy.props.PointerProperty(type=PeanutSettings)


def unregister() -> None:
    del bpy.types.Scene.peanut
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
