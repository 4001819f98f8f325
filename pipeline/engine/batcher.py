"""When the engine cuts a micro-batch, and how large it may be.

The rule (event ages are measured from the record timestamp):

* **idle**: the engine offers a batch the moment the handler's first stage is free, holding
  every event that is waiting. Waiting longer would only leave the pipeline idle, so at low
  load events go out at once, in small batches.
* While the pipeline is busy, events accumulate; that is where batches grow. When it frees up,
  the batch is capped at
      n_max = floor((objective - age_of_oldest - a) / b)
  the largest batch whose predicted cost `a + b*n` still lets its oldest event finish within
  the event-age objective (`INFERSTREAM_LATENCY_SLO_MS`); a batch cut at that cap is cut by the
  **deadline**. Under backlog, once even a batch of one cannot keep the oldest event in the
  objective, the cap is `batch_max`: draining fast is then what serves latency best.
* **full**: never more than `batch_max` events.

`a` (per-batch cost) and `b` (per-event cost) are fitted online, per handler, by exponentially
weighted least squares over the measured (size, busy seconds) of recent batches. Until a few
batches were seen there is no model and the cap is `batch_max`.
"""

from __future__ import annotations

import math
import threading

from pipeline.core.batch import CutReason


class CostModel:
    """Online fit of cost(n) = a + b*n (seconds), recent batches weighted most."""

    def __init__(self, decay: float = 0.95, min_samples: int = 5) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.min_samples = min_samples
        self.samples = 0
        self._w = self._x = self._y = self._xx = self._xy = 0.0
        self._lock = threading.Lock()

    def observe(self, n: int, seconds: float) -> None:
        if n <= 0 or seconds < 0 or not math.isfinite(seconds):
            return
        d = self.decay
        with self._lock:
            self._w = d * self._w + 1.0
            self._x = d * self._x + n
            self._y = d * self._y + seconds
            self._xx = d * self._xx + n * n
            self._xy = d * self._xy + n * seconds
            self.samples += 1

    def coefficients(self) -> tuple[float, float] | None:
        """(a, b), both >= 0; None until `min_samples` batches were observed."""
        with self._lock:
            if self.samples < self.min_samples or self._x <= 0:
                return None
            w, x, y, xx, xy = self._w, self._x, self._y, self._xx, self._xy
        spread = w * xx - x * x
        if spread <= 1e-9 * w * xx:  # every batch the same size: no slope to fit
            return 0.0, y / x
        b = (w * xy - x * y) / spread
        if b <= 0:  # noise, or cost independent of size: all of it per batch
            return y / w, 0.0
        a = (y - b * x) / w
        if a < 0:
            return 0.0, y / x
        return a, b

    def predict(self, n: int) -> float | None:
        fit = self.coefficients()
        return None if fit is None else fit[0] + fit[1] * n


class AdaptiveBatcher:
    def __init__(self, batch_max: int, objective_s: float, cost: CostModel | None = None) -> None:
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, got {batch_max}")
        if objective_s <= 0:
            raise ValueError(f"the latency objective must be positive, got {objective_s}")
        self.batch_max = batch_max
        self.objective_s = objective_s
        self.cost = cost or CostModel()

    def cap(self, oldest_age_s: float) -> int:
        """The most events a batch may take when its oldest event is `oldest_age_s` old."""
        fit = self.cost.coefficients()
        if fit is None:
            return self.batch_max
        a, b = fit
        left = self.objective_s - oldest_age_s - a
        if b <= 0:
            return self.batch_max
        n = math.floor(left / b)
        if n < 1:  # backlog: the oldest event misses the objective whatever we do
            return self.batch_max
        return min(n, self.batch_max)

    def cut(self, waiting: int, oldest_age_s: float) -> tuple[int, CutReason]:
        """How many of the `waiting` events the next batch takes, and why it stops there."""
        if waiting < 1:
            raise ValueError("nothing to batch")
        cap = self.cap(oldest_age_s)
        if waiting < cap:
            return waiting, "idle"
        return cap, "full" if cap == self.batch_max else "deadline"

    def observe(self, n: int, busy_s: float) -> None:
        self.cost.observe(n, busy_s)
