"""The global rate limit: one GCRA budget per channel in the database, shared by every thread, process and host."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from incident.config import Workspace
from incident.db import engine_for


class RateLimiter:
    """Messages per second for one channel, shared by every thread, process and host through the database.

    Each reservation takes the channel's next free send time and pushes it on (GCRA): over any window W
    at most rate×W + 1 messages go out, however many workers share the budget.
    """

    def __init__(self, ws: Workspace, channel: str, rate: float) -> None:
        self.ws, self.channel, self.rate = ws, channel, rate
        self.lock = threading.Lock()
        self.slots: list[float] = []

    def _reserve(self, count: int) -> list[float]:
        engine = engine_for(self.ws)
        greatest = "max" if engine.dialect.name == "sqlite" else "GREATEST"
        now = time.time()
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO rate_budget (channel, next_free) VALUES (:c, :now) ON CONFLICT (channel) DO NOTHING"),
                {"c": self.channel, "now": now},
            )
            end = conn.execute(
                text(
                    f"UPDATE rate_budget SET next_free = {greatest}(next_free, :now) + :span WHERE channel = :c "
                    "RETURNING next_free"
                ),
                {"c": self.channel, "now": now, "span": count / self.rate},
            ).scalar_one()
        start = float(end) - count / self.rate
        return [start + i / self.rate for i in range(count)]

    def wait(self) -> None:
        """Block until this thread may send one message on the channel (at once when it is unlimited)."""
        if self.rate <= 0:
            return
        late = 0.5 / self.rate  # a slot missed by more than this is dropped, never spent in a burst later
        while True:
            with self.lock:
                now = time.time()
                while self.slots and self.slots[0] < now - late:
                    self.slots.pop(0)
                if not self.slots:
                    # Reserve a tenth of a second's worth at a time: few database round trips, little waste.
                    self.slots = self._reserve(max(1, int(self.rate / 10)))
                slot = self.slots.pop(0)
            delay = slot - time.time()
            if delay > 0:
                time.sleep(delay)
            # Under CPU contention sleep() can overshoot: sending long after the slot would pile onto later
            # slots, so a slot missed by more than `late` is given up and another one taken.
            if time.time() - slot <= late:
                return
