"""What a run learns about an endpoint: a circuit breaker over its failures and whether it is a reasoning
model (one that takes ``max_completion_tokens`` and no temperature)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    """After `failures` consecutive failed calls the endpoint is skipped for `cooldown` seconds (open);
    then one call is let through (half-open): its success closes the breaker, its failure opens it again."""

    def __init__(
        self, failures: int = 1, cooldown: float = 120.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False
        self.last_error = ""

    @property
    def state(self) -> str:
        """One of closed, open or half-open."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._probing or self._clock() - self._opened_at >= self.cooldown:
                return "half-open"
            return "open"

    def refusal(self) -> str | None:
        """None when a call may go now (taking the half-open probe if it is due), else why not."""
        with self._lock:
            if self._opened_at is None:
                return None
            waited = self._clock() - self._opened_at
            if waited >= self.cooldown and not self._probing:
                self._probing = True
                return None
            why = "a trial call is under way" if self._probing else f"{self.cooldown - waited:.0f} s left"
            return f"skipped after {self._consecutive} failed calls ({why}); last: {self.last_error}"

    def success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._probing = False

    def failure(self, error: str) -> None:
        with self._lock:
            self._consecutive += 1
            self.last_error = error
            if self._probing or self._consecutive >= self.failures:
                self._opened_at = self._clock()
            self._probing = False

    def release(self) -> None:
        """The call ended without saying anything about the endpoint (the request itself was refused)."""
        with self._lock:
            self._probing = False


class EndpointState:
    """Shared by the clients of one endpoint in a run (one per workspace): the breaker and the parameter
    set the endpoint takes (`reasoning` None: not known yet)."""

    def __init__(self, breaker: CircuitBreaker, reasoning: bool | None = None) -> None:
        self.breaker = breaker
        self.reasoning = reasoning
