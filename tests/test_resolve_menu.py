"""The menu script ("PEANUT Remove Object.py") run against a fake Fusion UIManager / UIDispatcher.

The script runs as Resolve runs it (its globals hold resolve, fusion and bmd);
the fake dispatcher's RunLoop plays a scripted session (type, click, wait)
and delivers timer events through one of the routes scripts in the wild rely
on, so every route has to place the result exactly once.
"""

from __future__ import annotations

import runpy
import threading
import time
from pathlib import Path

import pytest

from tests.fake_resolve import FakeBmd, FakeFusion, FakeUIManager
from tests.otio_support import square_box
from tests.test_resolve_script import LEFT, check_placed, make_scene, peanut_daemon, pr  # noqa: F401 (fixture)

MENU = Path(__file__).resolve().parents[1] / "plugins" / "resolve" / "PEANUT Remove Object.py"


def set_text(control: str, text: str):
    return lambda d: setattr(d.items()[control], "Text", text)


def choose(control: str, entry: str):
    def act(d):
        box = d.items()[control]
        box.CurrentIndex = box.entries.index(entry)

    return act


def click(control: str):
    return lambda d: d.event(control, "Clicked")


def wait_for_job(timeout: float = 120.0):
    """Let the UI loop run (timers fire) until the script's job thread has ended."""

    def act(d):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d.fire_timers()
            if not any(t.name == "peanut-job" and t.is_alive() for t in threading.enumerate()):
                d.fire_timers()
                return
            time.sleep(0.05)
        raise AssertionError("the job thread did not end")

    return act


def run_menu(resolve, bmd, fusion=None) -> None:
    fusion = fusion or resolve.Fusion()
    runpy.run_path(str(MENU), init_globals={"resolve": resolve, "fusion": fusion, "bmd": bmd}, run_name="__main__")


@pytest.fixture()
def use_daemon(peanut_daemon, monkeypatch):  # noqa: F811 (the fixture imported above, requested by name)
    """The script's default transport finds the daemon through the state directory, as installed."""
    monkeypatch.setenv("PEANUT_STATE_DIR", str(peanut_daemon.state_dir))
    return peanut_daemon


# Issue 14, point 9: whichever name the Timeout arrives under (or none at all),
# the finished job is placed once.
@pytest.mark.parametrize("route", ["dispatcher", "window", "dispatcher_id", None])
def test_dialog_places_the_result_on_every_timer_route(tmp_path, use_daemon, route):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    resolve.fusion = FakeFusion(FakeUIManager())
    bmd = FakeBmd(
        [
            set_text("Mask", str(mask)),
            choose("Preset", "draft"),
            click("Run"),
            wait_for_job(),
            click("Cancel"),
            click("Cancel"),
        ],
        timer_route=route,
    )
    run_menu(resolve, bmd)
    assert not bmd.left_without_exit
    status = bmd.dispatchers[0].items()["Status"].Text
    assert status.startswith("Done"), status
    placed = timeline.GetItemListInTrack("video", 2)
    assert len(placed) == 1, placed
    check_placed(timeline, placed[0], mask)
    if route is not None:
        assert bmd.dispatchers[0].ticks > 0


def check(control: str):
    return lambda d: setattr(d.items()[control], "Checked", True)


def run_filled_dialog(resolve, *fill) -> str:
    """The dialog filled in by `fill`, run on the draft preset until the job ends, then closed;
    the status line it showed."""
    steps = [*fill, choose("Preset", "draft"), click("Run"), wait_for_job(), click("Cancel"), click("Cancel")]
    bmd = FakeBmd(steps, timer_route="dispatcher")
    run_menu(resolve, bmd)
    return bmd.dispatchers[0].items()["Status"].Text


# The dialog's checkboxes travel to the daemon: "Shadow too" as include_effects.
def test_dialog_checkboxes_reach_the_job(tmp_path, use_daemon):
    from peanut_server.client import PeanutClient

    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    resolve.fusion = FakeFusion(FakeUIManager())
    client = PeanutClient(use_daemon.address, state_dir=use_daemon.state_dir)
    before = {job.id for job in client.list_jobs()}
    status = run_filled_dialog(resolve, set_text("Mask", str(mask)), check("IncludeEffects"))
    assert status.startswith("Done"), status
    new = [job for job in client.list_jobs() if job.id not in before]
    assert len(new) == 1 and new[0].request.options.include_effects


# Issue 14, point 2 (menu side): a dead item is reported in the dialog, not a traceback.
def test_dialog_reports_a_dead_item(tmp_path, use_daemon):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path, dead_items=True)
    resolve.fusion = FakeFusion(FakeUIManager())
    resolve.fusion.requested_file = str(mask)  # picked with Browse (fusion.RequestFile)
    resolve.fail.add("MediaPool.AppendToTimeline")
    before = timeline.snapshot()
    bmd = FakeBmd(
        [click("Browse"), choose("Preset", "draft"), click("Run"), wait_for_job(), click("Cancel"), click("Cancel")],
        timer_route="dispatcher_id",
    )
    run_menu(resolve, bmd)
    status = bmd.dispatchers[0].items()["Status"].Text
    assert "could not place the cleaned clip" in status and not bmd.left_without_exit
    assert timeline.snapshot() == before


def test_dialog_shows_planning_errors(tmp_path):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    resolve.fusion = FakeFusion(FakeUIManager())
    bmd = FakeBmd([click("Run"), click("Cancel")])
    run_menu(resolve, bmd)
    assert "describe what to remove" in bmd.dispatchers[0].items()["Status"].Text
    assert not bmd.left_without_exit


# Issue 14, point 7: the free edition gives menu scripts no UIManager.
def test_free_edition_without_uimanager(tmp_path, use_daemon, capsys):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    resolve.fusion = FakeFusion(None)
    bmd = FakeBmd([])
    run_menu(resolve, bmd)  # no exception
    out = capsys.readouterr().out
    assert "UIManager" in out and "peanut otio" in out and "run_in_console" in out
    assert bmd.dispatchers == []
    # The console route the message names works.
    placed = pr.run_in_console(resolve, mask_path=str(mask), options={"preset": "draft"})
    check_placed(timeline, placed, mask)
    assert "placed" in capsys.readouterr().out


# The job's warnings reach the editor: with "Approximate" the ignored word is named in the dialog.
def test_dialog_shows_the_jobs_warnings(tmp_path, use_daemon):
    resolve, project, timeline, item, other, mask = make_scene(tmp_path)
    resolve.fusion = FakeFusion(FakeUIManager())
    x0, y0, x1, y1 = square_box(LEFT)
    status = run_filled_dialog(
        resolve,
        set_text("Prompt", "the square"),
        set_text("Box", f"{LEFT}:{x0},{y0},{x1 - x0},{y1 - y0}"),
        check("Approximate"),
    )
    assert status.startswith("Done"), status
    assert 'Warning: approximate: the no-weights masker could not check "square"' in status, status
