"""PEANUT for Blender's Video Sequencer: remove an object from a strip by describing it.

A thin extension: it talks to the local PEANUT daemon through the vendored
gRPC client (vendor/peanut_server, built by build.py) and never imports torch
or numpy. Operators: peanut.remove_object, peanut.preview_mask, peanut.cancel,
peanut.check_server, peanut.start_server. UI: Sequencer > Sidebar > PEANUT.
"""

from __future__ import annotations

from . import operators, panel, props

_MODULES = (props, operators, panel)


def register() -> None:
    for module in _MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(_MODULES):
        module.unregister()
