"""A monotonic clock that moves only when told, and a sleep that moves it instead of waiting."""

from __future__ import annotations


class FakeClock:
    """Monotonic seconds that move only when told (a FakeSleep moves them too)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSleep:
    """Records each requested wait and advances the clock instead of sleeping."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(float(seconds))
        self.clock.advance(float(seconds))
