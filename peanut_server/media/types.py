"""What every media source looks like to the rest of PEANUT."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# Pixel-format conversions run on one swscale thread. Threaded swscale in the FFmpeg that
# PyAV 18 bundles (8.1) was seen to write garbage now and then: of 3000 bgr24 -> yuv444p10le
# conversions of one 34x22 frame, 3-430 came out different from the rest (whole frames or
# bands of rows), so a ProRes output could carry a broken frame; one thread gave 0 of 9000.
# Cost per 1080p frame: +0.4 ms to encode (2.6 -> 2.95 ms), +0.8 ms to decode to RGB (2.55 -> 3.35).
SWSCALE_THREADS = 1


@dataclass(frozen=True)
class MediaInfo:
    path: str
    width: int
    height: int
    frame_count: int
    fps: Fraction  # frames per second (folders: 25 unless told)
    is_folder: bool  # a frame folder rather than a video file
    time_base: Fraction | None = None
    start_pts: int = 0  # pts of frame 0 (video files)
    codec: str = ""
    pix_fmt: str = ""  # source format; "yuv420p10le->rgb24" when deeper than 8 bits
    has_audio: bool = False
    frame_files: tuple[str, ...] = ()  # frame folders: the sorted file names
    rotation: int = 0  # display rotation (degrees) already applied to frames/size


class VideoSource(ABC):
    """Frame-accurate random-range access to a clip: RGB uint8 (H, W, 3) frames.

    Frame i is the i-th frame in presentation order, counted from 0, whatever
    the container's first timestamp is.
    """

    info: MediaInfo

    @abstractmethod
    def frames(self, start: int, end: int) -> Iterator[np.ndarray]:
        """Frames start..end-1, in order. Raises RangeError outside the clip."""

    def read(self, index: int) -> np.ndarray:
        return next(iter(self.frames(index, index + 1)))

    def close(self) -> None:  # noqa: B027 (optional hook: most sources hold nothing to release)
        pass

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
