"""`peanut`: the command-line client.

    peanut remove SRC -o OUT [--mask M | --prompt T] [--start N --end N] [--server ADDR | --local]
    peanut mask SRC --prompt T -o MASKS
    peanut info | jobs | watch JOB | cancel JOB | resume JOB
    peanut demo
    peanut models list|pull|verify|path
    peanut eval completion ... | eval masks ...
    peanut otio IN -o OUT

Exit codes: 0 success; 1 the job failed or was cancelled; 2 the request was
refused (bad input: the message says why); 3 no daemon answers.
Client subcommands talk to the daemon whose address is in the state directory
unless --server is given; --local runs the same pipeline in this process.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import os
import sys

from . import __version__
from .api import peanut_pb2 as pb
from .client import ClientError, DaemonUnavailable, PeanutClient, state_name

EXIT_OK, EXIT_JOB_FAILED, EXIT_REFUSED, EXIT_NO_DAEMON = 0, 1, 2, 3

# Modules that add subcommands (each has register_cli(subparsers)).
COMMAND_MODULES = (
    "peanut_server.models.commands",
    "peanut_server.metrics.commands",
    "peanut_server.otio.commands",
)


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- shared options ------------------------------------------------------------


def add_connection_args(parser: argparse.ArgumentParser, local: bool = False) -> None:
    parser.add_argument("--server", metavar="ADDR", help="daemon address (default: the one in the state directory)")
    parser.add_argument("--state-dir", help="state directory (default: $PEANUT_STATE_DIR or the per-user default)")
    parser.add_argument(
        "--tls-ca",
        metavar="PEM",
        help="CA certificate to trust for a TLS daemon "
        "(default: the one in the state directory, when the daemon serves TLS)",
    )
    if local:
        parser.add_argument("--local", action="store_true", help="run the pipeline in this process, without a daemon")


def add_option_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("processing options")
    group.add_argument("--preset", choices=["draft", "balanced", "quality"], help="quality preset (default balanced)")
    group.add_argument("--masker", help="masker backend: auto (default) or a name from `peanut info`")
    group.add_argument("--eraser", help="eraser backend: auto (default), flowguided, telea")
    group.add_argument("--upscaler", help="upscaler backend: auto (default), basicvsrpp, lanczos")
    group.add_argument("--flow", help="optical flow: auto (default), dis, raft_small, raft_large")
    group.add_argument("--working-height", type=int, help="lines the eraser works at (0 = source height)")
    group.add_argument("--mask-dilation", type=int, help="grow the mask by this many pixels (working resolution)")
    group.add_argument("--feather", type=int, help="soft edge of the composite, source pixels")
    group.add_argument(
        "--neighbor-stride",
        type=int,
        help="eraser: temporal scale, in frames, of the fusion of candidate fills (default by preset)",
    )
    group.add_argument("--step", type=int, help="keyframe / reference frame stride")
    group.add_argument("--subvideo-length", type=int, help="frames per processing window")
    group.add_argument(
        "--mask-threshold",
        type=float,
        help="masker: a pixel is the object above this soft-mask value, 0..1 (default 0.5)",
    )
    group.add_argument("--clip-window", type=int, help="frames between confusion checks")
    group.add_argument("--no-reuse-flow", action="store_true", help="upscaler computes its own flow")
    group.add_argument(
        "--include-effects",
        action="store_true",
        help="also remove the object's shadow (dark regions that move with it and touch it)",
    )
    group.add_argument("--seed", type=int, help="random seed of the masker, for repeatable masks (default 0)")
    group.add_argument("--device", help="learned backends run on: auto (the daemon's), cpu, cuda, cuda:N, mps")


def options_from_args(args: argparse.Namespace) -> dict:
    keys = [
        "preset",
        "masker",
        "eraser",
        "upscaler",
        "flow",
        "working_height",
        "mask_dilation",
        "feather",
        "neighbor_stride",
        "step",
        "subvideo_length",
        "mask_threshold",
        "clip_window",
        "seed",
        "device",
    ]
    options = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if getattr(args, "no_reuse_flow", False):
        options["reuse_flow"] = False
    if getattr(args, "include_effects", False):
        options["include_effects"] = True
    return options


def make_client(args: argparse.Namespace) -> PeanutClient:
    return PeanutClient(args.server, state_dir=args.state_dir, tls_ca=getattr(args, "tls_ca", None))


def absolute(path: str | None) -> str:
    return os.path.abspath(os.path.expanduser(path)) if path else ""


# -- progress ------------------------------------------------------------------


class ProgressPrinter:
    """A tqdm bar per stage on stderr (frames, ETA): none under --quiet or when stderr is not a
    terminal (a log file gets no bar redrawn); warnings are printed either way, unless --quiet."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._warned: set[str] = set()
        self._bar = None
        self._stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if stage != self._stage:
            self.close()
            self._stage = stage
            # disable=None: tqdm draws only when stderr is a terminal.
            self._bar = tqdm(
                total=total or None,
                desc=stage,
                unit="frame",
                file=sys.stderr,
                leave=True,
                dynamic_ncols=True,
                disable=None,
            )
        if self._bar is not None and not self._bar.disable:
            self._bar.total = total or None
            self._bar.n = done
            self._bar.refresh()

    def warn(self, message: str) -> None:
        # A warning reaches the printer twice (live, and again with the job's result): print
        # it once; -q silences it (the job result still names ignored words).
        if self.quiet or message in self._warned:
            return
        self._warned.add(message)
        if self._bar is not None and not self._bar.disable:
            self._bar.write(f"warning: {message}", file=sys.stderr)
        else:
            print(f"warning: {message}", file=sys.stderr)

    def named_all(self, words: list[str]) -> bool:
        """Whether the warnings printed so far named each of `words` (as "word")."""
        return all(any(f'"{word}"' in message for message in self._warned) for word in words)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def cli_message(code: str, message: str) -> str:
    """The daemon's message, worded for the command line: the daemon does not know which
    client asked, so the client names its own option."""
    if code == "OUTPUT_EXISTS":
        return message.split(";")[0] + "; pass --overwrite to replace it"
    return message


