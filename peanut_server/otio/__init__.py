"""OpenTimelineIO round trips: clean every prompted clip of a timeline and add the results as tracks."""

from .timeline import (
    CLEANED_TRACK,
    MATTE_TRACK,
    NOT_CLEANED_PREFIX,
    ClipJob,
    ClipRefusal,
    TimelineResult,
    collect_clip_jobs,
    read_timeline,
    run_timeline,
    source_frame_range,
    source_frame_to_timeline,
    timeline_to_source_frame,
    write_timeline,
)

__all__ = [
    "CLEANED_TRACK",
    "MATTE_TRACK",
    "NOT_CLEANED_PREFIX",
    "ClipJob",
    "ClipRefusal",
    "TimelineResult",
    "collect_clip_jobs",
    "read_timeline",
    "run_timeline",
    "source_frame_range",
    "source_frame_to_timeline",
    "timeline_to_source_frame",
    "write_timeline",
]
