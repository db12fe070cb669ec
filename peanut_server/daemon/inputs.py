"""Fingerprints of a job's inputs, so Resume can tell that a source changed under an interrupted job.

A resumed job keeps the frames it already finished; if the clip was re-rendered
in the meantime, those frames come from the old clip and the rest from the new
one. The fingerprint is taken when the job first runs and compared on Resume:

- a frame folder: name, size and mtime of every frame in the job's range, and a
  sha256 of each of their contents;
- a video file (or a single mask image): size, mtime, and a sha256 of its first
  and last SAMPLE_BYTES (hashing a multi-gigabyte file whole would cost as much
  as the job; a re-encode changes the size or those bytes);
- a timeline job: the timeline file, and the source (in the clip's range) and
  mask of every clip it cleans.

`quick` comparisons (Resume's RPC) use names, sizes and mtimes only; the worker
compares the hashes as well before it continues the job.
"""

from __future__ import annotations

import hashlib
import os

from ..media.source import list_images

SAMPLE_BYTES = 4 * 1024 * 1024


def _file_hash(path: str, whole: bool) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if whole:
            for block in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(block)
            return digest.hexdigest()
        size = os.fstat(handle.fileno()).st_size
        digest.update(handle.read(SAMPLE_BYTES))
        if size > SAMPLE_BYTES:
            handle.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def _entry(path: str, whole: bool) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _file_hash(path, whole)}


def fingerprint_path(path: str, start: int | None = None, end: int | None = None) -> dict:
    """Fingerprint of one input: a folder's images in [start, end), or a file."""
    if os.path.isdir(path):
        names = list_images(path)[start:end]
        return {
            "kind": "folder",
            "range": [start, end],
            "files": {name: _entry(os.path.join(path, name), whole=True) for name in names},
        }
    return {"kind": "file", "files": {"": _entry(path, whole=False)}}


def fingerprint_timeline(request) -> dict:
    """{path: fingerprint} for a ProcessTimelineRequest: the timeline and every clip's inputs."""
    from pathlib import Path

    from ..otio.timeline import collect_clip_jobs, read_timeline

    inputs = {request.timeline_path: fingerprint_path(request.timeline_path)}
    timeline = read_timeline(request.timeline_path)
    for job in collect_clip_jobs(timeline, Path(request.timeline_path).parent, refused=[]):
        previous = inputs.get(job.source_path)
        if previous is not None and previous["kind"] == "folder":
            # Two clips of one frame folder: one fingerprint of every frame either reads.
            inputs[job.source_path] = fingerprint_path(job.source_path)
        elif previous is None:
            inputs[job.source_path] = fingerprint_path(job.source_path, job.start_frame, job.end_frame)
        if job.mask_path:
            inputs[job.mask_path] = fingerprint_path(job.mask_path)
    return inputs


def fingerprint_job(request) -> dict:
    """{path: fingerprint} for the source and the mask file/folder of a SubmitRequest."""
    source = request.source
    end = source.end_frame if source.HasField("end_frame") else None
    inputs = {source.path: fingerprint_path(source.path, source.start_frame, end)}
    if request.mask.mask_path:
        inputs[request.mask.mask_path] = fingerprint_path(request.mask.mask_path)
    return inputs


def first_difference(before: dict, request, quick: bool) -> str:
    """ "" when every input still matches `before`; else one phrase naming the input and what changed.

    `request`: the job's SubmitRequest, or None for a timeline job (each
    fingerprint then carries its own frame range).
    """
    source = request.source if request is not None and hasattr(request, "source") else None
    end = source.end_frame if source is not None and source.HasField("end_frame") else None
    for path, old in before.items():
        if not os.path.exists(path):
            return f"{path} is gone"
        kind = "folder" if os.path.isdir(path) else "file"
        if kind != old["kind"]:
            return f"{path} is now a {kind}, it was a {old['kind']}"
        if kind == "folder":
            names = list_images(path)
            if "range" in old:
                first, last = old["range"]
                names = names[first:last]
            elif source is not None and path == source.path:
                names = names[source.start_frame : end]
            if names != list(old["files"]):
                return f"{path} holds other frames than when the job started"
        for name, entry in old["files"].items():
            file = os.path.join(path, name) if name else path
            try:
                st = os.stat(file)
            except OSError:
                return f"{file} is gone"
            if st.st_size != entry["size"] or st.st_mtime_ns != entry["mtime_ns"]:
                return f"{file} was modified"
            if not quick and _file_hash(file, whole=kind == "folder") != entry["sha256"]:
                return f"{file} has other content"
    return ""
