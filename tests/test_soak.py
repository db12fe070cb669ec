"""A short soak: 8 clients submitting, watching, cancelling and sending hostile requests."""

from benchmarks.soak import run_soak


def test_soak_loses_nothing_and_never_crashes(daemon, tmp_path):
    result = run_soak(
        daemon.address,
        daemon.state_dir,
        seconds=20,
        clients=8,
        work_dir=tmp_path,
        is_alive=lambda: daemon.process.poll() is None,
    )
    assert result["daemon_crashes"] == 0, daemon.log()
    assert result["jobs_lost"] == 0
    assert result["event_order_violations"] == 0
    assert result["unexpected_errors"] == [], result
    assert result["jobs_accepted"] > 0 and result["faults_injected"] > 0
    assert result["refused_as_expected"] == result["faults_injected"]
