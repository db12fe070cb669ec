"""Optical flow: estimators behind one interface, and flow completion inside holes.

`get_estimator(name)` turns "auto", "dis", "raft_small" or "raft_large" into a
FlowEstimator; `complete_flow` fills the flow inside masks from the background
around them.
"""

from .base import FlowEstimator, estimate_window_flows, get_estimator
from .completion import complete_flow, complete_flow_fields, harmonic_fill

__all__ = [
    "FlowEstimator",
    "complete_flow",
    "complete_flow_fields",
    "estimate_window_flows",
    "get_estimator",
    "harmonic_fill",
]