def job_to_dict(job: pb.Job) -> dict:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(job, preserving_proto_field_name=True)


def finish_job(job: pb.Job, as_json: bool, progress: ProgressPrinter | None = None) -> int:
    if as_json:
        print(json.dumps(job_to_dict(job)))
    if job.state == pb.JOB_STATE_SUCCEEDED:
        if not as_json:
            result = job.result
            ran = ", ".join(f"{pb.Stage.Name(b.stage)[6:].lower()}={b.backend}" for b in result.backends)
            print(f"done: {result.frame_count} frames -> {result.output_path}")
            if result.matte_path and result.matte_path != result.output_path:
                print(f"matte: {result.matte_path}")
            if ran:
                print(f"backends: {ran}")
            if result.chosen_object:
                print(f"object: {result.chosen_object} (score {result.chosen_score:.2f})")
            # The masker's warning already named them, unless -q kept it quiet: say it once.
            if result.ignored_words and not (progress and progress.named_all(result.ignored_words)):
                print("ignored words (approximate): " + ", ".join(result.ignored_words))
        return EXIT_OK
    reason = cli_message(job.error_code, job.error) if job.error else state_name(job.state)
    print(f"peanut: job {job.id} {state_name(job.state)}: {reason}", file=sys.stderr)
    return EXIT_JOB_FAILED


# -- remove / mask ----------------------------------------------------------------

MATTE_MODES = {"alpha": pb.MATTE_MODE_ALPHA, "object": pb.MATTE_MODE_OBJECT}


