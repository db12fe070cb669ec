"""Choosing the candidate a sentence names, or saying why it cannot be chosen.

Every attribute of the prompt scores each candidate in [0, 1] relative to the
other candidates (the leftmost one is "left", whatever its absolute place);
detector and CLIP scores join as further terms when a learned grounder
provides them. The total is the mean of the terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PromptError
from .candidates import Candidate
from .prompt import PromptQuery

MIN_COLOUR_FRACTION = 0.08  # below this share of pixels a candidate is not "red"
AMBIGUITY_MARGIN = 0.08  # top two totals closer than this cannot be told apart
COLOUR_SHARE = 0.25  # a named colour must cover this share of what the most coloured candidate has


@dataclass
class Ranked:
    index: int
    score: float
    terms: dict[str, float]


def _relative(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-9:
        return np.ones_like(values, dtype=np.float64)
    rel = (values - lo) / (hi - lo)
    return rel if higher_is_better else 1.0 - rel


def _quote(text: str) -> str:
    return f"\u201c{text}\u201d" if len(text) < 60 else f"\u201c{text[:57]}...\u201d"


def _colour_names(c: Candidate) -> str:
    named = [k for k, v in sorted(c.colours.items(), key=lambda kv: -kv[1]) if v >= MIN_COLOUR_FRACTION]
    return "/".join(named[:2]) or "no clear colour"


def _where(c: Candidate, frame_size: tuple[int, int]) -> str:
    """Where a candidate stands on the frame, in the words a prompt can use ("left", "top right")."""
    w, h = frame_size
    x, y = c.centroid[0] / max(w, 1), c.centroid[1] / max(h, 1)
    row = "top" if y < 1 / 3 else ("bottom" if y > 2 / 3 else "")
    column = "left" if x < 1 / 3 else ("right" if x > 2 / 3 else "")
    return " ".join(p for p in (row, column) if p) or "centre"


def _described(candidates: list[Candidate], frame_size: tuple[int, int]) -> str:
    """Each candidate as "left, orange/brown": the user sees which object has which colour."""
    return "; ".join(f"{_where(c, frame_size)}, {_colour_names(c)}" for c in candidates)


def rank_candidates(
    query: PromptQuery,
    candidates: list[Candidate],
    frame_size: tuple[int, int],
    what: str = "moving objects",
) -> list[Ranked]:
    """Candidates sorted best first; PromptError when none fits or the best is ambiguous."""
    w, h = frame_size
    n = len(candidates)
    if n == 0:
        raise PromptError(
            f"found no {what} for {_quote(query.text)}; check the frame range, or give a box or points on a frame",
            code="PROMPT_NOTHING_FOUND",
        )
    # Colour words are hard filters: "the biggest green ball" is the biggest among the green
    # ones, never a bigger object of another colour. A candidate stays when the colour covers a
    # fair share of it and at least half the share of the greenest candidate.
    everyone = candidates
    keep = np.ones(n, bool)
    for colour in query.colours:
        frac = np.array([c.colours.get(colour, 0.0) for c in everyone])
        if frac.max() < MIN_COLOUR_FRACTION:
            seen = _described(everyone, frame_size)
            raise PromptError(
                f"found {n} {what} but none is {colour} (where they are and their colours: {seen}) for {_quote(query.text)}",
                code="PROMPT_NOTHING_FOUND",
            )
        keep &= frac >= max(MIN_COLOUR_FRACTION, COLOUR_SHARE * float(frac.max()))
    if not keep.any():
        seen = _described(everyone, frame_size)
        raise PromptError(
            f"found {n} {what} but none is {' and '.join(query.colours)} (where they are and their colours: {seen}) "
            f"for {_quote(query.text)}",
            code="PROMPT_NOTHING_FOUND",
        )
    index = np.flatnonzero(keep)
    candidates = [everyone[i] for i in index]
    n = len(candidates)
    terms: dict[str, np.ndarray] = {}
    for colour in query.colours:
        frac = np.array([c.colours.get(colour, 0.0) for c in candidates])
        terms[colour] = np.clip(frac / frac.max(), 0.0, 1.0)
    cx = np.array([c.centroid[0] for c in candidates]) / max(w, 1)
    cy = np.array([c.centroid[1] for c in candidates]) / max(h, 1)
    for pos in query.position:
        if pos == "left":
            terms[pos] = _relative(cx, higher_is_better=False)
        elif pos == "right":
            terms[pos] = _relative(cx)
        elif pos == "top":
            terms[pos] = _relative(cy, higher_is_better=False)
        elif pos == "bottom":
            terms[pos] = _relative(cy)
        elif pos == "centre":
            terms[pos] = _relative(np.hypot(cx - 0.5, cy - 0.5), higher_is_better=False)
    if query.size:
        area = np.array([float(c.area) for c in candidates])
        terms[query.size] = _relative(area, higher_is_better=query.size == "largest")
    if query.order:
        # Count along the axis the sentence names; left to right by default.
        axis = cy if set(query.position) & {"top", "bottom"} else cx
        if "right" in query.position or "bottom" in query.position:
            axis = -axis
        order = np.argsort(axis, kind="stable")
        k = (query.order - 1) if query.order > 0 else n - 1
        if k >= n:
            raise PromptError(
                f"{_quote(query.text)} asks for object #{query.order} but only {n} {what} were found",
                code="PROMPT_NOTHING_FOUND",
            )
        term = np.zeros(n)
        term[order[k]] = 1.0
        terms["order"] = term
    if "fast" in query.motion or "slow" in query.motion:
        speed = np.array([c.speed for c in candidates])
        key = "fast" if "fast" in query.motion else "slow"
        terms[key] = _relative(speed, higher_is_better=key == "fast")
    det = np.array([c.det_score for c in candidates])
    if (det >= 0).all() and n > 1:
        terms["detector"] = np.clip(det, 0.0, 1.0)
    txt = np.array([c.text_score for c in candidates])
    if (txt >= 0).all() and n > 1:
        terms["clip"] = _relative(txt)

    if not terms:
        total = np.ones(n)
    else:
        total = np.mean(np.stack(list(terms.values())), axis=0)
    # Positions, sizes and orders are relative among the candidates that passed the filters.
    ranked = sorted(
        (Ranked(int(index[i]), float(total[i]), {k: float(v[i]) for k, v in terms.items()}) for i in range(n)),
        key=lambda r: -r.score,
    )
    if n > 1 and (not terms or ranked[0].score - ranked[1].score < AMBIGUITY_MARGIN):
        hint = 'a colour or position such as "left"' if not terms else "another colour, position or size word"
        raise PromptError(
            f"found {n} {what} that match {_quote(query.text)}; add {hint} to say which one "
            f"(where they are and their colours: {_described(candidates, frame_size)})",
            code="PROMPT_AMBIGUOUS",
        )
    return ranked


def describe_choice(query: PromptQuery, c: Candidate, ranked: Ranked, frame: int, total: int) -> str:
    """A one-line description of the chosen object for reports."""
    x0, y0, x1, y1 = c.bbox
    return (
        f"{c.label or 'moving object'} {ranked.index + 1} of {total} on frame {frame} "
        f"({_colour_names(c)}, box {x0},{y0}-{x1},{y1}; matched {query.describe()})"
    )
