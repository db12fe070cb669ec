"""A fake DaVinci Resolve for tests: only the documented scripting calls PEANUT uses.

Conventions kept from Resolve's scripting README and observed behaviour:
- track indices are 1-based; track types are "video" / "audio" / "subtitle";
- record frames are timeline frames counted from the timeline's start frame
  (86400 for 01:00:00:00 at 24 fps); TimelineItem.GetEnd() is exclusive;
- MediaPoolItem.GetClipProperty returns strings (a dict without an argument);
- calls signal failure with None, False or an empty list, never an exception;
- clipInfo "endFrame" of MediaPool.AppendToTimeline is inclusive or exclusive
  depending on `end_frame_inclusive` (public sources disagree);
- `fail` holds "Class.Method" names whose next calls fail, e.g.
  {"MediaPool.ImportMedia", "MediaPool.AppendToTimeline"}.

Any method not defined here does not exist on the fake, so code that calls an
undocumented or unlisted method fails loudly in tests.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field


class FakeResolve:
    def __init__(self, *, end_frame_inclusive: bool = True) -> None:
        self.end_frame_inclusive = end_frame_inclusive
        self.fail: set[str] = set()
        self.calls: list[str] = []
        self.project_manager = FakeProjectManager(self)

    def _failing(self, name: str) -> bool:
        self.calls.append(name)
        return name in self.fail

    # Resolve
    def GetProjectManager(self):
        return None if self._failing("Resolve.GetProjectManager") else self.project_manager

    def GetProductName(self) -> str:
        return "DaVinci Resolve Studio"

    def GetVersionString(self) -> str:
        return "19.1.4.11"


class FakeProjectManager:
    def __init__(self, resolve: FakeResolve) -> None:
        self._resolve = resolve
        self.current: FakeProject | None = None

    def GetCurrentProject(self):
        return None if self._resolve._failing("ProjectManager.GetCurrentProject") else self.current

    def create_project(self, name: str) -> "FakeProject":  # test setup, not API
        self.current = FakeProject(self._resolve, name)
        return self.current


class FakeProject:
    def __init__(self, resolve: FakeResolve, name: str) -> None:
        self._resolve = resolve
        self._name = name
        self.media_pool = FakeMediaPool(resolve, self)
        self.timelines: list[FakeTimeline] = []
        self.current_timeline: FakeTimeline | None = None

    def GetName(self) -> str:
        return self._name

    def GetMediaPool(self):
        return None if self._resolve._failing("Project.GetMediaPool") else self.media_pool

    def GetCurrentTimeline(self):
        return None if self._resolve._failing("Project.GetCurrentTimeline") else self.current_timeline

    def create_timeline(self, name: str, fps: float, start_frame: int, video_tracks: int = 1) -> "FakeTimeline":
        timeline = FakeTimeline(self._resolve, name, fps, start_frame, video_tracks)
        self.timelines.append(timeline)
        self.current_timeline = timeline
        return timeline


class FakeFolder:
    def __init__(self, name: str) -> None:
        self._name = name
        self.clips: list[FakeMediaPoolItem] = []
        self.subfolders: list[FakeFolder] = []

    def GetName(self) -> str:
        return self._name

    def GetClipList(self) -> list:
        return list(self.clips)

    def GetSubFolderList(self) -> list:
        return list(self.subfolders)


_SEQUENCE = re.compile(r"%0(\d+)d")


class FakeMediaPool:
    def __init__(self, resolve: FakeResolve, project: FakeProject) -> None:
        self._resolve = resolve
        self.root = FakeFolder("Master")
        self.current_folder = self.root

    def _all_folders(self, folder=None):
        folder = folder or self.root
        yield folder
        for sub in folder.subfolders:
            yield from self._all_folders(sub)

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
                width = int(match.group(1))
                shown = _SEQUENCE.sub(f"[{first:0{width}d}-{last:0{width}d}]", pattern)
                item = FakeMediaPoolItem(shown, fps=25.0, start=first, frames=last - first + 1, files=files)
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

    def AppendToTimeline(self, clip_infos: list) -> list:
        """Places each clipInfo on the current timeline; [] when any cannot be placed."""
        if self._resolve._failing("MediaPool.AppendToTimeline"):
            return []
        timeline = self._resolve.project_manager.current.current_timeline
        placed = []
        for info in clip_infos:
            mpi = info["mediaPoolItem"]
            first = int(info.get("startFrame", 0))
            last = int(info.get("endFrame", mpi.frames - 1 if self._resolve.end_frame_inclusive else mpi.frames))
            length = last - first + (1 if self._resolve.end_frame_inclusive else 0)
            length = min(length, mpi.frames - first)
            track = int(info.get("trackIndex", 1))
            record = int(info.get("recordFrame", timeline.end_frame()))
            if info.get("mediaType", 1) != 1 or not 1 <= track <= len(timeline.video) or length <= 0 or first < 0:
                return []
            item = FakeTimelineItem(mpi.GetName(), mpi, record, length, first)
            if any(other.overlaps(item) for other in timeline.video[track - 1]):
                return []
            timeline.video[track - 1].append(item)
            placed.append(item)
        return placed


@dataclass(eq=False)
class FakeMediaPoolItem:
    file_path: str
    fps: float
    start: int                 # first frame number ("Start"): 0 for movies, the first index for sequences
    frames: int
    files: list[str] = field(default_factory=list)
    start_tc: str = "00:00:00:00"

    def GetName(self) -> str:
        return os.path.basename(self.file_path)

    def GetClipProperty(self, name: str | None = None):
        properties = {
            "File Path": self.file_path,
            "FPS": f"{self.fps:g}" if self.fps == int(self.fps) else f"{self.fps:.3f}",
            "Start": str(self.start),
            "End": str(self.start + self.frames - 1),
            "Frames": str(self.frames),
            "Start TC": self.start_tc,
            "Clip Name": self.GetName(),
            "Type": "Video",
        }
        if name is None:
            return properties
        return properties.get(name, "")


class FakeTimelineItem:
    def __init__(self, name: str, mpi, start: int, duration: int, left_offset: int) -> None:
        self._name = name
        self._mpi = mpi
        self._start = start
        self._duration = duration
        self._left = left_offset

    def overlaps(self, other: "FakeTimelineItem") -> bool:
        return self._start < other._start + other._duration and other._start < self._start + self._duration

    def GetName(self) -> str:
        return self._name

    def GetStart(self) -> int:
        return self._start

    def GetEnd(self) -> int:
        return self._start + self._duration  # exclusive, as Resolve reports it

    def GetDuration(self) -> int:
        return self._duration

    def GetLeftOffset(self) -> int:
        return self._left

    def GetRightOffset(self) -> int:
        return self._mpi.frames - self._left - self._duration if self._mpi else 0

    def GetSourceStartFrame(self) -> int:
        return (self._mpi.start if self._mpi else 0) + self._left

    def GetMediaPoolItem(self):
        return self._mpi


class FakeTimeline:
    def __init__(self, resolve: FakeResolve, name: str, fps: float, start_frame: int, video_tracks: int) -> None:
        self._resolve = resolve
        self._name = name
        self.fps = fps
        self.start_frame = start_frame
        self.video: list[list[FakeTimelineItem]] = [[] for _ in range(video_tracks)]
        self.current_item: FakeTimelineItem | None = None

    def end_frame(self) -> int:
        ends = [item.GetEnd() for track in self.video for item in track]
        return max(ends, default=self.start_frame)

    def place(self, mpi, track: int, record: int, left_offset: int, duration: int) -> FakeTimelineItem:  # test setup
        item = FakeTimelineItem(mpi.GetName(), mpi, record, duration, left_offset)
        self.video[track - 1].append(item)
        return item

    def snapshot(self) -> list[list[tuple]]:  # test helper: everything a user sees on the video tracks
        return [
            sorted((i.GetName(), i.GetStart(), i.GetDuration(), i.GetLeftOffset(), id(i)) for i in track)
            for track in self.video
        ]

    def GetName(self) -> str:
        return self._name

    def GetStartFrame(self) -> int:
        return self.start_frame

    def GetEndFrame(self) -> int:
        return self.end_frame()

    def GetSetting(self, name: str = ""):
        settings = {"timelineFrameRate": f"{self.fps:g}" if self.fps == int(self.fps) else f"{self.fps:.3f}"}
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
        if not 1 <= track_index <= len(self.video):
            return False
        del self.video[track_index - 1]
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
        for track in self.video:
            track[:] = [i for i in track if i not in items]
        return True
