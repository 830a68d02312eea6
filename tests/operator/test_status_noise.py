"""A steady service writes no status: the loads it shows move within a band without a write, conditions compare
without their timestamps; a real change is written."""

from __future__ import annotations

from infadapter.operator.status import status_changes


def test_load_jitter_is_not_written_and_a_real_move_is() -> None:
    written = {"observedLoadRps": 5.0, "predictedLoadRps": 8.0, "summary": "large:1cx2/1.00"}
    jitter = {"observedLoadRps": 6.0, "predictedLoadRps": 9.9, "summary": "large:1cx2/1.00"}  # forecast +24 %: inside its 25 % band
    assert status_changes(written, jitter) == {}
    moved = status_changes(written, {"observedLoadRps": 7.0, "predictedLoadRps": 11.0, "summary": "large:1cx2/1.00"})
    assert moved == {"observedLoadRps": 7.0, "predictedLoadRps": 11.0}
    assert status_changes(written, written | {"summary": "small:2c/1.00"}) == {"summary": "small:2c/1.00"}


def test_conditions_compare_without_their_timestamps() -> None:
    old = {"conditions": [{"type": "Ready", "status": "True", "reason": "Serving", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    same = {"conditions": [{"type": "Ready", "status": "True", "reason": "Serving", "message": "m", "lastTransitionTime": "2026-06-01T00:00:00Z"}]}
    assert status_changes(old, same) == {}
    flipped = {"conditions": [{"type": "Ready", "status": "False", "reason": "NoReadyVariant", "message": "m", "lastTransitionTime": "2026-06-01T00:00:00Z"}]}
    assert status_changes(old, flipped) == flipped
