"""`peanut models list | pull ID | import ID PATH | verify [ID] | path ID`."""

from __future__ import annotations

import argparse
import sys

from .registry import (
    all_specs,
    download_urls,
    get_spec,
    import_destination,
    import_model,
    locate,
    locate_file,
    models_dir,
    pull,
    verify,
)


def _list(args: argparse.Namespace) -> int:
    print(f"models directory: {models_dir()}")
    for spec in all_specs():
        paths = [locate_file(spec, f) for f in spec.files]
        state = "present" if all(paths) else "missing"
        print(f"  {spec.id:28s} {spec.stage:9s} {state:8s} {spec.description}  [licence: {spec.license}]")
        if state == "present" and not args.files:
            continue
        # What to fetch by hand on a machine with network, then `peanut models import ID PATH` here.
        for file, path in zip(spec.files, paths):
            pin = f"sha256 {file.sha256}" if file.sha256 else "sha256 not pinned"
            where = f"at {path}" if path else f"goes to {import_destination(spec, file)}"
            print(f"      {file.filename}  ({pin}; {where})")
            for url in download_urls(spec, file):
                print(f"        {url}")
    return 0


def _import(args: argparse.Namespace) -> int:
    for filename, (path, verdict) in import_model(args.id, args.path, overwrite=args.overwrite).items():
        print(f"{args.id}/{filename}: {verdict} -> {path}")
    return 0


def _pull(args: argparse.Namespace) -> int:
    for path in pull(args.id).values():
        print(path)
    return 0


def _verify(args: argparse.Namespace) -> int:
    ids = [args.id] if args.id else [s.id for s in all_specs() if locate(s.id)]
    bad = 0
    for model_id in ids:
        spec = get_spec(model_id)
        verdicts = verify(model_id)
        for file in spec.files:
            verdict = verdicts[file.filename]
            path = locate_file(spec, file)
            print(f"{model_id}/{file.filename}: {verdict}" + (f" ({path})" if path else ""))
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
    p = sub.add_parser("list", help="every known model, whether it is on disk, and what to fetch by hand if not")
    p.add_argument("--files", action="store_true", help="also list the files and URLs of models already present")
    p.set_defaults(func=_list)
    p = sub.add_parser("import", help="bring in a model's files downloaded elsewhere (a file or a folder), checked")
    p.add_argument("id")
    p.add_argument("path", help="the downloaded file, or a folder holding the model's files")
    p.add_argument("--overwrite", action="store_true", help="replace a different file already in place")
    p.set_defaults(func=_import)
    p = sub.add_parser("pull", help="download a model's files (checked against sha256)")
    p.add_argument("id")
    p.set_defaults(func=_pull)
    p = sub.add_parser("verify", help="check files on disk against their sha256")
    p.add_argument("id", nargs="?")
    p.set_defaults(func=_verify)
    p = sub.add_parser("path", help="where a model's files are")
    p.add_argument("id")
    p.set_defaults(func=_path)
