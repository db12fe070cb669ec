"""Outputs: PNG sequences (default) or video files, written atomically and resumable.

Every frame first goes to a staging folder beside the destination (same
filesystem), as PNG named by its SOURCE frame index. For a PNG output,
`commit()` renames that folder into place. For a video output, an encoder
thread (_VideoEncoder) encodes each frame as it becomes final, into a file
inside the staging folder, while the job goes on; `commit()` waits for the last
frames, closes the file and os.replace()s it to the destination. Nothing
appears at the destination before commit; `abort()` removes everything partial.

The staged PNGs, not the half-encoded video, are what a resume trusts: a video
file without its trailer cannot be appended to, and the encoder's state (GOP,
rate control) is lost with the process. So a new sink on the same staging folder
counts the contiguous staged frames from the start, deletes the interrupted
run's partial video, and its encoder encodes the staged frames again from their
PNGs (in its thread, beside the resumed job), then the new ones as they come.
The encoder is fed the very arrays the PNGs were written from (a PNG round trip
is lossless), so the file is the same as one encoded from the staged PNGs.

Output kind by extension: none (or an existing folder) = PNG folder; .mov =
ProRes 4444; .mkv = FFV1 (lossless, RGB stored as bgr0/bgra, so bit-exact); .mp4 =
H.264 yuv420p preview. A 16-bit grey matte goes to a 16-bit grey PNG, FFV1
gray16le (exact), ProRes 4444 10-bit grey, or the lossy H.264 preview.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import threading
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from ..errors import OutputError, OutputExists
from .types import SWSCALE_THREADS, MediaInfo

log = logging.getLogger(__name__)

STAGING_SUFFIX = ".peanut-partial"
# Finished frames waiting for a video output's encoder thread: a writer that
# outruns the encoder waits, so memory stays bounded by these frames.
ENCODE_QUEUE = 4
# How often a thread waiting on the encoder's queue looks whether the other side stopped (seconds).
ENCODE_POLL_SECONDS = 0.1
# PNG stays lossless whatever the settings; these are chosen for speed. Measured on a
# 1080p frame (2-core CPU): level 1 alone 71 ms, + SUB filter + RLE 42 ms, ~8% larger.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10
    PNG_PARAMS += [
        cv2.IMWRITE_PNG_FILTER,
        cv2.IMWRITE_PNG_FILTER_SUB,
        cv2.IMWRITE_PNG_STRATEGY,
        cv2.IMWRITE_PNG_STRATEGY_RLE,
    ]


@dataclass(frozen=True)
class VideoFormat:
    codec: str
    pix_fmt: str
    alpha_pix_fmt: str | None
    options: dict[str, str]
    audio_codec: str


VIDEO_FORMATS: dict[str, VideoFormat] = {
    ".mov": VideoFormat("prores_ks", "yuv444p10le", "yuva444p10le", {"profile": "4444", "vendor": "apl0"}, "pcm_s16le"),
    # bgr0/bgra are RGB repacked, not converted: decoding to rgb24 gives the input back exactly.
    ".mkv": VideoFormat("ffv1", "bgr0", "bgra", {"level": "3", "slicecrc": "1"}, "pcm_s16le"),
    ".mp4": VideoFormat(
        "libx264", "yuv420p", None, {"crf": "18", "preset": "veryfast", "movflags": "+faststart"}, "aac"
    ),
}


# Encoder pixel formats for a 16-bit grey matte, by output kind (see _encode).
MATTE16_PIX_FMT = {".mkv": "gray16le", ".mov": "yuv444p10le", ".mp4": "yuv420p"}


def frame_filename(source_index: int, prefix: str = "frame_") -> str:
    """File name of an output frame, numbered by its source frame index."""
    return f"{prefix}{source_index:06d}.png"


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _inside(child: str, parent: str) -> bool:
    return child != parent and child.startswith(parent.rstrip(os.sep) + os.sep)


def check_output(path: str, source_path: str, overwrite: bool) -> None:
    """Refuse outputs that would touch the source, cannot be written, or exist already."""
    out, src = _real(path), _real(source_path)
    if out == src:
        raise OutputError(f"{path}: output is the source itself; choose another path")
    if os.path.isdir(src) and _inside(out, src):
        raise OutputError(
            f"{path}: output is inside the source folder {source_path}; PEANUT never writes into a source"
        )
    if _inside(src, out):
        raise OutputError(
            f"{path}: the source {source_path} is inside this output path; "
            "replacing the output would destroy the source"
        )
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise OutputError(f"{path}: parent folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: parent folder {parent} is not writable")
    empty_folder = os.path.isdir(out) and not os.listdir(out)
    if os.path.lexists(out) and not overwrite and not empty_folder:
        raise OutputExists(f"{path}: output exists; the request does not ask to overwrite it")


def output_kind(path: str) -> str:
    """ "png" for a folder of PNGs, else the video extension (".mov", ".mkv", ".mp4")."""
    ext = Path(path).suffix.lower()
    if os.path.isdir(path) or ext == "":
        return "png"
    if ext in VIDEO_FORMATS:
        return ext
    raise OutputError(
        f"{path}: unsupported output type {ext!r}; use a folder (PNG sequence), {', '.join(VIDEO_FORMATS)}"
    )


class FrameSink:
    """Collects frames of one output; nothing is visible at the destination until commit()."""

    def __init__(
        self,
        path: str,
        info: MediaInfo,
        start: int,
        count: int,
        *,
        overwrite: bool = False,
        alpha: bool = False,
        staging_dir: str | None = None,
        audio_from: MediaInfo | None = None,
        prefix: str = "frame_",
        final_on_write: bool = True,
    ) -> None:
        self.path = os.path.abspath(path)
        self.prefix = prefix
        self.info = info
        self.start = start
        self.count = count
        self.overwrite = overwrite
        self.alpha = alpha
        self.audio_from = audio_from
        self.kind = output_kind(self.path)
        if alpha and self.kind == ".mp4":
            raise OutputError(f"{path}: H.264 .mp4 cannot carry alpha; use .mov, .mkv or a PNG folder")
        check_output(self.path, info.path, overwrite)
        parent, name = os.path.split(self.path)
        self.staging = os.path.abspath(staging_dir) if staging_dir else os.path.join(parent, f".{name}{STAGING_SUFFIX}")
        if _real(self.staging) == _real(info.path) or (
            info.is_folder and _inside(_real(self.staging), _real(info.path))
        ):
            raise OutputError(f"{self.staging}: staging folder would be inside the source")
        self.written = self._resume()
        self._done = False
        # Frames 0.._final-1 will not change: a video output's encoder has them (see mark_final).
        # final_on_write: a frame is final once written; else once replaced with final=True, or
        # marked (the matte whose masks become alphas during the erase pass).
        self.final_on_write = final_on_write
        self._final = 0
        self._encoder: _VideoEncoder | None = None
        # The mask pass may stage a matte's next masks while the erase pass replaces earlier
        # ones by their alphas (Pipeline overlaps the two): one change of the sink at a time.
        self._lock = threading.RLock()
        if final_on_write:
            self.mark_final(self.written)  # resumed: the staged frames are encoded again from their PNGs

    # ------------------------------------------------------------------ staging

    def _resume(self) -> int:
        """Count the contiguous staged frames from `start`; drop anything after a gap."""
        os.makedirs(self.staging, exist_ok=True)
        present = set(os.listdir(self.staging))
        ours = re.compile(rf"\.?{re.escape(self.prefix)}\d+(\.png\.tmp)?\.png|{_ENCODING_PATTERN}")
        foreign = sorted(n for n in present if not ours.fullmatch(n))
        if foreign:
            # The staging folder is deleted or renamed at the end: never adopt one that holds
            # anything PEANUT did not write there.
            raise OutputError(
                f"{self.staging}: staging folder holds other files ({foreign[0]}, ...); "
                "choose an empty or new staging folder"
            )
        written = 0
        while written < self.count and frame_filename(self.start + written, self.prefix) in present:
            written += 1
        keep = {frame_filename(self.start + i, self.prefix) for i in range(written)}
        for name in present - keep:
            # Half-written temp files, frames past a gap and an interrupted run's partial
            # video (no trailer, encoder state lost) cannot be trusted.
            os.remove(os.path.join(self.staging, name))
        if written:
            log.info("%s: resuming after %d staged frames", self.path, written)
        return written

    def write(self, frame: np.ndarray) -> None:
        """Stage the next frame: RGB uint8 (H, W, 3), or RGBA (H, W, 4) for alpha outputs.

        A 2-D array is a matte, stored as a grey PNG: bool or uint8 as 8 bits
        (True -> 255); uint16, or float in [0, 1], as 16 bits (1.0 -> 65535).
        With final_on_write, a video output's encoder gets the frame at once.
        """
        with self._lock:
            if self._done:
                raise RuntimeError("sink already committed or aborted")
            if self.written >= self.count:
                raise RuntimeError(f"sink expects {self.count} frames; got one more")
            k = self.written
            image = self._stage(k, frame)
            self.written += 1
            if self.final_on_write:
                self._hand_over(k, image)

    def replace(self, k: int, frame: np.ndarray, *, final: bool = False) -> None:
        """Replace the already staged frame k (0-based in this output) with `frame`, atomically.

        final: the frame will not change again; frames become final in order (k is the next one).
        A video output refuses to replace a frame its encoder has already.
        """
        with self._lock:
            if self._done:
                raise RuntimeError("sink already committed or aborted")
            if not 0 <= k < self.written:
                raise IndexError(f"frame {k} is not staged ({self.written} are)")
            if self.kind != "png":  # a video output's encoder has its final frames already
                if k < self._final:
                    raise RuntimeError(f"frame {k} is final already; it cannot be replaced")
                if final and k != self._final:
                    raise RuntimeError(f"frame {k} made final out of order (frames before {self._final} are final)")
            image = self._stage(k, frame)
            if final and k == self._final:
                self._hand_over(k, image)

    def mark_final(self, n: int) -> None:
        """Frames 0..n-1 will not change: a video output's encoder reads those it has not had from their PNGs."""
        with self._lock:
            if n > self.written:
                raise RuntimeError(f"frames up to {n} marked final, but {self.written} are staged")
            for k in range(self._final, n):
                self._hand_over(k, None)

    def _hand_over(self, k: int, image: np.ndarray | None) -> None:
        """Frame k is final: to the encoder (a video output), as staged (`image`) or to be read back (None)."""
        self._final = k + 1
        if self.kind == "png":
            return
        if self._encoder is None:
            self._start_encoder()
        self._encoder.put(k, None if image is None else _encoder_layout(image, self.alpha))

    def _start_encoder(self) -> None:
        self._encoder = _VideoEncoder(self)
        # A sink dropped without commit, abort or suspend (a crash in a test) stops its thread.
        self._encoder_finalizer = weakref.finalize(self, self._encoder.discard)

    def _stop_encoder(self) -> None:
        if self._encoder is not None:
            self._encoder_finalizer.detach()
            self._encoder.discard()
            self._encoder = None

    def read(self, k: int) -> np.ndarray:
        """Staged frame k as stored: RGB/RGBA uint8, or a grey matte (uint8 or uint16)."""
        if not 0 <= k < self.written:
            raise OutputError(f"frame {self.start + k} has not been written to {self.staging} yet")
        image = self._read_staged(k)
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        return image

    def staged_bit_depth(self, k: int) -> int:
        """Bits per sample of staged frame k, from its PNG header (nothing decoded)."""
        return _png_bit_depth(os.path.join(self.staging, frame_filename(self.start + k, self.prefix)))

    def _stage(self, k: int, frame: np.ndarray) -> np.ndarray:
        """Write frame k's PNG; returns the array written (BGR, BGRA or grey), the encoder's input."""
        size = (self.info.height, self.info.width)
        if frame.ndim == 2 and frame.shape == size and frame.dtype in (np.bool_, np.uint8, np.uint16):
            image = frame.astype(np.uint8) * 255 if frame.dtype == np.bool_ else frame
        elif frame.ndim == 2 and frame.shape == size and frame.dtype.kind == "f":
            # 16 bits: a soft matte rebuilt from the file composites within a fraction of a level.
            image = np.rint(np.clip(frame, 0.0, 1.0) * 65535.0).astype(np.uint16)
        else:
            expected = (*size, 4 if self.alpha else 3)
            if frame.dtype != np.uint8 or frame.shape != expected:
                raise ValueError(
                    f"frame is {frame.dtype} {frame.shape}, sink expects uint8 {expected} (or a {size} matte)"
                )
            image = cv2.cvtColor(frame, cv2.COLOR_RGBA2BGRA if self.alpha else cv2.COLOR_RGB2BGR)
        name = frame_filename(self.start + k, self.prefix)
        tmp = os.path.join(self.staging, f".{name}.tmp.png")
        if not cv2.imwrite(tmp, image, PNG_PARAMS):
            raise OutputError(f"{tmp}: could not write frame (disk full or not writable?)")
        # Rename into place: a crash never leaves a half-written frame under its real name.
        os.replace(tmp, os.path.join(self.staging, name))
        return image

    # ------------------------------------------------------------------ commit / abort

    def commit(self) -> str:
        """Publish the output atomically; returns its final path."""
        if self._done:
            raise RuntimeError("sink already committed or aborted")
        if self.written != self.count:
            raise RuntimeError(f"only {self.written} of {self.count} frames written")
        # Checked again: the destination may have appeared while the job ran.
        check_output(self.path, self.info.path, self.overwrite)
        if self.kind == "png":
            self._publish(self.staging)
        else:
            self.mark_final(self.count)
            if self._encoder is None:
                self._start_encoder()  # no frames at all: an empty video
            encoder, self._encoder = self._encoder, None
            self._encoder_finalizer.detach()
            try:
                ready = encoder.finish()
                self._publish(ready)
            except BaseException:
                encoder.discard()
                raise
            shutil.rmtree(self.staging, ignore_errors=True)
        self._done = True
        return self.path

    def _publish(self, ready: str) -> None:
        if not os.path.lexists(self.path):
            os.rename(ready, self.path)
            return
        if os.path.isfile(self.path) and os.path.isfile(ready):
            os.replace(ready, self.path)
            return
        # A folder cannot be replaced in one rename: move the old one aside first, then
        # drop it, so a failure in between still leaves one complete output in place.
        parent, name = os.path.split(self.path)
        old = os.path.join(parent, f".{name}.peanut-old")
        if os.path.lexists(old):
            _remove(old)
        os.rename(self.path, old)
        try:
            os.rename(ready, self.path)
        except BaseException:
            os.rename(old, self.path)
            raise
        _remove(old)

    def abort(self) -> None:
        """Remove every partial file; the destination is left as it was."""
        if self._done:
            return
        self._done = True
        self._stop_encoder()
        shutil.rmtree(self.staging, ignore_errors=True)

    def suspend(self) -> None:
        """Stop here and keep the staged frames for a resume (an interrupted job); the partial video goes."""
        if self._done:
            return
        self._done = True
        self._stop_encoder()

    def __enter__(self) -> FrameSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.suspend()  # left without commit: staged frames stay, the encoder thread ends

    # ------------------------------------------------------------------ reading back

    def _read_staged(self, k: int) -> np.ndarray:
        """Staged frame k as stored (BGR, BGRA, or a grey matte), the order PyAV takes directly."""
        return _read_png(os.path.join(self.staging, frame_filename(self.start + k, self.prefix)))


