"""`peanut otio IN -o OUT`: clean every prompted clip of a timeline, through the daemon or in-process.

    peanut otio cut.otio -o cut_peanut.otio [--media-dir D] [--overwrite] [--local | --server ADDR]

Reads and writes any format an installed OTIO adapter handles (.otio, FCP 7
.xml, .fcpxml, .edl), chosen by extension.

Exit status: 0 when every prompted clip was cleaned; 1 when the job failed or
some prompted clips were not cleaned (each is named on stderr and in the job's
warnings); 2 when the request was refused; 3 when no daemon answers.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..api import peanut_pb2 as pb
from .timeline import NOT_CLEANED_PREFIX, RunClip


def register_cli(subparsers) -> None:
    from ..cli import add_connection_args, add_option_args

    parser = subparsers.add_parser(
        "otio",
        help="clean every prompted clip of an OpenTimelineIO timeline",
        description="Clean every clip that carries a 'peanut' marker (comment = prompt) or metadata "
        "peanut.prompt / peanut.mask, and write the timeline with the tracks 'PEANUT cleaned' and 'PEANUT matte' added.",
    )
    parser.add_argument("input", help="timeline: .otio, FCP 7 .xml, .fcpxml, .edl")
    parser.add_argument("-o", "--output", required=True, help="timeline to write (format by extension)")
    parser.add_argument("--media-dir", help="where cleaned frames and mattes go (default: <OUT stem>_media beside OUT)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output timeline and media")
    parser.add_argument("--json", action="store_true", help="print the final job as JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_connection_args(parser, local=True)
    add_option_args(parser)
    parser.set_defaults(func=cmd_otio)


def _paths(args: argparse.Namespace) -> tuple[str, str, str]:
    from ..cli import absolute

    output = absolute(args.output)
    media = absolute(args.media_dir) if args.media_dir else os.path.splitext(output)[0] + "_media"
    return absolute(args.input), output, media


def cmd_otio(args: argparse.Namespace, run_clip: RunClip | None = None) -> int:
    """Run the command; `run_clip` replaces the pipeline in --local mode (tests, embedding)."""
    from ..cli import ProgressPrinter, follow, make_client, options_from_args

    timeline_path, output_path, media_dir = _paths(args)
    progress = ProgressPrinter(quiet=args.quiet)
    if args.local or run_clip is not None:
        return _with_refusals(_run_local(args, timeline_path, output_path, media_dir, progress, run_clip), args.json)
    with make_client(args) as client:
        job = client.process_timeline(
            timeline_path,
            output_path,
            media_dir,
            options=options_from_args(args),
            overwrite=args.overwrite,
            client_name="cli",
        )
        if not args.json:
            print(f"job {job.id} queued", file=sys.stderr)
        return _with_refusals(follow(client, job, progress), args.json)


def _with_refusals(job: pb.Job, as_json: bool) -> int:
    """finish_job, then exit status 1 when a prompted clip was not cleaned: nothing passes as done silently."""
    from ..cli import EXIT_JOB_FAILED, EXIT_OK, finish_job

    code = finish_job(job, as_json)
    refused = [w for w in job.warnings if w.startswith(NOT_CLEANED_PREFIX)]
    if code != EXIT_OK or not refused:
        return code
    print(
        f"peanut: {len(refused)} prompted clip{'s were' if len(refused) > 1 else ' was'} not cleaned:", file=sys.stderr
    )
    for line in refused:
        print(f"  {line}", file=sys.stderr)
    return EXIT_JOB_FAILED


def _run_local(
    args, timeline_path: str, output_path: str, media_dir: str, progress, run_clip: RunClip | None
) -> pb.Job:
    from ..cli import options_from_args
    from ..client import _options_message
    from ..errors import JobCancelled
    from ..progress import Reporter
    from .jobs import pipeline_run_clip, timeline_result_message
    from .timeline import run_timeline

    job = pb.Job(id=f"local-{os.getpid()}", kind="timeline")
    job.request.output.path = output_path
    if run_clip is None:
        from ..pipeline import Pipeline

        run_clip = pipeline_run_clip(Pipeline(), _options_message(options_from_args(args)), job.id, client="cli")

    def warn(message: str) -> None:
        job.warnings.append(message)  # in the job, as the daemon records them
        progress.warn(message)

    reporter = Reporter(callback=lambda s: progress(s.stage, s.done, s.total), warn_callback=warn)
    try:
        result = run_timeline(timeline_path, output_path, media_dir, args.overwrite, run_clip, reporter)
    except JobCancelled as exc:
        job.state, job.error, job.error_code = pb.JOB_STATE_CANCELLED, exc.message, exc.code
        return job
    finally:
        progress.close()
    job.state = pb.JOB_STATE_SUCCEEDED
    job.result.CopyFrom(timeline_result_message(result))
    return job


def main(argv: list[str] | None = None, run_clip: RunClip | None = None) -> int:
    """`peanut otio ...` with an injectable run_clip; same exit codes as the CLI."""
    from ..cli import EXIT_NO_DAEMON, EXIT_REFUSED, build_parser
    from ..client import ClientError, DaemonUnavailable
    from ..errors import PeanutError

    args = build_parser().parse_args(["otio", *(sys.argv[1:] if argv is None else argv)])
    try:
        return cmd_otio(args, run_clip)
    except DaemonUnavailable as exc:
        print(f"peanut: {exc.message}", file=sys.stderr)
        return EXIT_NO_DAEMON
    except (ClientError, PeanutError) as exc:
        print(f"peanut: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
