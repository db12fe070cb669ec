"""A finished removal as the proto's JobResult: shared by the daemon and `peanut --local`.

It lives beside the pipeline, not in the daemon, so that a run in the CLI's own
process does not import the daemon (gRPC server, job store) it does not use.
"""

from __future__ import annotations

from ..api import peanut_pb2 as pb
from .run import RemovalResult

STAGE_ENUM = {
    "masker": pb.STAGE_MASKER,
    "eraser": pb.STAGE_ERASER,
    "upscaler": pb.STAGE_UPSCALER,
    "flow": pb.STAGE_FLOW,
}


def result_message(result: RemovalResult) -> pb.JobResult:
    return pb.JobResult(
        output_path=result.output_path,
        matte_path=result.matte_path,
        frame_count=result.frame_count,
        backends=[pb.StageBackend(stage=STAGE_ENUM[r.stage], backend=r.backend, note=r.note) for r in result.backends],
        chosen_object=result.chosen_object,
        chosen_score=result.chosen_score,
        ignored_words=result.ignored_words,
        seconds=result.seconds,
    )