# The partial video an encoder writes inside the staging folder (one name per encoder).
_ENCODING_PATTERN = r"\.encoding-[0-9a-f]{12}\.(mov|mkv|mp4)"


def _read_png(file: str) -> np.ndarray:
    image = cv2.imread(file, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise OutputError(f"{file}: staged frame cannot be read back")
    return image


def _png_bit_depth(file: str) -> int:
    """Bits per sample of a PNG, from its header (nothing decoded)."""
    with open(file, "rb") as f:
        header = f.read(25)  # signature (8), IHDR length + type (8), width, height (8), bit depth
    if len(header) < 25 or header[12:16] != b"IHDR":
        raise OutputError(f"{file}: staged frame cannot be read back (not a PNG)")
    return header[24]


def _encoder_layout(image: np.ndarray, alpha: bool) -> np.ndarray:
    """A staged frame (as written to its PNG) in the layout the encoder is fed: BGR, BGRA, or 16-bit grey."""
    if image.ndim == 2 and image.dtype == np.uint16:
        return image.copy()  # the caller's own array (see FrameSink._stage): not shared with another thread
    if image.ndim == 2:  # an 8-bit matte
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA if alpha else cv2.COLOR_GRAY2BGR)
    if alpha and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    return image


class _Discarded(Exception):
    """Raised in an encoder thread told to stop: its file is dropped."""


