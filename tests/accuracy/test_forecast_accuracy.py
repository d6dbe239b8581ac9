"""The combined model must beat each of its parts and the seasonal naive on synthetic data."""

from __future__ import annotations

from models.synthetic import as_series, generate
from ops.evaluate import evaluate


def test_combined_beats_seasonal_naive_prophet_and_river() -> None:
    # The set docs/benchmarks.md reports: on fewer series the margin is within the noise.
    series = [as_series(s) for s in generate(n_skus=100, days=730, seed=42)]
    results = evaluate(series, horizon=28, folds=4, processes=2, progress=False)
    mase = {name: round(r["mase"], 4) for name, r in results.items()}
    print("MASE on 100 synthetic SKUs, 4 folds of 28 days:", mase)
    assert results["combined"]["series"] >= 80
    assert mase["combined"] < mase["seasonal_naive"]
    assert mase["combined"] < mase["prophet"]
    assert mase["combined"] < mase["river"]
