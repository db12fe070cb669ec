"""Media I/O: frame-accurate sources, masks in, frames and mattes out.

source.py  probe / open_source: video files (PyAV) and frame folders (OpenCV)
masks.py   check_masks / open_masks: one image, a folder, or a mask video
sink.py    check_output / open_sink: PNG sequences or video files, atomic
"""

from .masks import MaskSource, check_masks, open_masks
from .sink import FrameSink, check_output, frame_filename, open_sink
from .source import open_source, probe, validate_range
from .types import MediaInfo, VideoSource

__all__ = [
    "MediaInfo",
    "VideoSource",
    "open_source",
    "probe",
    "validate_range",
    "MaskSource",
    "check_masks",
    "open_masks",
    "FrameSink",
    "check_output",
    "frame_filename",
    "open_sink",
]