def frame_prompts_from_args(args: argparse.Namespace) -> list[pb.FramePrompt]:
    """--box F:X,Y,W,H, --point F:X,Y and --exclude-point F:X,Y as proto frame prompts, one per frame."""
    from .errors import InvalidRequest
    from .pipeline.spec import parse_frame_prompts

    try:
        prompts = parse_frame_prompts(
            getattr(args, "box", None) or [],
            getattr(args, "point", None) or [],
            getattr(args, "exclude_point", None) or [],
        )
    except InvalidRequest as exc:
        raise CliError(exc.message) from None
    frame = getattr(args, "mask_frame", None)
    if frame is not None:
        if not getattr(args, "mask", None):
            raise CliError("--mask-frame goes with --mask (one image)")
        if any(p.frame <= frame for p in prompts):
            raise CliError(
                f"with --mask-frame {frame}, --box/--point correct later frames only: put them after frame {frame}"
            )
        # The proto's way to say "track this mask from frame F"; boxes and points on later frames correct it.
        prompts = [pb.FramePrompt(frame=frame), *prompts]
    return prompts


def build_submit_request(args: argparse.Namespace, matte_only: bool) -> pb.SubmitRequest:
    from .client import _options_message

    source = pb.MediaRange(path=absolute(args.source), start_frame=args.start)
    if args.end is not None:
        source.end_frame = args.end
    return pb.SubmitRequest(
        source=source,
        mask=pb.MaskSpec(
            text=args.prompt or "",
            mask_path=absolute(getattr(args, "mask", None)),
            frame_prompts=frame_prompts_from_args(args),
            approximate=args.approximate,
        ),
        mode=pb.MODE_MATTE_ONLY if matte_only else pb.MODE_REMOVE,
        options=_options_message(options_from_args(args)),
        output=pb.OutputSpec(
            path=absolute(args.output),
            matte_path=absolute(getattr(args, "matte", None)),
            overwrite=args.overwrite,
            patch_layer=getattr(args, "patch_layer", False),
            matte_mode=pb.MATTE_MODE_UNSPECIFIED if matte_only else MATTE_MODES[args.matte_mode],
        ),
        client="cli",
    )


def run_local(request: pb.SubmitRequest, progress: ProgressPrinter) -> pb.Job:
    """Run a SubmitRequest in this process; returns a Job like the daemon's."""
    from .errors import PeanutError
    from .pipeline import Pipeline, spec_from_request
    from .pipeline.messages import result_message
    from .progress import Reporter

    spec = spec_from_request(request)
    reporter = Reporter(callback=lambda s: progress(s.stage, s.done, s.total), warn_callback=progress.warn)
    job = pb.Job(id=f"local-{os.getpid()}", request=request, kind="remove")
    try:
        result = Pipeline().run(spec, reporter, job_id=job.id)
    except PeanutError as exc:
        job.state, job.error, job.error_code = pb.JOB_STATE_FAILED, exc.message, exc.code
        if exc.status in (
            "INVALID_ARGUMENT",
            "NOT_FOUND",
            "OUT_OF_RANGE",
            "ALREADY_EXISTS",
            "FAILED_PRECONDITION",
        ) and job.error_code not in ("CANCELLED",):
            raise CliError(cli_message(exc.code, exc.message)) from None
        return job
    finally:
        progress.close()
    for warning in result.warnings:
        progress.warn(warning)
    job.warnings.extend(result.warnings)  # as the daemon's Job carries them (--json readers)
    job.state = pb.JOB_STATE_SUCCEEDED
    job.result.CopyFrom(result_message(result))
    return job


def follow(client: PeanutClient, job: pb.Job, progress: ProgressPrinter) -> pb.Job:
    def on_event(event: pb.JobEvent) -> None:
        if event.type == pb.EVENT_TYPE_WARNING:
            progress.warn(event.message)
        elif event.job.stage:
            progress(event.job.stage, event.job.frames_done, event.job.frames_total)

    try:
        return client.wait(job.id, on_event=on_event)
    except KeyboardInterrupt:
        progress.close()
        client.cancel(job.id)
        print(f"peanut: cancelling job {job.id}", file=sys.stderr)
        return client.wait(job.id)
    finally:
        progress.close()


def cmd_remove(args: argparse.Namespace, matte_only: bool = False) -> int:
    request = build_submit_request(args, matte_only)
    progress = ProgressPrinter(quiet=args.quiet)
    if args.local:
        return finish_job(run_local(request, progress), args.json, progress)
    with make_client(args) as client:
        job = client.submit_request(request)
        if not args.json:
            print(f"job {job.id} queued", file=sys.stderr)
        if args.no_wait:
            print(job.id)
            return EXIT_OK
        return finish_job(follow(client, job, progress), args.json, progress)


