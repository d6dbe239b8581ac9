"""The combined forecast against open-source peers, on the same folds (issue 13).

Real data: 50 series of the shared store-items set (not in the repository: found through
STOCKPULSE_DEMAND_DATA, ``../shared/data`` beside the checkout, or ``/work/shared/data``).
Synthetic data: one generated shop of 100 SKUs, the set docs/benchmarks.md reports.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from models.forecast import Series
from models.synthetic import as_series, generate
from ops.evaluate import TRUTH, evaluate, read_demand_csv

REPO = Path(__file__).resolve().parents[2]
REAL_SET = "store_items_2017.csv"
# Worker processes for the backtests: CI runs these beside the rest of the suite with one, so
# that the service tests keep a core to themselves.
PROCESSES = int(os.environ.get("STOCKPULSE_ACCURACY_PROCESSES", "2"))
# Pure CPU, and CI runs them niced beside the rest of the suite, which has both cores much of
# the time: under the suite's 300 s allowance alone, over it beside a busy suite.
pytestmark = pytest.mark.timeout(900)


def real_set() -> Path | None:
    candidates = [
        Path(os.environ.get("STOCKPULSE_DEMAND_DATA", "/nonexistent")) / REAL_SET,
        REPO.parent / "shared" / "data" / REAL_SET,
        Path("/work/shared/data") / REAL_SET,
    ]
    return next((p for p in candidates if p.is_file()), None)


def _print(title: str, results: dict[str, dict[str, float | None]]) -> None:
    print(title)
    for name, r in results.items():
        coverage = "–" if r["coverage"] is None else f"{r['coverage']:.3f}"
        print(
            f"  {name:17s} MASE {r['mase']:.3f}  RMSSE {r['rmsse']:.3f}  bias {r['bias']:+.3f}"
            f"  coverage {coverage}"
        )


def test_combined_beats_every_peer_on_real_shop_data() -> None:
    path = real_set()
    if path is None:
        pytest.skip(f"{REAL_SET} not found: set STOCKPULSE_DEMAND_DATA to its directory")
    series = read_demand_csv(path)
    chosen = sorted(series)
    random.Random(13).shuffle(chosen)
    subset = [series[sku] for sku in chosen[:50]]
    results = evaluate(subset, horizon=28, folds=4, processes=PROCESSES, progress=False)
    _print("50 real series, 4 folds of 28 days:", results)
    combined = results["combined"]
    others = {name: r for name, r in results.items() if name != "combined"}
    # The same test for every method: the same series and folds scored.
    assert {r["scored"] for r in results.values()} == {200}
    best_mase = min(r["mase"] for r in others.values())
    best_rmsse = min(r["rmsse"] for r in others.values())
    assert combined["mase"] <= 0.95 * best_mase, "not 5 % below the best peer in MASE"
    assert combined["rmsse"] <= 0.97 * best_rmsse, "not 3 % below the best peer in RMSSE"
    assert abs(combined["bias"]) <= 0.05
    assert 0.75 <= combined["coverage"] <= 0.85


def test_combined_on_a_synthetic_shop() -> None:
    shop = generate(n_skus=100, days=730, seed=42)
    series = [as_series(s) for s in shop]
    expected = [Series(s.demand, None, s.dates[0]) for s in shop]
    results = evaluate(
        series, horizon=28, folds=4, processes=PROCESSES, progress=False, truth=expected
    )
    _print("100 synthetic SKUs of one shop, 4 folds of 28 days:", results)
    truth = results.pop(TRUTH)
    combined = results["combined"]
    assert combined["series"] >= 80
    # The expected demand itself is the reference no forecast of the mean can beat in RMSSE.
    assert truth["rmsse"] < combined["rmsse"] and abs(truth["bias"]) < 0.02
    assert truth["coverage"] is None
    others = {n: r for n, r in results.items() if n != "combined"}
    assert len({r["scored"] for r in results.values()}) == 1
    assert combined["rmsse"] < min(r["rmsse"] for r in others.values())
    assert combined["mase"] < min(r["mase"] for r in others.values())
    # The goal is ±5 %, and this shop misses it (docs/benchmarks.md): its second fold holds
    # shop-wide sales that nothing in the history announces, which every method forecasts
    # 11-19 % short on its CSV, Prophet included (docs/forecasting-experiments.md). This
    # bound guards against a regression beyond that.
    assert abs(combined["bias"]) <= 0.06
    assert 0.75 <= combined["coverage"] <= 0.85
