"""`peanut models list | pull ID | verify [ID] | path ID`."""

from __future__ import annotations

import argparse
import sys

from .registry import all_specs, get_spec, locate, locate_file, models_dir, pull, verify


def _list(args: argparse.Namespace) -> int:
    print(f"models directory: {models_dir()}")
    for spec in all_specs():
        paths = [locate_file(spec, f) for f in spec.files]
        state = "present" if all(paths) else "missing"
        print(f"  {spec.id:28s} {spec.stage:9s} {state:8s} {spec.description}  [licence: {spec.license}]")
    return 0


def _pull(args: argparse.Namespace) -> int:
    for path in pull(args.id).values():
        print(path)
    return 0


def _verify(args: argparse.Namespace) -> int:
    ids = [args.id] if args.id else [s.id for s in all_specs() if locate(s.id)]
    bad = 0
    for model_id in ids:
        for filename, verdict in verify(model_id).items():
            print(f"{model_id}/{filename}: {verdict}")
            bad += verdict.startswith(("MISMATCH", "missing"))
    if not ids:
        print("no model weights on disk to verify", file=sys.stderr)
    return 1 if bad else 0


def _path(args: argparse.Namespace) -> int:
    get_spec(args.id)
    found = locate(args.id)
    if not found:
        print(f"peanut: {args.id} is not on disk (peanut models pull {args.id})", file=sys.stderr)
        return 1
    for path in found.values():
        print(path)
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list, pull and verify model weights")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    sub.add_parser("list", help="every known model and whether it is on disk").set_defaults(func=_list)
    p = sub.add_parser("pull", help="download a model's files (checked against sha256)")
    p.add_argument("id")
    p.set_defaults(func=_pull)
    p = sub.add_parser("verify", help="check files on disk against their sha256")
    p.add_argument("id", nargs="?")
    p.set_defaults(func=_verify)
    p = sub.add_parser("path", help="where a model's files are")
    p.add_argument("id")
    p.set_defaults(func=_path)
