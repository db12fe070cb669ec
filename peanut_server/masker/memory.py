"""The CME memory: what the tracked object looks like, so a drift onto a look-alike shows.

A few prototypes of the target's appearance feature (a colour histogram from
colour.py, or a learned backend's L2-normalised vector); the tracking loop
(tracking.py) scores the tracked region against it every clip_window frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-8 or nb < 1e-8:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


@dataclass
class AppearanceMemory:
    """A few prototypes of the target; Read() is a similarity-weighted average.

    Only features that agree with the memory (S > tau) are written, so the
    memory does not absorb a look-alike after a silent switch.
    """

    capacity: int = 8
    tau: float = 0.7
    temperature: float = 0.1
    prototypes: list[np.ndarray] = field(default_factory=list)

    def read(self, query: np.ndarray | None = None) -> np.ndarray:
        if not self.prototypes:
            raise ValueError("empty appearance memory")
        protos = np.stack(self.prototypes)
        if query is None:
            weights = np.full(len(protos), 1.0 / len(protos))
        else:
            sims = protos @ query / (np.linalg.norm(protos, axis=1) * max(float(np.linalg.norm(query)), 1e-8) + 1e-8)
            weights = np.exp((sims - sims.max()) / self.temperature)
            weights /= weights.sum()
        out = (weights[:, None] * protos).sum(0)
        return out / max(float(np.linalg.norm(out)), 1e-8)

    def score(self, feature: np.ndarray) -> float:
        """S = cos(f, Read(memory)); 1.0 while the memory is empty."""
        if not self.prototypes:
            return 1.0
        return cosine(feature, self.read(feature))

    def write(self, feature: np.ndarray, force: bool = False) -> bool:
        """Store the feature when it agrees with the memory (or when forced); True if stored."""
        if not force and self.prototypes and self.score(feature) <= self.tau:
            return False
        if not np.any(feature):
            return False
        self.prototypes.append(feature.astype(np.float32))
        # Keep the first prototype (the user's choice) and the most recent ones.
        if len(self.prototypes) > self.capacity:
            del self.prototypes[1]
        return True
