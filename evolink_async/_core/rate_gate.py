"""What a transport does between a 429 and the server's next free slot (one per client).

Before any 429 the gate is open and costs one attribute read per request. A 429 closes it:

- every request of the client then waits for a **turn**: one turn at first, back to one at each
  429, one more each time a request is accepted at its first try (the server had room for it
  without being waited for: it may have room for more). A retry accepted after its 429 proves
  only that the slot it waited for was free, so it adds no turn. After ``OPEN_AFTER`` turns the
  gate opens again. A flood of waiting requests all sent at the end of one cooldown would get one
  answer and many 429s (each of which a request retries, and counts): the server only had room
  for one.
- a turn starts at the end of the **cooldown**: the server's ``Retry-After`` counted from when the
  server answered, so less the round trip of the rejected request (the answer travelled back, the
  next request travels there). Waiting the full ``Retry-After`` after the answer arrives, and
  then some jitter, leaves the server's slot unused for a round trip or more each time: on a
  server that allows one request per 10 ms that was a third of its capacity.

A request that got a 429 keeps its turn for its retry (it is next, not last in the queue). The
gate is per client (a derived client shares its parent's): several processes on one key meet
at the server, each sending one request per free slot, not all of their waiting requests.
"""

from __future__ import annotations

import time
from collections import deque

import anyio

__all__ = ["OPEN_AFTER", "RateGate"]

#: Turns after which the gate opens again: that many requests accepted at their first try, no 429 between.
OPEN_AFTER = 16

#: The gate's clock (the transport's too: a round trip it measures is on the same one).
now = time.monotonic


class RateGate:
    """Turns and cooldown after a 429; see the module's docstring."""

    __slots__ = ("_held", "_waiting", "_window", "closed", "until")

    def __init__(self) -> None:
        #: True from a 429 until the window of turns grew past ``OPEN_AFTER``.
        self.closed = False
        #: Monotonic time before which no request goes (the end of the cooldown).
        self.until = 0.0
        self._window = 1
        self._held = 0
        self._waiting: deque[anyio.Event] = deque()

    @property
    def waiting(self) -> int:
        """Requests waiting for a turn."""
        return len(self._waiting)

    async def take_turn(self) -> None:
        """Wait for a turn (first come, first served), then for the end of the cooldown.

        The caller owns the turn once this returns, and gives it back with :meth:`give_back`.
        Cancelled while waiting: no turn is held, and one handed over meanwhile goes on.
        """
        if self._held < self._window and not self._waiting:
            self._held += 1
        else:
            handed = anyio.Event()
            self._waiting.append(handed)
            try:
                await handed.wait()  # ``give_back`` counts the turn as held before it sets the event
            except BaseException:
                if handed.is_set():
                    self.give_back()
                else:
                    self._waiting.remove(handed)
                raise
        try:
            await self.cool_down()
        except BaseException:
            self.give_back()
            raise

    async def cool_down(self) -> float:
        """Sleep until the end of the cooldown; the seconds slept."""
        pause = self.until - now()  # read once: a second read may be negative
        if pause <= 0:
            return 0.0
        await anyio.sleep(pause)
        return pause

    def give_back(self) -> None:
        self._held -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        while self._waiting and (self._held < self._window or not self.closed):
            self._held += 1
            self._waiting.popleft().set()

    def rejected(self, wait: float, round_trip: float) -> None:
        """A 429 asking for ``wait`` seconds, answered ``round_trip`` seconds after its request left."""
        self.closed = True
        self._window = 1
        # The latest answer is the freshest news of the server's next free slot.
        self.until = now() + max(0.0, wait - round_trip)

    def accepted(self, *, first_try: bool) -> None:
        """A request that held a turn went through (any answer but a 429); ``first_try``: with no
        429 before it in its call."""
        if first_try:
            self._window += 1
            if self._window > OPEN_AFTER:
                self.closed = False
            self._hand_over()