def add_remove_parser(sub, name: str, matte_only: bool) -> None:
    help_text = "write the masks of what the prompt names" if matte_only else "remove an object from a clip"
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("source", help="video file or frame folder")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="output: a folder (PNG sequence) or a .mov/.mkv/.mp4 file" if not matte_only else "mask folder",
    )
    parser.add_argument("--prompt", help='what to remove, e.g. "the man in the red jacket"')
    parser.add_argument(
        "--box",
        action="append",
        metavar="F:X,Y,W,H",
        help="the object's box on source frame F, in source pixels (repeatable, one per frame)",
    )
    parser.add_argument(
        "--point", action="append", metavar="F:X,Y", help="a point on the object on source frame F (repeatable)"
    )
    parser.add_argument(
        "--exclude-point",
        action="append",
        metavar="F:X,Y",
        help="a point that is not the object on source frame F (repeatable)",
    )
    parser.add_argument(
        "--approximate",
        action="store_true",
        help="accept the best match on the words the masker understands; the words it "
        "cannot check are named in the result (without it such a prompt is refused)",
    )
    parser.add_argument("--mask", help="masks instead of a prompt: one image, a folder, or a mask video")
    parser.add_argument(
        "--mask-frame",
        type=int,
        metavar="F",
        help="with --mask of one image: it shows the object on source frame F; track it "
        "through the range (without: the image is a still matte on every frame)",
    )
    if not matte_only:
        parser.add_argument("--matte", help="where the matte goes (default OUTPUT_matte)")
        parser.add_argument(
            "--matte-mode",
            choices=sorted(MATTE_MODES),
            default="alpha",
            help="alpha (default): the exact alpha the cleaned pixels were composited with, "
            "16-bit, soft edge kept; object: the object's own hard mask",
        )
        parser.add_argument(
            "--patch-layer", action="store_true", help="RGBA frames: colour = cleaned pixels, alpha = the matte's alpha"
        )
    parser.add_argument("--start", type=int, default=0, help="first source frame (0-based, default 0)")
    parser.add_argument("--end", type=int, help="frame after the last one (exclusive; default: clip end)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output")
    parser.add_argument("--json", action="store_true", help="print the final job as JSON on stdout")
    parser.add_argument("--no-wait", action="store_true", help="print the job id and return")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no warnings")
    add_connection_args(parser, local=True)
    add_option_args(parser)
    parser.set_defaults(func=lambda a: cmd_remove(a, matte_only))


# -- jobs ------------------------------------------------------------------------


def local_machine_info(args: argparse.Namespace) -> pb.Info:
    """`peanut info --local`: what this machine can run, built in this process (no daemon)."""
    from .errors import PeanutError
    from .models.device import set_daemon_defaults
    from .pipeline.info import local_info
    from .statedir import resolve_state_dir

    try:
        # As a daemon started with these --device/--precision would place each backend.
        set_daemon_defaults(args.device or "auto", args.precision or "auto")
    except PeanutError as exc:
        raise CliError(exc.message) from None
    return local_info(str(resolve_state_dir(args.state_dir)))


