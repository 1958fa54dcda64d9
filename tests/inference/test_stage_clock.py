"""StageClock: seconds per stage, busy shares, the first frame; safe to add to from many threads."""

import sys
import threading

import pytest

from lipsync import stage_clock
from lipsync.stage_clock import StageClock


class FakeTime:
    now = 100.0

    @classmethod
    def perf_counter(cls):
        return cls.now


@pytest.fixture
def fake_time(monkeypatch):
    monkeypatch.setattr(stage_clock, "time", FakeTime)
    FakeTime.now = 100.0
    return FakeTime


def test_busy_shares_first_frame_and_workers(fake_time):
    clock = StageClock()
    fake_time.now = 103.0  # 3 s of start-up
    clock.pipeline_started()
    with clock.measure("decode"):
        fake_time.now += 1.0
    clock.add("crops", 1.0)
    clock.frame_written()
    clock.add("generator", 16.0)  # two workers, 8 s each
    clock.set_workers("generator", 2)
    clock.add("encode", 5.0)
    clock.add("paste", 1.0)
    fake_time.now = 113.0
    clock.frame_written()  # only the first counts
    clock.pipeline_ended()
    figures = clock.figures()
    assert figures["seconds"] == {"decode": 1.0, "crops": 1.0, "generator": 16.0, "encode": 5.0, "paste": 1.0}
    assert figures["first_frame"] == 4.0 and figures["pipeline"] == 10.0 and figures["wall"] == 13.0
    assert figures["busy"] == pytest.approx({"faces": 0.2, "generator": 0.8, "compose": 0.6})


def test_timed_iterators_count_the_time_inside_next(fake_time):
    def slow():
        for item in range(3):
            fake_time.now += 0.5
            yield item
        fake_time.now += 0.25  # the end is found after a last wait

    clock = StageClock()
    assert list(clock.timed(slow(), "decode")) == [0, 1, 2]
    assert clock.seconds["decode"] == 1.75


def test_adds_from_many_threads_are_all_kept():
    clock = StageClock()

    def work():
        for _ in range(20000):
            clock.add("generator", 1.0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often, so an unguarded add would lose some
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert clock.seconds["generator"] == 80000.0
