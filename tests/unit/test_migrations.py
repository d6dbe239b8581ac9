from __future__ import annotations

from pathlib import Path

import pytest

from connectors.db.migrate import plan


def test_one_variant_of_each_version_is_chosen() -> None:
    plain = [m.path.name for m in plan(timescale=False)]
    timescale = [m.path.name for m in plan(timescale=True)]
    assert "0002_timeseries.plain.sql" in plain and "0002_timeseries.timescale.sql" not in plain
    assert "0002_timeseries.timescale.sql" in timescale
    assert [m.version for m in plan(False)] == sorted({m.version for m in plan(False)})


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0001_b.sql").write_text("")
    with pytest.raises(ValueError):
        plan(False, tmp_path)


def test_timescale_hypertables_keep_unique_keys_on_the_time_column() -> None:
    sql = next(m for m in plan(True) if "timescale" in m.path.name).path.read_text()
    assert "UNIQUE (shop, inventory_item_id, location_id, ts)" in sql
    assert "create_hypertable('demand_ledger', 'ts'" in sql
