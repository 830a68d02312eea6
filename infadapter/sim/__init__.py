"""The trace-driven simulator: the policies' own code over a trace, every request through calibrated queues.

``simulate(spec, profile, trace_rps, policies, ...)`` (in :mod:`infadapter.sim.run`) returns, per policy,
the DESIGN.md measures, per-second series and what the loop did. See ``docs/simulator.md``.
"""

from __future__ import annotations

from infadapter.sim.run import SUMMARY_KEYS, PolicyRun, simulate

__all__ = ["SUMMARY_KEYS", "PolicyRun", "simulate"]
