"""SAM 3 through transformers: the text prompt finds every matching instance, with ids, in video.

SAM 3 detects and tracks all instances of the prompt's concept on its own;
PEANUT's part is choosing which one the sentence means (ranking.py, on the
first frame where anything is found) and following that id. When the chosen
id ends and SAM 3 starts a new one that looks like the remembered target
(CME memory, colour features), the new id takes over: SAM 3 re-identifies
after occlusion less reliably than it detects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from ...errors import BackendUnavailable, PromptError
from ...media import VideoSource
from ...progress import Reporter
from ..base import Masker, MaskerOptions, MaskPrompt, MaskReport
from ..candidates import candidate_from_mask
from ..colour import colour_descriptor
from ..frames import working_frames
from ..learned import _load, cached_part, model_available, model_dir, part_need, placement_for, prune_session
from ..memory import AppearanceMemory
from ..postprocess import MaskFinisher
from ..prompt import parse_prompt
from ..ranking import describe_choice, rank_candidates

log = logging.getLogger(__name__)


class Sam3Parts:
    """SAM 3's processor and model on one placement: what the model cache holds between jobs."""

    def __init__(self, model_id: str, device: str = "cpu", placement=None) -> None:
        import transformers

        path = model_dir(model_id)
        self.placement = placement_for(device, placement)
        self.processor = _load(transformers.Sam3VideoProcessor, path, f"{model_id} processor")
        self.model = _load(transformers.Sam3VideoModel, path, model_id).to(self.placement.device).eval()


class Sam3Masker(Masker):
    name = "sam3"
    learned = True
    device_policy = "sam3"  # models/device.py: bf16 autocast on CUDA from compute capability 8
    model_id = "sam3"
    work_max_side = 1008
    tau = 0.7

    def __init__(self, device: str = "") -> None:
        super().__init__()
        # "" = the job's MaskerOptions.device, else the daemon's device policy.
        self.device = device
        self._parts: Sam3Parts | None = None  # from the model cache, held while a call runs

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        from ...models.capabilities import transformers_reason
        from ...models.device import device_missing

        ok, reason = model_available(cls.model_id)
        if ok:
            # A transformers without SAM 3 (before 5.0) is refused here, so `auto` passes it by.
            reason = transformers_reason("sam3") or device_missing(None)
        return (not reason), reason

    @classmethod
    def model_needs(cls, options: MaskerOptions, working: tuple[int, int]) -> list:
        """SAM 3's weights and one frame's working memory on the job's device (check at Submit)."""
        return [part_need(cls.model_id, options.device or None)]

    def _load(self, device: str | None) -> Sam3Parts:
        if self._parts is None:
            ok, reason = self.availability()
            if not ok:
                raise BackendUnavailable(f"{self.name}: {reason}")
            model_id = self.model_id
            self._parts = cached_part(model_id, device, lambda placement: Sam3Parts(model_id, placement=placement))
        return self._parts

    def _frames(self, source: VideoSource, start: int, end: int) -> Iterator[tuple[int, np.ndarray]]:
        return working_frames(source, start, end, self.work_max_side)

    def _stream(
        self, source: VideoSource, start: int, end: int, text: str, device: str | None = None
    ) -> Iterator[tuple[int, np.ndarray, dict[int, tuple[float, np.ndarray]]]]:
        """(frame, rgb, {object id: (score, probability map)}) for each frame."""
        import torch

        parts = self._load(self.device or device)
        processor, model, placement = parts.processor, parts.model, parts.placement
        session = processor.init_video_session(
            inference_device=placement.device,
            processing_device="cpu",
            video_storage_device="cpu",
            inference_state_device="cpu",
            dtype=torch.float32,
        )
        session = processor.add_text_prompt(inference_session=session, text=text)
        for index, rgb in self._frames(source, start, end):
            inputs = processor(images=rgb, device=placement.device, return_tensors="pt")
            with torch.no_grad(), placement.autocast_context():
                out = model(inference_session=session, frame=inputs.pixel_values[0], reverse=False)
            post = processor.postprocess_outputs(session, out, original_sizes=inputs.original_sizes)
            prune_session(session)
            found = {
                int(i): (float(s), m.float().cpu().numpy())
                for i, s, m in zip(post["object_ids"].tolist(), post["scores"].tolist(), post["masks"])
            }
            yield index, rgb, found

    def masks(
        self, source: VideoSource, start: int, end: int, prompt: MaskPrompt, options: MaskerOptions, reporter: Reporter
    ) -> Iterator[np.ndarray]:
        query = parse_prompt(prompt.text)
        self.report = MaskReport(backend=self.name, extra={"grounder": self.model_id, "tracker": self.model_id})
        reporter.stage("mask", end - start)
        finisher = MaskFinisher(
            (source.info.width, source.info.height), options.threshold, options.fill_holes, options.temporal_smoothing
        )
        memory = AppearanceMemory(tau=self.tau)
        chosen: int | None = None
        seen: set[int] = set()
        handovers = before = 0
        for index, rgb, found in self._stream(source, start, end, query.text, options.device):
            reporter.check()
            h, w = rgb.shape[:2]
            prob = np.zeros((h, w), np.float32)
            if chosen is None and found:
                ids = list(found)
                cands = []
                for i in ids:
                    c = candidate_from_mask(rgb, found[i][1] > options.threshold)
                    c.det_score, c.label = found[i][0], f"instance {i}"
                    cands.append(c)
                ranked = rank_candidates(query, cands, (w, h), what="instances (SAM 3)")
                chosen = ids[ranked[0].index]
                self.report.chosen_object = describe_choice(query, cands[ranked[0].index], ranked[0], index, len(ids))
                self.report.score = ranked[0].score
                memory.write(cands[ranked[0].index].feature, force=True)
            elif chosen is not None and chosen not in found:
                # The chosen id ended; a new id that looks like the target takes over.
                for i in sorted(set(found) - seen):
                    mask = found[i][1] > options.threshold
                    if memory.score(colour_descriptor(rgb, mask)) > memory.tau:
                        chosen, handovers = i, handovers + 1
                        self.report.warnings.append(f"SAM 3 instance {i} took over the target on frame {index}")
                        break
            seen.update(found)
            if chosen is None:
                # Nothing yet: count the frames, so "nothing found" can still be an error
                # instead of an all-empty output.
                before += 1
                continue
            for _ in range(before):
                yield from self._emit(finisher, np.zeros((h, w), np.float32), reporter)
            before = 0
            if chosen in found:
                prob = found[chosen][1]
            yield from self._emit(finisher, prob, reporter)
        if chosen is None:
            raise PromptError(
                f"SAM 3 found nothing for \u201c{prompt.text}\u201d in frames {start}..{end - 1}",
                code="PROMPT_NOTHING_FOUND",
            )
        for out in finisher.flush():
            reporter.advance()
            yield out
        self.report.extra["handovers"] = str(handovers)

    @staticmethod
    def _emit(finisher: MaskFinisher, prob: np.ndarray, reporter: Reporter) -> Iterator[np.ndarray]:
        for out in finisher.push(prob):
            reporter.advance()
            yield out

    def preview(
        self, source: VideoSource, frame: int, prompt: MaskPrompt, options: MaskerOptions, reporter: Reporter
    ) -> tuple[np.ndarray, MaskReport]:
        masks = list(self.masks(source, frame, frame + 1, prompt, options, reporter))
        return masks[0], self.report
