"""A fake DaVinci Resolve for tests: only documented scripting calls, with the behaviours people report.

Every method below is listed in Blackmagic's scripting README
(Developer/Scripting/README.txt, Resolve 20/21); methods ending in an
underscore or named in lower case are test setup, not API. Any method not
defined here does not exist on the fake, so a script that calls an
undocumented method fails loudly in tests.

Conventions kept from the README:
- track indices are 1-based; track types are "video" / "audio" / "subtitle";
- record frames are timeline frames counted from the timeline's start frame
  (86400 for 01:00:00:00 at 24 fps); TimelineItem.GetEnd() is exclusive, so
  GetEnd() - GetStart() == GetDuration() always, even on a retimed clip;
- MediaPoolItem.GetClipProperty returns strings (a dict without an argument);
- calls signal failure with None, False or an empty list, never an exception;
- ImportMedia returns one MediaPoolItem per clipInfo "unless 'Show Individual
  Frames' is turned on" (then one per frame: `show_individual_frames`);
- AppendToTimeline works on the project's *current* timeline.

Behaviours the README does not settle, each switchable (issue 14):
- `end_frame_inclusive`: clipInfo "endFrame" read as inclusive or exclusive;
- `sequence_start`: clipInfo "startFrame" of an image sequence counted in the
  clip's own numbering ("clip": its GetClipProperty "Start", as ayon-resolve
  passes it and a Resolve 21.1 report measured; a startFrame below Start
  places blank frames) or from 0 ("zero");
- `source_numbering`: TimelineItem.GetSourceStartFrame/EndFrame counted in the
  media's own numbering ("media", e.g. 100 for the first frame of a sequence
  numbered from 100) or from 0 ("zero");
- `dead_items`: a placement that fails returns a TimelineItem whose Get*
  calls all return None (ayon-resolve lib.py) instead of an empty list;
- timeline frame rates read "29.97 DF" on drop-frame timelines;
- `fail` holds "Class.Method" names whose calls fail, e.g.
  {"MediaPool.ImportMedia", "MediaPool.AppendToTimeline"}.

The Fusion UI part (`FakeFusion`, `FakeUIManager`, `FakeBmd`) follows what
scripts that run in Resolve use: fusion.UIManager (None in the free edition
since 19.1), bmd.UIDispatcher(ui), AddWindow, GetItems, On.<ID>.<Event>,
RunLoop/ExitLoop and ui.Timer. Which name a timer's Timeout event is
delivered under is not documented; `timer_route` picks one reading.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field

_ids = itertools.count(1)


def _new_id(kind: str) -> str:
    return f"{kind}-{next(_ids):04d}"


class FakeResolve:
    def __init__(
        self,
        *,
        end_frame_inclusive: bool = True,
        sequence_start: str = "clip",
        source_numbering: str = "media",
        dead_items: bool = False,
        show_individual_frames: bool = False,
    ) -> None:
        if sequence_start not in ("clip", "zero") or source_numbering not in ("media", "zero"):
            raise ValueError((sequence_start, source_numbering))
        self.source_numbering = source_numbering
        self.end_frame_inclusive = end_frame_inclusive
        self.sequence_start = sequence_start
        self.dead_items = dead_items
        self.show_individual_frames = show_individual_frames
        self.fail: set[str] = set()
        self.calls: list[str] = []
        self.project_manager = FakeProjectManager(self)
        self.fusion = FakeFusion()

    def _failing(self, name: str) -> bool:
        self.calls.append(name)
        return name in self.fail

    # Resolve
    def Fusion(self):
        return self.fusion

    def GetProjectManager(self):
        return None if self._failing("Resolve.GetProjectManager") else self.project_manager

    def GetProductName(self) -> str:
        return "DaVinci Resolve Studio"

    def GetVersionString(self) -> str:
        return "20.2.3.0005"


class FakeProjectManager:
    def __init__(self, resolve: FakeResolve) -> None:
        self._resolve = resolve
        self.current: FakeProject | None = None

    def GetCurrentProject(self):
        return None if self._resolve._failing("ProjectManager.GetCurrentProject") else self.current

    def create_project(self, name: str) -> FakeProject:  # test setup, not API
        self.current = FakeProject(self._resolve, name)
        return self.current


class FakeProject:
    def __init__(self, resolve: FakeResolve, name: str) -> None:
        self._resolve = resolve
        self._name = name
        self._id = _new_id("project")
        self.media_pool = FakeMediaPool(resolve, self)
        self.timelines: list[FakeTimeline] = []
        self.current_timeline: FakeTimeline | None = None

    def GetName(self) -> str:
        return self._name

    def GetUniqueId(self) -> str:
        return self._id

    def GetMediaPool(self):
        return None if self._resolve._failing("Project.GetMediaPool") else self.media_pool

    def GetCurrentTimeline(self):
        return None if self._resolve._failing("Project.GetCurrentTimeline") else self.current_timeline

    def SetCurrentTimeline(self, timeline) -> bool:
        if self._resolve._failing("Project.SetCurrentTimeline") or timeline not in self.timelines:
            return False
        self.current_timeline = timeline
        return True

    def GetTimelineCount(self) -> int:
        return len(self.timelines)

    def GetTimelineByIndex(self, index: int):
        return self.timelines[index - 1] if 1 <= index <= len(self.timelines) else None

    def create_timeline(
        self, name: str, fps: float, start_frame: int, video_tracks: int = 1, drop_frame: bool = False
    ) -> FakeTimeline:  # test setup
        timeline = FakeTimeline(self._resolve, name, fps, start_frame, video_tracks, drop_frame)
        self.timelines.append(timeline)
        self.current_timeline = timeline
        return timeline


class FakeFolder:
    def __init__(self, name: str) -> None:
        self._name = name
        self._id = _new_id("folder")
        self.clips: list[FakeMediaPoolItem] = []
        self.subfolders: list[FakeFolder] = []

    def GetName(self) -> str:
        return self._name

    def GetUniqueId(self) -> str:
        return self._id

    def GetClipList(self) -> list:
        return list(self.clips)

    def GetSubFolderList(self) -> list:
        return list(self.subfolders)


_SEQUENCE = re.compile(r"%0(\d+)d")


class FakeMediaPool:
    def __init__(self, resolve: FakeResolve, project: FakeProject) -> None:
        self._resolve = resolve
        self._project = project
        self.root = FakeFolder("Master")
        self.current_folder = self.root

    def _all_folders(self, folder=None):
        folder = folder or self.root
        yield folder
        for sub in folder.subfolders:
            yield from self._all_folders(sub)

    def all_clips(self) -> list:  # test helper
        return [clip for folder in self._all_folders() for clip in folder.clips]

    def GetRootFolder(self):
        return None if self._resolve._failing("MediaPool.GetRootFolder") else self.root

    def GetCurrentFolder(self):
        return self.current_folder

    def SetCurrentFolder(self, folder) -> bool:
        if self._resolve._failing("MediaPool.SetCurrentFolder") or folder not in list(self._all_folders()):
            return False
        self.current_folder = folder
        return True

    def AddSubFolder(self, folder, name: str):
        if self._resolve._failing("MediaPool.AddSubFolder") or folder not in list(self._all_folders()):
            return None
        sub = FakeFolder(name)
        folder.subfolders.append(sub)
        return sub

    def DeleteFolders(self, folders: list) -> bool:
        if self._resolve._failing("MediaPool.DeleteFolders"):
            return False
        for parent in list(self._all_folders()):
            parent.subfolders = [f for f in parent.subfolders if f not in folders]
        if self.current_folder in folders:
            self.current_folder = self.root
        return True

    def ImportMedia(self, items: list) -> list:
        """Paths of files, or {"FilePath": "x_%06d.png", "StartIndex": a, "EndIndex": b} for sequences."""
        if self._resolve._failing("MediaPool.ImportMedia"):
            return []
        imported = []
        for entry in items:
            if isinstance(entry, dict):
                pattern, first, last = entry["FilePath"], int(entry["StartIndex"]), int(entry["EndIndex"])
                match = _SEQUENCE.search(pattern)
                if match is None or last < first:
                    return []
                files = [pattern % i for i in range(first, last + 1)]
                if not all(os.path.isfile(f) for f in files):
                    return []
                if self._resolve.show_individual_frames:
                    # The preference turns every frame into a clip of its own.
                    for path in files:
                        item = FakeMediaPoolItem(path, fps=25.0, start=0, frames=1, files=[path])
                        self.current_folder.clips.append(item)
                        imported.append(item)
                    continue
                width = int(match.group(1))
                shown = _SEQUENCE.sub(f"[{first:0{width}d}-{last:0{width}d}]", pattern)
                item = FakeMediaPoolItem(
                    shown, fps=25.0, start=first, frames=last - first + 1, files=files, sequence=True
                )
            else:
                if not os.path.isfile(entry):
                    return []
                item = FakeMediaPoolItem(entry, fps=25.0, start=0, frames=1, files=[entry])
            self.current_folder.clips.append(item)
            imported.append(item)
        return imported

    def DeleteClips(self, clips: list) -> bool:
        if self._resolve._failing("MediaPool.DeleteClips"):
            return False
        for folder in self._all_folders():
            folder.clips = [c for c in folder.clips if c not in clips]
        return True

    def _refuse(self) -> list:
        """A failed placement: [] or, as some Resolve versions do, one dead item."""
        return [FakeDeadItem()] if self._resolve.dead_items else []

    def AppendToTimeline(self, clip_infos: list) -> list:
        """Places each clipInfo on the current timeline."""
        if self._resolve._failing("MediaPool.AppendToTimeline"):
            return self._refuse()
        timeline = self._project.current_timeline
        placed = []
        for info in clip_infos:
            mpi = info["mediaPoolItem"]
            inclusive = self._resolve.end_frame_inclusive
            numbered = mpi.sequence and self._resolve.sequence_start == "clip"
            origin = mpi.start if numbered else 0  # the number that means "the clip's first frame"
            first = int(info.get("startFrame", origin))
            last = int(info.get("endFrame", origin + mpi.frames - (1 if inclusive else 0)))
            length = last - first + (1 if inclusive else 0)
            offset = first - origin  # < 0: blank frames before the media
            length = min(length, mpi.frames - offset)
            track = int(info.get("trackIndex", 1))
            record = int(info.get("recordFrame", timeline.end_frame()))
            if (
                info.get("mediaType", 1) != 1
                or not 1 <= track <= len(timeline.video)
                or length <= 0
                or offset >= mpi.frames
                or track in timeline.locked
            ):
                return self._refuse()
            item = FakeTimelineItem(timeline, mpi.GetName(), mpi, record, length, offset)
            if any(other.overlaps(item) for other in timeline.video[track - 1]):
                return self._refuse()
            timeline.video[track - 1].append(item)
            placed.append(item)
        return placed


@dataclass(eq=False)
class FakeMediaPoolItem:
    file_path: str
    fps: float
    start: int  # first frame number ("Start"): 0 for movies, the first index for sequences
    frames: int
    files: list[str] = field(default_factory=list)
    start_tc: str = "00:00:00:00"
    sequence: bool = False
    unique_id: str = field(default_factory=lambda: _new_id("mpi"))

    def GetName(self) -> str:
        return os.path.basename(self.file_path)

    def GetUniqueId(self) -> str:
        return self.unique_id

    def GetClipProperty(self, name: str | None = None):
        properties = {
            "File Path": self.file_path,
            "FPS": _rate_text(self.fps),
            "Start": str(self.start),
            "End": str(self.start + self.frames - 1),
            "Frames": str(self.frames),
            "Start TC": self.start_tc,
            "Clip Name": self.GetName(),
            "Type": "Still" if self.frames == 1 and not self.sequence else "Video",
        }
        if name is None:
            return properties
        return properties.get(name, "")


def _rate_text(fps: float) -> str:
    return f"{fps:g}" if fps == int(fps) else f"{fps:.2f}".rstrip("0")


class FakeTimelineItem:
    def __init__(
        self, timeline, name: str, mpi, start: int, duration: int, left_offset: int, speed: float = 1.0
    ) -> None:
        self._timeline = timeline
        self._name = name
        self._mpi = mpi
        self._start = start
        self._duration = duration
        self._left = left_offset  # media frames before the first one shown (< 0: blank head)
        self._speed = speed  # source frames per timeline frame (retime)
        self._id = _new_id("item")

    def overlaps(self, other: FakeTimelineItem) -> bool:
        return self._start < other._start + other._duration and other._start < self._start + self._duration

    def shown_files(self) -> list:  # test helper: the file each timeline frame shows, None for a blank frame
        shown = []
        for k in range(self._duration):
            index = self._left + int(k * self._speed)
            shown.append(self._mpi.files[index] if self._mpi and 0 <= index < len(self._mpi.files) else None)
        return shown

    def GetName(self) -> str:
        return self._name

    def GetUniqueId(self) -> str:
        return self._id

    def GetStart(self, subframe_precision: bool = False) -> int:
        return self._start

    def GetEnd(self, subframe_precision: bool = False) -> int:
        return self._start + self._duration  # exclusive, a timeline position like GetStart

    def GetDuration(self, subframe_precision: bool = False) -> int:
        return self._duration

    def GetLeftOffset(self, subframe_precision: bool = False) -> int:
        return max(0, self._left)  # "maximum extension ... from left side": never negative

    def GetRightOffset(self, subframe_precision: bool = False) -> int:
        return max(0, self._mpi.frames - self._left - self._shown()) if self._mpi else 0

    def _shown(self) -> int:
        return int(round(self._duration * self._speed))

    def GetSourceStartFrame(self) -> int:
        media = self._timeline._resolve.source_numbering == "media"
        return (self._mpi.start if self._mpi and media else 0) + self._left

    def GetSourceEndFrame(self) -> int:
        return self.GetSourceStartFrame() + self._shown() - 1

    def GetMediaPoolItem(self):
        return self._mpi

    def GetTrackTypeAndIndex(self) -> list:
        for index, track in enumerate(self._timeline.video, start=1):
            if self in track:
                return ["video", index]
        return None


class FakeDeadItem:
    """What a failed placement can return: an item whose every Get* call answers None."""

    def __getattr__(self, name: str):
        if name.startswith("Get"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


class FakeTimeline:
    def __init__(
        self, resolve: FakeResolve, name: str, fps: float, start_frame: int, video_tracks: int, drop_frame: bool = False
    ) -> None:
        self._resolve = resolve
        self._name = name
        self._id = _new_id("timeline")
        self.fps = fps
        self.drop_frame = drop_frame
        self.start_frame = start_frame
        self.video: list[list[FakeTimelineItem]] = [[] for _ in range(video_tracks)]
        self.locked: set[int] = set()
        self.disabled: set[int] = set()
        self.current_item: FakeTimelineItem | None = None

    def end_frame(self) -> int:
        ends = [item.GetEnd() for track in self.video for item in track]
        return max(ends, default=self.start_frame)

    def place(
        self, mpi, track: int, record: int, left_offset: int, duration: int, speed: float = 1.0
    ) -> FakeTimelineItem:  # test setup
        item = FakeTimelineItem(self, mpi.GetName(), mpi, record, duration, left_offset, speed)
        self.video[track - 1].append(item)
        return item

    def snapshot(self) -> list[list[tuple]]:  # test helper: everything a user sees on the video tracks
        return [
            sorted((i.GetName(), i.GetStart(), i.GetDuration(), i.GetLeftOffset(), id(i)) for i in track)
            for track in self.video
        ] + [sorted(self.locked), sorted(self.disabled)]

    def GetName(self) -> str:
        return self._name

    def GetUniqueId(self) -> str:
        return self._id

    def GetStartFrame(self) -> int:
        return self.start_frame

    def GetEndFrame(self) -> int:
        return self.end_frame()

    def GetSetting(self, name: str = ""):
        rate = _rate_text(self.fps) + (" DF" if self.drop_frame else "")
        settings = {"timelineFrameRate": rate}
        return settings.get(name, "") if name else settings

    def GetTrackCount(self, track_type: str) -> int:
        return len(self.video) if track_type == "video" else 0

    def AddTrack(self, track_type: str, sub_track_type: str | None = None) -> bool:
        if self._resolve._failing("Timeline.AddTrack") or track_type != "video":
            return False
        self.video.append([])
        return True

    def DeleteTrack(self, track_type: str, track_index: int) -> bool:
        if self._resolve._failing("Timeline.DeleteTrack") or track_type != "video":
            return False
        if not 1 <= track_index <= len(self.video) or track_index in self.locked:
            return False
        del self.video[track_index - 1]
        self.locked = {i if i < track_index else i - 1 for i in self.locked if i != track_index}
        self.disabled = {i if i < track_index else i - 1 for i in self.disabled if i != track_index}
        return True

    def GetIsTrackLocked(self, track_type: str, track_index: int):
        if track_type != "video" or not 1 <= track_index <= len(self.video):
            return None
        return track_index in self.locked

    def GetIsTrackEnabled(self, track_type: str, track_index: int):
        if track_type != "video" or not 1 <= track_index <= len(self.video):
            return None
        return track_index not in self.disabled

    def SetTrackLock(self, track_type: str, track_index: int, locked: bool) -> bool:
        if track_type != "video" or not 1 <= track_index <= len(self.video):
            return False
        (self.locked.add if locked else self.locked.discard)(track_index)
        return True

    def SetTrackEnable(self, track_type: str, track_index: int, enabled: bool) -> bool:
        if track_type != "video" or not 1 <= track_index <= len(self.video):
            return False
        (self.disabled.discard if enabled else self.disabled.add)(track_index)
        return True

    def GetItemListInTrack(self, track_type: str, index: int):
        if track_type != "video" or not 1 <= index <= len(self.video):
            return None
        return sorted(self.video[index - 1], key=lambda i: i.GetStart())

    def GetCurrentVideoItem(self):
        return None if self._resolve._failing("Timeline.GetCurrentVideoItem") else self.current_item

    def DeleteClips(self, items: list, ripple: bool = False) -> bool:
        if self._resolve._failing("Timeline.DeleteClips"):
            return False
        if any(isinstance(i, FakeDeadItem) for i in items):
            return False  # nothing to delete for a dead item
        for index, track in enumerate(self.video, start=1):
            if index in self.locked and any(i in track for i in items):
                return False
        for track in self.video:
            track[:] = [i for i in track if i not in items]
        return True


# -- Fusion UI (UIManager / UIDispatcher) -----------------------------------------------------


class FakeFusion:
    def __init__(self, ui_manager: FakeUIManager | None = None) -> None:
        self.UIManager = ui_manager  # None: the free edition since 19.1, for menu scripts
        self.requested_file = ""

    def RequestFile(self, *args):
        return self.requested_file or None


class FakeControl:
    def __init__(self, kind: str, props: dict | None = None, children: list | None = None) -> None:
        props = dict(props or {})
        self.kind = kind
        self.ID = props.get("ID", "")
        self.Text = props.get("Text", "")
        self.Enabled = props.get("Enabled", True)
        self.PlaceholderText = props.get("PlaceholderText", "")
        self.Interval = props.get("Interval", 0)
        self.children = list(children or [])
        self.entries: list[str] = []
        self.CurrentIndex = -1
        self.Checked = bool(props.get("Checked", False))  # CheckBox
        self.running = False  # timers

    # ComboBox
    def AddItem(self, text: str) -> None:
        self.entries.append(text)
        if self.CurrentIndex < 0:
            self.CurrentIndex = 0

    @property
    def CurrentText(self) -> str:
        return self.entries[self.CurrentIndex] if 0 <= self.CurrentIndex < len(self.entries) else ""

    # Timer
    def Start(self) -> None:
        self.running = True

    def Stop(self) -> None:
        self.running = False

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


class FakeUIManager:
    """ui.<Control>({props}) and ui.<Group>([children]) or ui.<Group>({props}, [children])."""

    def __init__(self) -> None:
        self.timers: list[FakeControl] = []

    @staticmethod
    def _group(kind: str, first=None, second=None) -> FakeControl:
        if isinstance(first, list):
            return FakeControl(kind, None, first)
        return FakeControl(kind, first, second)

    def VGroup(self, first=None, second=None) -> FakeControl:
        return self._group("VGroup", first, second)

    def HGroup(self, first=None, second=None) -> FakeControl:
        return self._group("HGroup", first, second)

    def Label(self, props: dict) -> FakeControl:
        return FakeControl("Label", props)

    def LineEdit(self, props: dict) -> FakeControl:
        return FakeControl("LineEdit", props)

    def Button(self, props: dict) -> FakeControl:
        return FakeControl("Button", props)

    def ComboBox(self, props: dict) -> FakeControl:
        return FakeControl("ComboBox", props)

    def CheckBox(self, props: dict) -> FakeControl:
        return FakeControl("CheckBox", props)

    def Timer(self, props: dict) -> FakeControl:
        timer = FakeControl("Timer", props)
        self.timers.append(timer)
        return timer


class _Handlers:
    """`On.<ID>.<Event> = fn` and `On.<Event> = fn`: every assignment is kept."""

    def __init__(self) -> None:
        object.__setattr__(self, "table", {})

    def __getattr__(self, name: str):
        table = object.__getattribute__(self, "table")
        if name not in table:
            table[name] = _Handlers()
        return table[name]

    def __setattr__(self, name: str, value) -> None:
        self.table[name] = value

    def get(self, *path: str):
        node = self
        for name in path:
            if not isinstance(node, _Handlers) or name not in node.table:
                return None
            node = node.table[name]
        return node if callable(node) else None


class FakeWindow:
    def __init__(self, props: dict, layout: FakeControl) -> None:
        self.ID = props.get("ID", "")
        self.props = props
        self.layout = layout
        self.On = _Handlers()
        self.shown = False

    def GetItems(self) -> dict:
        return {c.ID: c for c in self.layout.walk() if c.ID}

    def Show(self) -> None:
        self.shown = True

    def Hide(self) -> None:
        self.shown = False


class FakeDispatcher:
    """Runs a scripted session in RunLoop: each action is a callable(dispatcher) -> None.

    Between actions (and while an action waits), running timers fire their
    Timeout through the one route `timer_route` names:
    "dispatcher" (disp.On.Timeout), "window" (win.On.<TimerID>.Timeout),
    "dispatcher_id" (disp.On.<TimerID>.Timeout) or None (never).
    """

    def __init__(self, ui: FakeUIManager, bmd: FakeBmd) -> None:
        self.ui = ui
        self.bmd = bmd
        self.On = _Handlers()
        self.windows: list[FakeWindow] = []
        self.exited = False
        self.ticks = 0

    def AddWindow(self, props: dict, layout: FakeControl) -> FakeWindow:
        window = FakeWindow(props, layout)
        self.windows.append(window)
        return window

    def fire_timers(self) -> None:
        route = self.bmd.timer_route
        for timer in list(self.ui.timers):
            if not timer.running or route is None:
                continue
            if route == "dispatcher":
                handler = self.On.get("Timeout")
            elif route == "dispatcher_id":
                handler = self.On.get(timer.ID, "Timeout")
            else:
                handler = next(
                    (w.On.get(timer.ID, "Timeout") for w in self.windows if w.On.get(timer.ID, "Timeout")), None
                )
            if handler is not None:
                self.ticks += 1
                handler({"who": timer.ID, "what": "Timeout"})

    def event(self, control_id: str, name: str = "Clicked") -> None:
        """Deliver a UI event to the window handler of `control_id` (test driver)."""
        for window in self.windows:
            handler = window.On.get(control_id, name)
            if handler is not None:
                handler({"who": control_id, "what": name})
                return
        raise AssertionError(f"no handler for {control_id}.{name}")

    def items(self) -> dict:
        return self.windows[0].GetItems()

    def RunLoop(self) -> None:
        for action in self.bmd.actions:
            if self.exited:
                break
            self.fire_timers()
            action(self)
        self.bmd.left_without_exit = not self.exited

    def ExitLoop(self) -> None:
        self.exited = True


class FakeBmd:
    def __init__(self, actions: list, timer_route: str | None = "dispatcher") -> None:
        self.actions = actions
        self.timer_route = timer_route
        self.dispatchers: list[FakeDispatcher] = []
        self.left_without_exit = False

    def UIDispatcher(self, ui: FakeUIManager) -> FakeDispatcher:
        dispatcher = FakeDispatcher(ui, self)
        self.dispatchers.append(dispatcher)
        return dispatcher
