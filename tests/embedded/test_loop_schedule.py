"""When the embedded loop calls its controller: steps at whole seconds, settles at the wakes between them."""

from __future__ import annotations

import math

import pytest

from infadapter.embedded.run import SETTLE_GAP_S, next_call


def test_a_wake_before_the_next_second_is_a_settle_then() -> None:
    assert next_call(10.2, 10.45, -math.inf) == ("settle", 10.45)


def test_no_wake_or_one_past_the_second_waits_for_the_step() -> None:
    assert next_call(10.2, math.inf, -math.inf) == ("step", 11.0)
    assert next_call(10.2, 11.3, -math.inf) == ("step", 11.0)


def test_a_wake_already_past_is_due_now_not_at_the_next_second() -> None:
    # a staged switch asked to be woken 0.1 s after its stage, but applying the stage took 0.3 s
    assert next_call(10.6, 10.4, 10.3) == ("settle", 10.6)


def test_settles_stay_apart_when_the_wake_stays_due() -> None:
    kind, at = next_call(10.61, 10.6, 10.6)
    assert kind == "settle" and at == pytest.approx(10.6 + SETTLE_GAP_S)
    calls, now, last = 0, 10.0, -math.inf
    while now < 11.0:  # a controller that always answers "wake me now": at most 1 / SETTLE_GAP_S settles a second
        kind, at = next_call(now, now, last)
        if kind == "step":
            break
        calls, now, last = calls + 1, at, at
    assert 0 < calls <= 1.0 / SETTLE_GAP_S + 1
