"""The daemon with `--executor ray --ray-address local` runs a job on its own local Ray runtime.

In a module of its own so that test_executor_ray.py's in-process runtime is shut down
(module teardown) before this daemon starts a second one on the same machine. With both
alive, one CI rehearsal (2 cores, loaded by other work) ended with pytest exiting 1 in the
middle of this test and printing no report: a Ray driver quits its process when it loses its
raylet. That cause is inferred, not proven; running the two runtimes one after the other
removes the overlap either way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from peanut_server.api import peanut_pb2 as pb
from peanut_server.media import frame_filename
from tests.clips import make_object_clip
from tests.daemon import DaemonProcess


@pytest.fixture()
def clip(tmp_path: Path, shared_data: Path):
    return make_object_clip(
        tmp_path / "clip", shared_data / "davis" / "bmx-trees" / "00000.jpg", n_frames=12, size=(160, 96), radius=12
    )


def test_daemon_with_ray_executor_runs_a_job(tmp_path, clip):
    proc = DaemonProcess(
        state_dir=tmp_path / "state",
        log_path=tmp_path / "d.log",
        extra_args=["--executor", "ray", "--ray-address", "local", "--ray-cpus", "2"],
    )
    proc.start(timeout=120)
    try:
        with proc.client() as client:
            job = client.submit(
                str(clip.frames),
                0,
                12,
                output_path=str(tmp_path / "out"),
                mask_path=str(clip.masks),
                options={"eraser": "telea", "working_height": 0, "subvideo_length": 6},
            )
            final = client.wait(job.id, timeout=180)
            assert final.state == pb.JOB_STATE_SUCCEEDED, (final.error, proc.log())
            assert sorted(os.listdir(tmp_path / "out")) == [frame_filename(i) for i in range(12)]
        assert proc.stop() == 0
    finally:
        proc.kill()
