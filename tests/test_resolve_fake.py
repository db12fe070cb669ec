"""The fake and the note keep to Blackmagic's README: every Resolve call the script makes is in the
README table of plugins/resolve/README.md (with its README line), and the fake offers no method
that the README does not list."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from tests import fake_resolve

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "resolve"

# README methods the fake offers that the script does not call (test setup or neighbours of calls it
# makes), with their line in the README copy cited in plugins/resolve/README.md.
ALSO_DOCUMENTED = {
    "GetProductName": 91,
    "GetVersionString": 93,
    "GetTimelineCount": 163,
    "GetTimelineByIndex": 164,
    "GetClipList": 278,
    "GetStartFrame": 368,
    "GetEndFrame": 369,
    "SetTrackEnable": 385,
    "SetTrackLock": 391,
    "GetRightOffset": 478,
}
FAKE_CLASSES = (
    "FakeResolve",
    "FakeProjectManager",
    "FakeProject",
    "FakeFolder",
    "FakeMediaPool",
    "FakeMediaPoolItem",
    "FakeTimelineItem",
    "FakeTimeline",
)


def documented_calls() -> set[str]:
    """Method names in the first column of the call table in plugins/resolve/README.md."""
    names = set()
    for line in (PLUGIN / "README.md").read_text().splitlines():
        if line.startswith("| `") and re.search(r"\|\s*\d+", line):
            names.update(re.findall(r"\.(\w+)\(", line.split("|")[1]))
            names.update(re.findall(r"/ `?(\w+)\(", line.split("|")[1]))
    return names


NOT_RESOLVE = {"threading", "subprocess", "pb.JobState"}  # Python's and the proto's, not Resolve's


def script_calls() -> set[str]:
    """CamelCase methods peanut_resolve.py calls on Resolve objects."""
    tree = ast.parse((PLUGIN / "peanut_resolve.py").read_text())
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr[:1].isupper()
        and ast.unparse(node.func.value) not in NOT_RESOLVE
    }


def test_every_call_the_script_makes_is_in_the_note():
    missing = script_calls() - documented_calls()
    assert not missing, f"add these to the table in plugins/resolve/README.md: {sorted(missing)}"


def test_the_fake_offers_only_documented_methods():
    allowed = documented_calls() | set(ALSO_DOCUMENTED)
    for name in FAKE_CLASSES:
        cls = getattr(fake_resolve, name)
        api = {m for m, _ in inspect.getmembers(cls, inspect.isfunction) if m[:1].isupper()}
        assert api <= allowed, f"{name}: not in the README table: {sorted(api - allowed)}"
