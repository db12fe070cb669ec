"""The committed stubs are what the .proto generates, and the service is complete."""

from pathlib import Path

from peanut_server.api import generate, peanut_pb2


def test_stubs_match_the_proto(tmp_path: Path):
    generate.generate(tmp_path)
    for name in generate.STUBS:
        committed = (generate.API_DIR / name).read_text()
        fresh = (tmp_path / name).read_text()
        assert committed == fresh, f"{name} drifted from peanut.proto: run python -m peanut_server.api.generate"


def test_service_has_the_contracted_rpcs():
    methods = set(peanut_pb2.DESCRIPTOR.services_by_name["Peanut"].methods_by_name)
    assert {
        "GetInfo",
        "Submit",
        "Watch",
        "Cancel",
        "GetJob",
        "ListJobs",
        "PreviewMask",
        "Resume",
        "ProcessTimeline",
    } <= methods
    assert peanut_pb2.DESCRIPTOR.package == "peanut.v1"


def test_client_imports_no_numpy_or_torch():
    import subprocess
    import sys

    code = (
        "import sys; import peanut_server.client; "
        "bad = [m for m in ('numpy', 'torch', 'cv2') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