def cmd_info(args: argparse.Namespace) -> int:
    if args.local:
        info = local_machine_info(args)
    else:
        if args.device or args.precision:
            raise CliError("--device and --precision go with --local (a running daemon has its own)")
        with make_client(args) as client:
            info = client.info()
    if args.json:
        from google.protobuf.json_format import MessageToDict

        print(json.dumps(MessageToDict(info, preserving_proto_field_name=True)))
        return EXIT_OK
    if args.local:
        print(f"peanut {info.version} ({info.api_version}) on {info.device}, this process (--local: no daemon)")
        print(f"state: {info.state_dir}")
    else:
        print(f"peanut-server {info.version} ({info.api_version}) on {info.device}, pid {info.pid}")
        print(f"state: {info.state_dir}   queue: {info.queue_length}/{info.queue_capacity}")
    print("backends (* default, + available, - not available here: the reason follows):")
    for b in info.backends:
        mark = "*" if b.is_default else ("+" if b.available else "-")
        why = "" if b.available else f"  ({b.reason})"
        where = f"  [{b.device}, {b.precision}]" if b.device else ""
        print(f"  {mark} {pb.Stage.Name(b.stage)[6:].lower():9s} {b.name}{where}{why}")
    present = sum(m.present for m in info.models)
    print(f"models: {present} of {len(info.models)} present (peanut models list)")
    if args.local:
        for m in info.models:
            print(f"  {'+' if m.present else '-'} {m.id}  {m.path if m.present else m.reason}")
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        jobs = client.list_jobs(limit=args.limit)
    if args.json:
        print(json.dumps([job_to_dict(j) for j in jobs]))
        return EXIT_OK
    for job in jobs:
        source = job.request.source.path or "-"
        stage, progress = job.stage, (f"{job.frames_done}/{job.frames_total}" if job.frames_total else "")
        if job.state == pb.JOB_STATE_SUCCEEDED:
            stage, progress = "", f"{job.result.frame_count} frames"
        print(
            f"{job.id}  {state_name(job.state):11s} {stage:9s} {progress:>11s}  {source}"
            + (f"  ({job.error})" if job.error else "")
        )
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    progress = ProgressPrinter(quiet=args.quiet)
    with make_client(args) as client:
        job = client.get_job(args.job)
        return finish_job(follow(client, job, progress), args.json, progress)


