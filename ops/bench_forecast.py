"""``stockpulse bench forecast``: online model speed and nightly Prophet throughput.

The nightly part runs the very function the nightly batch maps over its processes
(``ops.nightly.fit_one``) on seeded synthetic SKUs with two years of history.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from typing import Any

from rich.progress import track

from models.online import OnlineDemandModel
from models.synthetic import generate
from ops.nightly import FitJob, _init_worker, fit_one


def bench_online(n_skus: int = 1000, days: int = 730) -> dict[str, float]:
    skus = generate(n_skus=n_skus, days=days, seed=3)
    rows = [(s.dates, s.sales.astype(float).tolist(), s.in_stock.tolist()) for s in skus]
    models = [OnlineDemandModel() for _ in rows]
    updates = 0
    started = time.process_time()
    for model, (dates, sales, in_stock) in zip(models, rows, strict=True):
        for day, units, ok in zip(dates, sales, in_stock, strict=True):
            model.learn_day(day, units, ok)
        updates += len(dates)
    cpu = time.process_time() - started
    latencies = []
    for model, (dates, _, _) in zip(models, rows, strict=True):
        first = dates[-1] + timedelta(days=1)
        t = time.perf_counter()
        model.forecast(first, 90)
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    return {
        "updates": updates,
        "updates_per_cpu_second": updates / cpu,
        "forecast_90d_p50_ms": statistics.median(latencies) * 1000,
        "forecast_90d_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def bench_nightly(n_skus: int, processes: int, days: int = 730) -> dict[str, Any]:
    jobs = [
        FitJob(i, s.dates[0], s.sales.astype(float), s.in_stock, "US")
        for i, s in enumerate(generate(n_skus=n_skus, days=days, seed=4))
    ]
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    started = time.perf_counter()
    with ProcessPoolExecutor(processes, initializer=_init_worker) as pool:
        # Warm each process (imports, cmdstan load) outside the timing, as a nightly run of
        # many shops pays it once.
        list(pool.map(fit_one, jobs[:processes]))
        started = time.perf_counter()
        results = list(
            track(
                pool.map(fit_one, jobs, chunksize=4),
                total=len(jobs),
                description=f"{processes} process(es)",
            )
        )
    wall = time.perf_counter() - started
    cpu = [r["fit_seconds"] for r in results]
    return {
        "skus": len(jobs),
        "processes": processes,
        "wall_seconds": wall,
        "cpu_seconds_per_sku": sum(cpu) / len(cpu),
        "skus_per_second": len(jobs) / wall,
    }
