"""Interleaved steady-state timing.

On a shared machine the load drifts over seconds, so timing one implementation
after another would compare different machines. Instead every repetition runs
each implementation once, in a fresh random order, and the median over
repetitions is reported. The order is shuffled, not rotated: a rotation keeps
the same neighbours, and a runtime that leaves threads spinning after its call
(OpenMP in torch) would then always slow down the same successor. A sample is
the mean of a few back-to-back calls (each one blocked until its result is
ready) so that a sample lasts long enough to be measured reliably; the calls per
sample are fixed per implementation after warm-up.

The process CPU time of each sample is recorded too: when other jobs share the
cores, wall time includes waiting for a core, CPU time (summed over threads) does
not, so it tells a slow kernel from a descheduled one.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence


@dataclasses.dataclass
class Runner:
    """One implementation in one mode, ready to call.

    ``call`` runs the computation once and returns only when its result is ready.
    """

    key: tuple
    call: Callable[[], object]
    calls_per_sample: int = 1
    samples: list[float] = dataclasses.field(default_factory=list)
    cpu_samples: list[float] = dataclasses.field(default_factory=list)

    def calibrate(self, min_sample_s: float, warmup: int = 2) -> None:
        for _ in range(warmup):
            self.call()
        start = time.perf_counter()
        self.call()
        single = time.perf_counter() - start
        self.calls_per_sample = max(1, min(1000, math.ceil(min_sample_s / max(single, 1e-7))))

    def sample(self) -> None:
        cpu_start = time.process_time()
        start = time.perf_counter()
        for _ in range(self.calls_per_sample):
            self.call()
        self.samples.append((time.perf_counter() - start) / self.calls_per_sample)
        self.cpu_samples.append((time.process_time() - cpu_start) / self.calls_per_sample)


@dataclasses.dataclass(frozen=True)
class Summary:
    median_s: float
    min_s: float
    cpu_median_s: float  # CPU time of the whole process (all threads) per call
    p25_s: float
    p75_s: float
    samples: int
    calls_per_sample: int


def summarise(runner: Runner) -> Summary:
    values = sorted(runner.samples)
    if len(values) >= 2:
        p25, _, p75 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        p25 = p75 = values[0]
    return Summary(
        statistics.median(values),
        values[0],
        statistics.median(runner.cpu_samples),
        p25,
        p75,
        len(values),
        runner.calls_per_sample,
    )


def run_interleaved(runners: Sequence[Runner], reps: int, min_sample_s: float) -> None:
    """Calibrates every runner, then takes ``reps`` samples of each, interleaved."""
    for runner in runners:
        runner.calibrate(min_sample_s)
    order = list(runners)
    shuffle = random.Random(0).shuffle
    for _ in range(reps):
        shuffle(order)
        for runner in order:
            runner.sample()


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """Calls ``fn`` once and returns its result with the wall time it took."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start
