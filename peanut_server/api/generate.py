"""Regenerate the Python stubs of proto/peanut/v1/peanut.proto.

    python -m peanut_server.api.generate

grpc_tools writes `from peanut.v1 import peanut_pb2`, an absolute import of a
package that does not exist here; the stubs live in peanut_server.api, so the
import is rewritten to a relative one. tests/test_api.py regenerates into a
temporary folder and fails when the committed stubs differ.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
PROTO_FILE = PROTO_ROOT / "peanut" / "v1" / "peanut.proto"
API_DIR = Path(__file__).resolve().parent
STUBS = ("peanut_pb2.py", "peanut_pb2.pyi", "peanut_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(PROTO_FILE),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed on " + str(PROTO_FILE))
        for name in STUBS:
            text = (Path(tmp) / "peanut" / "v1" / name).read_text()
            text = re.sub(r"^from peanut\.v1 import peanut_pb2", "from . import peanut_pb2", text, flags=re.M)
            (out_dir / name).write_text(text)


if __name__ == "__main__":
    generate(API_DIR)
    print("wrote", ", ".join(STUBS), "to", API_DIR, file=sys.stderr)
