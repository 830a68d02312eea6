"""The operator's observer: where its scrapes land, and so when it steps (``infadapter/operator/history.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from infadapter.errors import MetricsUnavailable
from infadapter.operator.history import LANDING_MARGIN_S, History, newest_change, next_step_s


class _Scraped:
    """``irate`` at every second of a router scraped every 5 s, at 7.4 s past each multiple of 5 (epoch seconds):
    the rate between two scrapes first shows at the second after the newer one, and holds until the next."""

    def __init__(self, rate_at: dict[int, float], *, stamps: bool = True) -> None:
        self.rate_at = rate_at  # scrape second -> the rate it measured since the one before
        self.stamps = stamps  # whether Prometheus answers the scrapes' times (a shadowed service's query does not)
        self.asked: list[tuple[float, float]] = []

    def newest_scrape_s(self, namespace: str, name: str, source: str = "router") -> float | None:
        if not self.stamps:
            raise MetricsUnavailable("no timestamp")
        end = self.asked[-1][1]
        return max((s + 0.4 for s in self.rate_at if s + 1 <= end), default=None)

    def arrival_history_rps(self, namespace: str, name: str, start_s: float, end_s: float, lookback_s: float | None = None, source: str = "") -> np.ndarray:
        self.asked.append((start_s, end_s))
        seconds = np.arange(int(start_s), int(end_s) + 1)
        landed = [max((s for s in self.rate_at if s + 1 <= k), default=None) for k in seconds]
        return np.array([np.nan if s is None else self.rate_at[s] for s in landed])

    def query_history_rps(self, query: str, start_s: float, end_s: float) -> np.ndarray:
        raise AssertionError("not a shadowed service")


def test_the_newest_change_is_where_the_newest_scrape_landed() -> None:
    assert newest_change(np.array([5.0, 5.0, 7.0, 7.0, 7.0, 6.0, 6.0])) == 5
    assert newest_change(np.array([np.nan, 5.0, np.nan, 7.0])) is None  # an unknown second hides where it changed
    assert newest_change(np.array([3.0, 3.0, 3.0])) is None  # a rate that does not move shows no scrape
    assert newest_change(np.array([])) is None


def test_the_history_learns_the_scrapes_phase_and_the_operator_steps_just_after_the_next() -> None:
    source = _Scraped({1007: 20.0, 1012: 30.0, 1017: 25.0, 1022: 40.0})
    history = History(60, 5.0)
    history.update(source, "ns", "svc", 1020.6)
    assert history.landed_s == 1018  # the scrape at 1017.4 shows from second 1018
    assert history.values[-1] == 25.0
    assert next_step_s(history.landed_s, 1020.6, 5.0) == pytest.approx(1023 + LANDING_MARGIN_S)  # the one at 1022.4 shows at 1023
    history.update(source, "ns", "svc", 1023.25)
    assert history.landed_s == 1023 and history.values[-1] == 40.0  # seen 0.85 s after it was scraped
    assert next_step_s(history.landed_s, 1023.25, 5.0) == pytest.approx(1028 + LANDING_MARGIN_S)


def test_a_late_scrape_is_looked_for_every_second_then_the_plain_interval_returns() -> None:
    assert next_step_s(1018, 1023.3, 5.0) == pytest.approx(1024.3)  # due at 1023.25, not seen: again in a second
    assert next_step_s(1018, 1027.9, 5.0) == pytest.approx(1028.9)
    assert next_step_s(1018, 1028.1, 5.0) == pytest.approx(1033.1)  # two intervals without one: every interval
    assert next_step_s(1024, 1023.9, 5.0) == pytest.approx(1024.25)  # scraped at 1023.4: its second, the one ending at 1024, is readable from then
    assert next_step_s(1002, 1001.9, 1.0) == pytest.approx(1002.25)  # 1-s scrapes: every second, not every other
    assert next_step_s(None, 1000.0, 5.0) == pytest.approx(1005.0)  # none seen yet (an idle service, no series)
    assert next_step_s(None, 1000.0, 0.5) == pytest.approx(1001.0)  # never faster than a second


def test_an_idle_service_steps_after_its_scrapes_too_where_prometheus_dates_them() -> None:
    history = History(60, 5.0)
    history.update(_Scraped({1007: 0.0, 1012: 0.0, 1017: 0.0}), "ns", "svc", 1020.6)
    assert history.landed_s == 1018 and history.values[-1] == 0.0  # the scrape at 1017.4, by its time


def test_without_the_scrapes_times_the_rate_s_changes_show_them_and_a_steady_rate_keeps_the_interval() -> None:
    history = History(60, 5.0)
    history.update(_Scraped({1007: 20.0, 1012: 30.0, 1017: 25.0}, stamps=False), "ns", "svc", 1020.6)
    assert history.landed_s == 1018  # where 30 became 25
    idle = History(60, 5.0)
    idle.update(_Scraped({1007: 0.0, 1012: 0.0, 1017: 0.0}, stamps=False), "ns", "svc", 1020.6)
    assert idle.landed_s is None and idle.values[-1] == 0.0  # it ran, and saw no change
    assert next_step_s(idle.landed_s, 1020.6, 5.0) == pytest.approx(1025.6)
