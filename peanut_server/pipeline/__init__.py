"""The pipeline: composes a masker, an eraser and an upscaler (nothing else knows which runs)."""

from .run import Pipeline, RemovalResult, StageRun, staging_path
from .spec import PipelineOptions, RemovalSpec, options_from_message, spec_from_request

__all__ = [
    "Pipeline",
    "PipelineOptions",
    "RemovalResult",
    "RemovalSpec",
    "StageRun",
    "options_from_message",
    "spec_from_request",
    "staging_path",
]
