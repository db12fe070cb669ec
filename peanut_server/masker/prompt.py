"""Reading a removal sentence: the attributes and relations a ranker can use.

The parser is deliberately small and explicit: colour words, position words
(left/right/top/bottom/centre), size words (biggest/smallest), order words
(first/second/... counted left to right unless a position says otherwise) and
motion words (moving/fast/slow). Everything else is kept as "other words" so
a backend can say which part of the sentence it could not use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import PromptError

# HSV ranges in OpenCV units (H 0..179, S and V 0..255). Chromatic colours are
# hue bands with a minimum saturation; the achromatic ones are value bands.
COLOURS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet", "maroon"),
    "orange": ("orange",),
    "yellow": ("yellow", "gold", "golden"),
    "green": ("green", "lime"),
    "cyan": ("cyan", "turquoise", "teal"),
    "blue": ("blue", "navy", "azure"),
    "purple": ("purple", "violet", "magenta"),
    "pink": ("pink",),
    "white": ("white",),
    "black": ("black", "dark"),
    "grey": ("grey", "gray", "silver"),
    "brown": ("brown",),
}
POSITIONS: dict[str, tuple[str, ...]] = {
    "left": ("left", "leftmost"),
    "right": ("right", "rightmost"),
    "top": ("top", "upper", "above", "topmost"),
    "bottom": ("bottom", "lower", "below", "bottommost"),
    "centre": ("centre", "center", "middle", "central"),
}
SIZES: dict[str, tuple[str, ...]] = {
    "largest": ("biggest", "largest", "big", "large", "huge", "bigger", "larger"),
    "smallest": ("smallest", "small", "little", "tiny", "smaller"),
}
ORDERS: dict[str, int] = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "last": -1,
}
MOTIONS: dict[str, tuple[str, ...]] = {
    "moving": ("moving", "running", "walking", "driving", "riding", "passing", "jumping", "rolling", "flying"),
    "fast": ("fast", "fastest", "quick", "quickly", "speeding"),
    "slow": ("slow", "slowest", "slowly"),
}
# Words that carry no attribute: dropped before reporting "other words".
STOPWORDS = frozenset(
    "a an the this that of in on at to from with and or one is are who which its his her their "
    "remove erase delete get rid object thing side part corner wearing".split()
)


@dataclass
class PromptQuery:
    text: str
    colours: list[str] = field(default_factory=list)
    position: list[str] = field(default_factory=list)
    size: str = ""  # "largest" | "smallest" | ""
    order: int = 0  # 1-based; -1 = last; 0 = none
    motion: list[str] = field(default_factory=list)
    nouns: list[str] = field(default_factory=list)  # words with no attribute meaning ("car", "man")

    @property
    def discriminative(self) -> bool:
        """Whether the sentence says anything that can tell candidates apart."""
        return bool(
            self.colours or self.position or self.size or self.order or "fast" in self.motion or "slow" in self.motion
        )

    def describe(self) -> str:
        parts = self.colours + self.position
        if self.size:
            parts.append(self.size)
        if self.order:
            parts.append("last" if self.order < 0 else f"#{self.order}")
        parts += self.motion
        return ", ".join(parts) or "no attributes"


def _lookup(word: str, table: dict[str, tuple[str, ...]]) -> str:
    for key, words in table.items():
        if word in words:
            return key
    return ""


def parse_prompt(text: str) -> PromptQuery:
    """Split a sentence into attributes; raise PromptError for an empty one."""
    clean = (text or "").strip()
    if not clean:
        raise PromptError(
            'the prompt is empty: describe the object to remove, e.g. "the red car on the left"',
            code="PROMPT_EMPTY",
        )
    query = PromptQuery(text=clean)
    for word in re.findall(r"[a-z0-9]+", clean.lower()):
        if colour := _lookup(word, COLOURS):
            if colour not in query.colours:
                query.colours.append(colour)
        elif position := _lookup(word, POSITIONS):
            if position not in query.position:
                query.position.append(position)
        elif size := _lookup(word, SIZES):
            query.size = size
        elif word in ORDERS:
            query.order = ORDERS[word]
        elif motion := _lookup(word, MOTIONS):
            if motion not in query.motion:
                query.motion.append(motion)
        elif word not in STOPWORDS and not word.isdigit():
            query.nouns.append(word)
    return query


# ----- honesty: words a masker cannot check --------------------------------------------------

# What a user can pull to have object names understood (ids from masker/models.py).
LEARNED_HINT = (
    "peanut models pull grounding-dino-tiny and hf-sam2.1-hiera-tiny (about 0.85 GB) "
    "for a masker that reads object names"
)


class PromptNotUnderstood(PromptError):
    """The prompt has words the running masker cannot check, and the user did not accept an
    approximation. FAILED_PRECONDITION: the same request succeeds once weights are present."""

    status = "FAILED_PRECONDITION"
    code = "PROMPT_WORDS_UNCHECKED"


def words_without_meaning(text: str, with_box: bool = False) -> list[str]:
    """The words of `text` the no-weights masker cannot check.

    Object names always; with a box or points the object is already picked, so size
    and order words ("the biggest", "the second") have nothing to compare against either.
    """
    if not (text or "").strip():
        return []
    query = parse_prompt(text)
    words = list(dict.fromkeys(query.nouns))
    if with_box:
        words += [w for w in re.findall(r"[a-z0-9]+", text.lower()) if _lookup(w, SIZES) or w in ORDERS]
    return words


def refusal_message(backend: str, words: list[str]) -> str:
    """One line: which words, and what the user can do instead."""
    quoted = ", ".join(f'"{w}"' for w in words)
    return (
        f"the {backend} masker cannot check {quoted}: point at the object instead "
        f"(--box F:X,Y,W,H or --point F:X,Y), give masks (--mask), {LEARNED_HINT}, "
        f"or pass --approximate to accept the best match on the other words"
    )


def check_frame_prompts(
    frame_prompts: list, width: int, height: int, start: int, end: int, mask_given: bool = False
) -> None:
    """Boxes and points must sit on a frame of the range and inside the picture, one prompt per frame."""
    frames = [fp.frame for fp in frame_prompts]
    twice = sorted({f for f in frames if frames.count(f) > 1})
    if twice:
        # A masker reads one prompt per frame: a second one there would be dropped without a word.
        raise PromptError(
            f"frame {twice[0]} has more than one frame prompt: put its box and points in one", code="PROMPT_BAD_FRAME"
        )
    for fp in frame_prompts:
        if not start <= fp.frame < end:
            raise PromptError(
                f"the box/points are on frame {fp.frame}, outside the range {start}..{end - 1}", code="PROMPT_BAD_FRAME"
            )
        if fp.box is not None:
            x0, y0, x1, y1 = fp.box
            if not (x1 > x0 and y1 > y0):
                raise PromptError(
                    f"the box on frame {fp.frame} is empty: width and height must be positive", code="PROMPT_BAD_BOX"
                )
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                raise PromptError(
                    f"the box on frame {fp.frame} ({x0:g},{y0:g} to {x1:g},{y1:g}) reaches outside the "
                    f"{width}x{height} frame",
                    code="PROMPT_BAD_BOX",
                )
        for p in fp.points:
            if not (0 <= p.x < width and 0 <= p.y < height):
                raise PromptError(
                    f"the point {p.x:g},{p.y:g} on frame {fp.frame} is outside the {width}x{height} frame",
                    code="PROMPT_BAD_POINT",
                )
        if fp.box is None and not fp.points and mask_given:
            continue  # the frame a given mask is tracked from
        if mask_given and fp.frame <= min(f.frame for f in frame_prompts if f.box is None and not f.points):
            raise PromptError(
                f"the box/points on frame {fp.frame} come before the tracked mask's frame: with a mask, "
                f"boxes and points correct later frames only",
                code="PROMPT_BAD_FRAME",
            )
        if fp.box is None and not any(p.positive for p in fp.points):
            raise PromptError(
                f"frame {fp.frame} has only excluded points: add a --point or a --box on it", code="PROMPT_NO_POINTS"
            )
