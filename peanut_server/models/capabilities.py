"""Capabilities, not versions: whether the installed packages have the classes a backend needs.

A version number says little (classes move, get renamed, land in a release
candidate first); a backend asks for the exact names it will call and gets
back a sentence saying what is missing, for `availability()` and GetInfo.

TRANSFORMERS_CLASSES lists every transformers class that `auto` may pick in the
masker; pyproject.toml pins `transformers>=` the lowest release that has all of
them (5.0: SAM 3, Sam3VideoModel, was added after 4.57; EdgeTAM came in 4.57,
SAM 2 video in 4.56).
"""

from __future__ import annotations

import importlib
import importlib.metadata

# By backend, the transformers classes it calls (masker/learned.py, sam3/masker.py, models.py).
TRANSFORMERS_CLASSES: dict[str, tuple[str, ...]] = {
    "sam3": ("Sam3VideoModel", "Sam3VideoProcessor"),
    "sam2_video": ("Sam2VideoModel", "Sam2VideoProcessor", "Sam2ImageProcessor", "Sam2VideoVideoProcessor"),
    "edgetam_video": ("EdgeTamVideoModel", "Sam2VideoProcessor", "Sam2ImageProcessor", "Sam2VideoVideoProcessor"),
    "grounding_dino": ("AutoModelForZeroShotObjectDetection", "AutoProcessor", "GroundingDinoForObjectDetection"),
    "owlv2": ("AutoModelForZeroShotObjectDetection", "AutoProcessor", "Owlv2ForObjectDetection"),
    "clip": ("CLIPModel", "AutoProcessor"),
}
# The lowest transformers release with every class above (kept equal to pyproject.toml's pin).
TRANSFORMERS_MINIMUM = "5.0"


def installed_version(package: str) -> str:
    """The installed distribution's version, or "" when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def missing_classes(module: str, names: tuple[str, ...] | list[str]) -> list[str]:
    """Which of `names` the importable `module` lacks (all of them when it does not import)."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return list(names)
    missing = []
    for name in names:
        try:
            getattr(mod, name)
        except (AttributeError, ImportError, RuntimeError):
            # transformers' lazy module imports on first access; a class whose
            # own dependencies are missing raises here, and is as good as absent.
            missing.append(name)
    return missing


def classes_reason(
    module: str, names: tuple[str, ...] | list[str], package: str | None = None, minimum: str = ""
) -> str:
    """ "" when `module` has every class in `names`, else one sentence naming what is missing and why."""
    package = package or module.split(".")[0]
    version = installed_version(package)
    missing = missing_classes(module, names)
    if not missing:
        return ""
    if not version:
        return f"the {package} package is not installed" + (f" (needs {package}>={minimum})" if minimum else "")
    need = f"; upgrade to {package}>={minimum}" if minimum else ""
    return f"{package} {version} has no {', '.join(missing)}{need}"


def transformers_reason(architecture: str) -> str:
    """Why the masker's `architecture` ("sam3", "sam2_video", ...) cannot run with the installed transformers ("" if it can)."""
    names = TRANSFORMERS_CLASSES.get(architecture)
    if names is None:
        raise KeyError(f"no transformers classes listed for {architecture!r}")
    return classes_reason("transformers", names, minimum=TRANSFORMERS_MINIMUM)
