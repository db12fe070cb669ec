"""The daemon's side of ProcessTimeline: check the request, run every clip through the pipeline.

The worker calls `run_timeline_job`; `pipeline_run_clip` turns one ClipJob into
the same SubmitRequest a plugin would send, so a timeline clip is validated and
processed exactly like a single job (the CLI's --local mode uses it too).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..api import peanut_pb2 as pb
from ..errors import InvalidRequest, OutputError, OutputExists
from ..progress import Reporter
from .timeline import ClipJob, ClipRefusal, RunClip, check_destination, collect_clip_jobs, read_timeline, run_timeline

if TYPE_CHECKING:  # the pipeline pulls numpy/cv2; only the worker needs it
    from ..pipeline import Pipeline

log = logging.getLogger(__name__)

STAGE_ENUM = {
    "masker": pb.STAGE_MASKER,
    "eraser": pb.STAGE_ERASER,
    "upscaler": pb.STAGE_UPSCALER,
    "flow": pb.STAGE_FLOW,
}


def _absolute(path: str, what: str) -> str:
    if not path:
        raise InvalidRequest(f"{what} path is empty")
    if not os.path.isabs(path):
        raise InvalidRequest(f"{what} path must be absolute: {path!r}")
    return os.path.normpath(path)


def validate_timeline_request(request: pb.ProcessTimelineRequest) -> None:
    """Refuse up front what would fail later: paths, unreadable timelines, nothing to do."""
    timeline_path = _absolute(request.timeline_path, "timeline")
    output_path = _absolute(request.output_path, "output timeline")
    media_dir = (
        _absolute(request.media_dir, "media folder")
        if request.media_dir
        else os.path.splitext(output_path)[0] + "_media"
    )
    if os.path.realpath(output_path) == os.path.realpath(timeline_path):
        raise OutputError("the output timeline must not replace the input timeline")
    check_destination(output_path, media_dir)
    if os.path.lexists(output_path) and not request.overwrite:
        raise OutputExists(f"{output_path} exists; set overwrite to replace it")
    import opentimelineio as otio

    try:
        otio.adapters.from_filepath(output_path)
    except Exception:
        raise OutputError(f"no OTIO adapter writes {Path(output_path).suffix!r} files; use .otio") from None
    timeline = read_timeline(timeline_path)
    refused: list[ClipRefusal] = []
    if not collect_clip_jobs(timeline, Path(timeline_path).parent, refused=refused):
        if refused:  # every prompted clip is refused: say which and why, up front
            raise InvalidRequest(
                "no prompted clip can be cleaned: "
                + "; ".join(f"clip {r.clip_name!r} {r.where}: {r.reason}" for r in refused)
            )
        raise InvalidRequest(
            f"no clip in {Path(timeline_path).name} carries a prompt (a marker named 'peanut') "
            "or metadata peanut.prompt / peanut.mask / peanut.box"
        )


def pipeline_run_clip(
    pipeline: Pipeline, options: pb.Options | None, job_id: str, client: str = "otio", resumed: bool = False
) -> RunClip:
    """A run_clip that sends each timeline clip through `pipeline` as an ordinary removal job.

    `resumed`: the daemon runs this timeline job again after an interruption
    (its inputs checked unchanged). A clip whose cleaned frames and matte are
    both at their destinations then finished before the interruption: kept as
    it is, not run again (its outputs would be refused as existing). Commit is
    a rename, so an output there is complete; the first run refused any output
    already there, so these are the job's own. A clip interrupted mid-way
    resumes from its staged frames like any job (its job id is the same).
    """
    from ..pipeline import spec_from_request
    from ..pipeline.spec import parse_frame_prompts

    def run(job: ClipJob, output_path: str, matte_path: str, reporter: Reporter) -> dict:
        if resumed and os.path.exists(output_path) and os.path.exists(matte_path):
            log.info("clip %r finished before the interruption: kept", job.clip_name)
            reporter.check()
            return {
                "output_path": output_path,
                "matte_path": matte_path,
                "frame_count": job.frame_count,
                "backends": [],
                "stage_runs": [],
            }
        # Each clip gets its own folder under the media folder the request named.
        for path in (output_path, matte_path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        source = pb.MediaRange(path=job.source_path, start_frame=job.start_frame, end_frame=job.end_frame)
        request = pb.SubmitRequest(
            source=source,
            mask=pb.MaskSpec(
                text=job.prompt,
                mask_path=job.mask_path,
                approximate=job.approximate,
                frame_prompts=parse_frame_prompts(
                    list(job.boxes), [], [], names=(f"peanut.box of clip {job.clip_name!r}", "", "")
                ),
            ),
            mode=pb.MODE_REMOVE,
            options=options or pb.Options(),
            output=pb.OutputSpec(path=output_path, matte_path=matte_path, overwrite=job.overwrite),
            client=client,
        )
        result = pipeline.run(spec_from_request(request), reporter, job_id=f"{job_id}-{job.index}")
        for warning in result.warnings:
            reporter.warn(f"{job.clip_name}: {warning}")
        return {
            "output_path": result.output_path,
            "matte_path": result.matte_path,
            "frame_count": result.frame_count,
            "backends": [f"{run.stage}={run.backend}" for run in result.backends],
            "stage_runs": [(run.stage, run.backend, run.note) for run in result.backends],
        }

    return run


def timeline_result_message(result) -> pb.JobResult:
    message = pb.JobResult(
        output_path=result.output_path,
        frame_count=result.frame_count,
        output_files=[result.output_path, *result.output_files],
    )
    seen = set()
    for clip in result.clips:
        for stage, backend, note in clip.get("stage_runs", []):
            if (stage, backend) not in seen:
                seen.add((stage, backend))
                message.backends.add(stage=STAGE_ENUM.get(stage, pb.STAGE_UNSPECIFIED), backend=backend, note=note)
    return message


def run_timeline_job(
    request: pb.ProcessTimelineRequest, pipeline: Pipeline, reporter: Reporter, job_id: str, resumed: bool = False
) -> pb.JobResult:
    """`resumed`: this job ran before and was interrupted (see pipeline_run_clip)."""
    result = run_timeline(
        request.timeline_path,
        request.output_path,
        request.media_dir or None,
        request.overwrite,
        pipeline_run_clip(pipeline, request.options, job_id, client=request.client or "otio", resumed=resumed),
        reporter,
        # With a cluster behind the pipeline, the clips fan out; on this machine they take turns.
        parallel=pipeline.executor.clips_at_once() if getattr(pipeline, "executor", None) is not None else 1,
    )
    log.info(
        "timeline job %s: %d clips (%d not cleaned), %d frames -> %s",
        job_id,
        len(result.clips),
        len(result.refused),
        result.frame_count,
        result.output_path,
    )
    return timeline_result_message(result)