def cmd_cancel(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        job = client.cancel(args.job)
    print(f"job {job.id}: {state_name(job.state)}" + (" (cancelling)" if job.state == pb.JOB_STATE_RUNNING else ""))
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    progress = ProgressPrinter(quiet=args.quiet)
    with make_client(args) as client:
        job = client.resume(args.job)
        if args.no_wait:
            print(job.id)
            return EXIT_OK
        return finish_job(follow(client, job, progress), args.json, progress)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


EXAMPLES = """examples:
  peanut demo                                   a sample clip, cleaned end to end (no daemon needed)
  peanut-server &                               start the daemon (models stay loaded between jobs)
  peanut info                                   what the daemon runs: device, backends, models
  peanut info --local                           what this machine can run, without a daemon
  peanut remove clip.mp4 -o clean/ --prompt "the red car"
  peanut remove clip.mp4 -o clean.mov --box 0:120,80,60,40 --start 10 --end 58
  peanut mask clip.mp4 -o masks/ --prompt "the dog on the left"
  peanut jobs; peanut watch JOB; peanut cancel JOB

`peanut COMMAND --help` lists a command's options."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peanut",
        description="PEANUT: remove objects from video by describing them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"peanut {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_remove_parser(sub, "remove", matte_only=False)
    add_remove_parser(sub, "mask", matte_only=True)

    p = sub.add_parser("info", help="what the daemon runs (or, with --local, this machine): device, backends, models")
    p.add_argument("--json", action="store_true", help="print the Info message as JSON on stdout")
    add_connection_args(p)
    p.add_argument(
        "--local",
        action="store_true",
        help="what this machine can run, without a daemon: backends, why not, device and precision, models",
    )
    p.add_argument("--device", help="with --local: place backends as `peanut-server --device` would (auto, cpu, ...)")
    p.add_argument("--precision", help="with --local: as `peanut-server --precision` would (auto, fp32, fp16, bf16)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("jobs", help="list jobs, newest first")
    p.add_argument("--limit", type=int, default=20, help="at most this many jobs (default 20)")
    p.add_argument("--json", action="store_true", help="print the jobs as a JSON list on stdout")
    add_connection_args(p)
    p.set_defaults(func=cmd_jobs)

    for name, func, text in (
        ("watch", cmd_watch, "follow a job until it ends"),
        ("resume", cmd_resume, "continue an interrupted job"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("job", help="the job id (peanut jobs lists them)")
        p.add_argument("--json", action="store_true", help="print the final job as JSON on stdout")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no warnings")
        if name == "resume":
            p.add_argument("--no-wait", action="store_true", help="print the job id and return")
        add_connection_args(p)
        p.set_defaults(func=func)

    p = sub.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("job", help="the job id (peanut jobs lists them)")
    add_connection_args(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser(
        "demo",
        help="make a sample clip and remove its object (no daemon needed)",
        description="Make a sample clip (sample.mp4, and true_masks/: the ball's true mask per "
        "frame, to score the masker against) and remove its red ball: cleaned/, "
        "cleaned_matte/ and before_after.png.",
    )
    p.add_argument(
        "-o", "--output-dir", default="peanut-demo", help="where the sample and results go (default ./peanut-demo)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier demo in that folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no warnings")
    p.add_argument("--server", metavar="ADDR", help="run through this daemon instead of in-process")
    p.add_argument("--state-dir", help="with --server: the daemon's state directory (for its token)")
    p.set_defaults(func=cmd_demo)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # that concern adds no commands in this build
        module.register_cli(sub)
    from .metrics.masks_command import register_masks_eval

    register_masks_eval(sub)  # `peanut eval masks`, beside `eval completion`
    return parser


def _command_parser(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.ArgumentParser, int]:
    """The (sub)command parser that `argv` names and the position after its last command word:
    `peanut models pull --x` -> (the `pull` parser, 2)."""
    end = 0
    for position, word in enumerate(argv):
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if actions and word in actions[0].choices:
            parser, end = actions[0].choices[word], position + 1
    return parser, end


def _options_after_the_command(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`peanut --state-dir DIR remove ...` as `peanut remove --state-dir DIR ...`: an option the
    command takes may also come before it (as `git -C DIR` does), as the README shows for the
    daemon's state directory. One the command does not take is named as such."""
    while argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        command, end = _command_parser(parser, argv)
        if command is parser:
            break
        option = argv[0].split("=")[0]
        action = next((a for a in command._actions if option in a.option_strings), None)
        if action is None:
            command.error(f"{command.prog} takes no {option} option")
        width = 1 if "=" in argv[0] or action.nargs == 0 else 2
        if width >= end:
            break  # `--server remove`: the command word was taken as the value; argparse says what is missing
        argv = argv[width:end] + argv[:width] + argv[end:]
    return argv


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, but an unknown option is reported by the subcommand it was given to (its usage,
    not the top-level one) with the nearest option it has: `--promt` -> "did you mean --prompt?".
    An option before the command is moved after it (see _options_after_the_command)."""
    argv = _options_after_the_command(parser, argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command, _ = _command_parser(parser, argv)
        options = [o for action in command._actions for o in action.option_strings]
        for word in unknown:
            close = difflib.get_close_matches(word.split("=")[0], options, n=1) if word.startswith("-") else []
            if close:
                command.error(f"unrecognized argument: {word} (did you mean {close[0]}?)")
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, sys.argv[1:] if argv is None else list(argv))
    try:
        code = args.func(args)
        sys.stdout.flush()  # inside the try: a reader that went away is noticed here, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`peanut jobs | head`): not an error of ours. Point stdout at
        # devnull so that Python's flush at exit does not raise again (Python docs, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_JOB_FAILED
    except DaemonUnavailable as exc:
        print(f"peanut: {exc.message}", file=sys.stderr)
        return EXIT_NO_DAEMON
    except ClientError as exc:
        print(f"peanut: {cli_message(exc.reason, exc.message)}", file=sys.stderr)
        return EXIT_REFUSED if exc.code != "INTERNAL" else EXIT_JOB_FAILED
    except CliError as exc:
        print(f"peanut: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("peanut: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a PeanutError from --local, or a bug: one line, not a traceback
        from .errors import PeanutError

        if isinstance(exc, PeanutError):
            print(f"peanut: {exc.message}", file=sys.stderr)
            return EXIT_REFUSED
        print(
            f"peanut: internal error: {type(exc).__name__}: {exc} (PEANUT_DEBUG=1 shows the traceback)", file=sys.stderr
        )
        if os.environ.get("PEANUT_DEBUG"):
            raise
        return EXIT_JOB_FAILED


if __name__ == "__main__":
    sys.exit(main())