_END = object()  # put after the last frame: flush and close the file


class _VideoEncoder:
    """Encodes one video output in a thread of its own, frame by frame as frames become final.

    Frames arrive in order (0, 1, ...) through a bounded queue: an array in the
    encoder's layout, or None for "read staged frame k back" (frames staged by an
    interrupted run, or made final after they were staged). The file grows inside
    the staging folder; finish() flushes and closes it and returns its path;
    discard() stops the thread and deletes the file. An encoding error is
    raised to the writer at its next put(), and by finish().
    """

    def __init__(self, sink: FrameSink) -> None:
        # What the thread needs, copied: it never touches the sink (its owner may drop it).
        self.path = os.path.join(sink.staging, f".encoding-{uuid.uuid4().hex[:12]}{sink.kind}")
        self.name = sink.path
        self.kind, self.info, self.alpha = sink.kind, sink.info, sink.alpha
        self.start, self.count, self.audio_from = sink.start, sink.count, sink.audio_from
        self.staging, self.prefix = sink.staging, sink.prefix
        self._queue: queue.Queue = queue.Queue(maxsize=ENCODE_QUEUE)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="peanut-encode", daemon=True)
        self._thread.start()

    def put(self, k: int, image: np.ndarray | None) -> None:
        self._send((k, image))

    def finish(self) -> str:
        """Wait for every frame to be encoded, close the file; its path."""
        self._send(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.path

    def discard(self) -> None:
        """Stop encoding and delete the partial file (idempotent)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        if os.path.exists(self.path):
            os.remove(self.path)

    def _send(self, item: object) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if not self._thread.is_alive():
                raise RuntimeError(f"{self.name}: the encoder stopped")
            try:
                self._queue.put(item, timeout=ENCODE_POLL_SECONDS)
                return
            except queue.Full:
                pass

    def _next(self) -> object:
        while True:
            if self._stop.is_set():
                raise _Discarded()
            try:
                return self._queue.get(timeout=ENCODE_POLL_SECONDS)
            except queue.Empty:
                pass

    def _run(self) -> None:
        try:
            self._encode()
        except _Discarded:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the writer's thread, raised there
            if isinstance(exc, OutputError):
                self._error = exc
            else:
                error = OutputError(f"{self.name}: encoding failed: {exc}")
                error.__cause__ = exc
                self._error = error

    def _frame_data(self, k: int, image: np.ndarray | None) -> np.ndarray:
        if image is not None:
            return image
        return _encoder_layout(
            _read_png(os.path.join(self.staging, frame_filename(self.start + k, self.prefix))), self.alpha
        )

    def _encode(self) -> None:
        fmt = VIDEO_FORMATS[self.kind]
        fps = self.info.fps
        # Keep the source time base when it can express every frame time exactly.
        tb = self.info.time_base
        if tb is None or (1 / fps / tb).denominator != 1:
            tb = 1 / fps
        ticks = int(1 / fps / tb)
        pix_fmt = fmt.alpha_pix_fmt if self.alpha else fmt.pix_fmt
        # The first frame says whether this is a 16-bit grey matte (only mattes are staged at 16
        # bits). Its precision is kept where the codec can: FFV1 stores it exactly (gray16le);
        # ProRes 4444 as a 10-bit grey picture (within a level of 8-bit video); the H.264
        # preview as 8-bit 4:2:0, lossy.
        item = self._next()
        first = None if item is _END else self._frame_data(*item)
        matte16 = first is not None and first.ndim == 2 and first.dtype == np.uint16
        if matte16:
            pix_fmt = MATTE16_PIX_FMT.get(self.kind, fmt.pix_fmt)
        if fmt.codec == "libx264" and (self.info.width % 2 or self.info.height % 2):
            pix_fmt = "yuv444p"  # 4:2:0 needs even sizes; keep the size, lose player support
            log.warning("%s: odd frame size, encoding H.264 as yuv444p", self.name)
        options = dict(fmt.options)
        container_options = {}
        if "movflags" in options:
            container_options["movflags"] = options.pop("movflags")
        if self.kind == ".mov" and self.alpha:
            options["alpha_bits"] = "16"
        with av.open(self.path, "w", format=_muxer(self.kind), options=container_options) as out:
            stream = out.add_stream(fmt.codec, rate=fps, options=options)
            stream.width, stream.height = self.info.width, self.info.height
            stream.pix_fmt = pix_fmt
            stream.time_base = tb
            stream.codec_context.time_base = tb
            stream.thread_type = "AUTO"
            audio = self._add_audio(out, fmt)
            audio_packets = (
                _audio_packets(audio, self.audio_from, self.info, self.start, self.count)
                if audio is not None
                else iter(())
            )
            next_audio = next(audio_packets, None)
            k = 0
            while item is not _END:
                image = first if k == 0 else self._frame_data(*item)
                if item[0] != k:
                    raise RuntimeError(f"frame {item[0]} reached the encoder in place of frame {k}")
                if matte16 and pix_fmt == "yuv444p10le":
                    frame = _gray16_as_yuv444p10(image)
                else:
                    frame = av.VideoFrame.from_ndarray(
                        image, format="gray16le" if matte16 else "bgra" if self.alpha else "bgr24"
                    )
                    # Converted here, not by the encoder, whose conversion would run threaded.
                    frame = frame.reformat(format=pix_fmt, threads=SWSCALE_THREADS)
                frame.pts = k * ticks
                frame.time_base = tb
                for packet in stream.encode(frame):
                    out.mux(packet)
                # Interleave: audio up to this frame's time goes in beside it, so players
                # and NLEs read both streams from one place in the file.
                while (
                    next_audio is not None
                    and next_audio.pts is not None
                    and next_audio.pts * next_audio.time_base <= Fraction(k + 1) / fps
                ):
                    out.mux(next_audio)
                    next_audio = next(audio_packets, None)
                k += 1
                item = self._next()
            if k != self.count:
                raise RuntimeError(f"{k} frames reached the encoder, {self.count} expected")
            for packet in stream.encode():
                out.mux(packet)
            while next_audio is not None:
                out.mux(next_audio)
                next_audio = next(audio_packets, None)

    def _add_audio(self, out: av.container.OutputContainer, fmt: VideoFormat) -> av.AudioStream | None:
        src = self.audio_from
        if src is None or not src.has_audio or src.is_folder:
            return None
        with av.open(src.path) as inp:
            a = inp.streams.audio[0]
            rate, layout = a.codec_context.sample_rate, a.codec_context.layout.name
        return out.add_stream(fmt.audio_codec, rate=rate, layout=layout)


def _gray16_as_yuv444p10(gray: np.ndarray) -> av.VideoFrame:
    """A 16-bit grey matte as a limited-range 10-bit 4:4:4 picture with neutral chroma.

    Built here rather than left to swscale's gray16 -> yuv444p10 conversion, which
    was seen to write garbage into the first column of odd-width frames (one pixel
    of a 33-pixel-wide matte came back as 32768 instead of 0, depending on memory
    layout). Decoders expand limited range back: within 0.15 levels of 8-bit.
    """
    height, width = gray.shape
    frame = av.VideoFrame(width, height, "yuv444p10le")
    luma = (64 + np.rint(gray.astype(np.float64) * (876.0 / 65535.0))).astype("<u2")
    neutral = np.full_like(luma, 512)
    for plane, values in zip(frame.planes, (luma, neutral, neutral)):
        rows = np.zeros((height, plane.line_size // 2), "<u2")
        rows[:, :width] = values
        plane.update(rows.tobytes())
    return frame


def _muxer(kind: str) -> str:
    return {".mov": "mov", ".mkv": "matroska", ".mp4": "mp4"}[kind]


def _audio_packets(
    stream: av.AudioStream, src: MediaInfo, video: MediaInfo, start: int, count: int
) -> Iterator[av.Packet]:
    """Decode the source audio under output frames start..start+count-1 and encode it.

    Decoding (not stream copy) is what allows cutting at the exact sample where the
    range begins; PCM in .mov/.mkv keeps the decoded samples exactly, .mp4 gets AAC.
    """
    tb = video.time_base or 1 / video.fps
    t0 = Fraction(video.start_pts) * tb + Fraction(start) / video.fps
    t1 = t0 + Fraction(count) / video.fps
    rate = stream.codec_context.sample_rate
    first, last = int(round(t0 * rate)), int(round(t1 * rate))  # absolute sample numbers
    resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout.name, rate=rate)
    written = 0
    with av.open(src.path) as inp:
        a = inp.streams.audio[0]
        inp.seek(max(int(t0 / a.time_base) - 1, 0) if a.time_base else 0, stream=a, backward=True)
        for decoded in inp.decode(a):
            for frame in resampler.resample(decoded):
                if frame.pts is None:
                    continue
                begin = int(round(frame.pts * frame.time_base * rate))
                data = frame.to_ndarray()
                lo, hi = max(first - begin, 0), min(last - begin, data.shape[1])
                if hi <= lo:
                    if begin >= last:
                        break
                    continue
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(data[:, lo:hi]), format="fltp", layout=stream.codec_context.layout.name
                )
                chunk.sample_rate = rate
                chunk.pts = begin + lo - first
                chunk.time_base = Fraction(1, rate)
                written += hi - lo
                yield from stream.encode(chunk)
            else:
                continue
            break
    yield from stream.encode()
    if written < last - first:
        log.warning("%s: source audio covers %d of %d samples of the range", src.path, written, last - first)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def open_sink(
    path: str,
    info: MediaInfo,
    start: int,
    count: int,
    *,
    overwrite: bool = False,
    alpha: bool = False,
    staging_dir: str | None = None,
    audio_from: MediaInfo | None = None,
    prefix: str = "frame_",
    final_on_write: bool = True,
) -> FrameSink:
    """A sink for `count` frames of `info` starting at source frame `start` (see FrameSink).

    `prefix` names the files (frame_000123.png; e.g. "matte_" for a mask matte sequence).
    `final_on_write`: False when written frames are replaced later and made final
    by replace(..., final=True) or mark_final() (see FrameSink).
    """
    return FrameSink(
        path,
        info,
        start,
        count,
        overwrite=overwrite,
        alpha=alpha,
        staging_dir=staging_dir,
        audio_from=audio_from,
        prefix=prefix,
        final_on_write=final_on_write,
    )
