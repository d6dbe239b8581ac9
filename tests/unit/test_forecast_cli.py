"""`stockpulse forecast synthetic` and `forecast evaluate --truth`, end to end on a small shop."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

from click.testing import CliRunner

from ops.cli import main
from ops.evaluate import METHODS, TRUTH, read_demand_csv, write_json


def test_a_synthetic_shop_is_evaluated_against_its_own_expected_demand(tmp_path: Path) -> None:
    sales, truth, report = tmp_path / "s.csv", tmp_path / "t.csv", tmp_path / "r.json"
    runner = CliRunner()
    made = runner.invoke(
        main,
        [
            *("forecast", "synthetic", "--skus", "12", "--days", "200", "--seed", "5"),
            *("--output", str(sales), "--truth", str(truth)),
        ],
    )
    assert made.exit_code == 0, made.output
    evaluated = runner.invoke(
        main,
        [
            *("forecast", "evaluate", "--input", str(sales), "--truth", str(truth)),
            *("--horizon", "14", "--folds", "2", "--processes", "2", "--json", str(report)),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    # Where the history ends is said: a day after the file's last date is not known yet.
    last = max(line.split(",")[1] for line in sales.read_text().splitlines()[1:])
    assert f"History to {last}, the file's last date." in " ".join(evaluated.output.split())
    result = json.loads(report.read_text())
    assert result["meta"]["truth"] == str(truth)
    methods = result["methods"]
    assert set(methods) == {*METHODS, TRUTH}
    assert methods[TRUTH]["coverage"] is None
    assert methods[TRUTH]["series"] == methods["combined"]["series"] > 0
    assert math.isfinite(methods[TRUTH]["rmsse"])
    # The expected demand is the mean the sales were drawn from: no method's RMSSE is far below
    # it (a misaligned truth would score like a bad forecast, far above the others).
    assert methods[TRUTH]["rmsse"] <= min(r["rmsse"] for r in methods.values()) * 1.1


def test_a_csv_it_cannot_backtest_gets_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    days = [f"2024-01-{d:02d}" for d in range(1, 31)]
    cases = {
        "header only": ("sku,date,quantity\n", "no sales rows"),
        "nan": ("sku,date,quantity\nA,2024-01-01,nan\n", "line 2: quantity 'nan'"),
        "inf": ("sku,date,quantity\nA,2024-01-01,1\nA,2024-01-02,-inf\n", "line 3"),
        "too short": (
            "sku,date,quantity\n" + "".join(f"A,{d},2\n" for d in days),
            "needs 126 days from a SKU's first sale to the file's last day, the longest has 30",
        ),
    }
    cases["nothing sold"] = (
        "sku,date,quantity\n" + "".join(f"A,{d},0\n" for d in days),
        "no SKU sold anything",
    )
    # From an outside test: 1e160 overflowed RMSSE's squares (a traceback), and one row dated
    # 2031 stretched every series to it (every method scored -100 %, exit 0).
    cases["huge"] = ("sku,date,quantity\nA,2024-01-01,1e160\n", "line 2: quantity '1e160'")
    cases["future"] = ("sku,date,quantity\nA,2024-01-01,1\nA,2031-01-01,5\n", "line 3: 2031")
    # From another: a short row was a traceback, and one stray 1970-01-01 (a spreadsheet's
    # empty date) made every method's MASE 15 times worse, exit 0.
    cases["short row"] = (
        "sku,date,quantity\nA,2024-01-01,1\nA,2024-01-02\n",
        "line 3: no quantity",
    )
    cases["epoch"] = ("sku,date,quantity\nA,2024-01-01,1\nA,1970-01-01,1\n", "line 3: 1970-01-01")
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text)
        result = CliRunner().invoke(main, ["forecast", "evaluate", "--input", str(path)])
        assert result.exit_code == 1, (name, result.output)
        assert message in result.output, (name, result.output)
        assert "Traceback" not in result.output


def test_synthetic_kinds_set_the_shop_mix(tmp_path: Path) -> None:
    sales = tmp_path / "s.csv"
    runner = CliRunner()
    made = runner.invoke(
        main,
        [
            *("forecast", "synthetic", "--skus", "200", "--days", "30", "--seed", "3"),
            *("--kinds", "intermittent=0.5,lumpy=0.5", "--output", str(sales)),
        ],
    )
    assert made.exit_code == 0, made.output
    kinds = {line.split(",")[0].split("-")[2] for line in sales.read_text().splitlines()[1:]}
    assert kinds == {"INTE", "LUMP"}
    for bad, message in {
        "lumpy": "'lumpy' is not KIND=SHARE",
        "wholesale=0.2": "unknown kind(s) wholesale",
        "lumpy=0.8,intermittent=0.5": "sum to at most 1",
    }.items():
        refused = runner.invoke(
            main, ["forecast", "synthetic", "--output", str(sales), "--kinds", bad]
        )
        assert refused.exit_code == 2 and message in refused.output, (bad, refused.output)


def test_a_synthetic_shop_ends_on_the_day_asked_for(tmp_path: Path) -> None:
    sales = tmp_path / "s.csv"
    made = CliRunner().invoke(
        main,
        [
            *("forecast", "synthetic", "--skus", "20", "--days", "60", "--seed", "3"),
            *("--end", "2026-12-31", "--output", str(sales)),
        ],
    )
    assert made.exit_code == 0, made.output
    days = {line.split(",")[1] for line in sales.read_text().splitlines()[1:]}
    assert max(days) == "2026-12-31" and min(days) >= "2026-11-02"


def test_a_spreadsheets_csv_reads_like_a_plain_one(tmp_path: Path) -> None:
    """A Windows-1252 export with an accented SKU and capitalised, padded column names, and
    the same file gzipped, read as the plain UTF-8 one; a SKU that never sold is left out."""
    rows = "".join(
        f"Käse-Gouda,2024-01-{d:02d},{d % 3}\nNEVER,2024-01-{d:02d},0\n" for d in range(1, 29)
    )
    plain = tmp_path / "plain.csv"
    plain.write_text("sku,date,quantity\n" + rows, encoding="utf-8")
    excel = tmp_path / "excel.csv"
    excel.write_bytes(("SKU, Date ,Quantity\r\n" + rows.replace("\n", "\r\n")).encode("cp1252"))
    packed = tmp_path / "packed.csv.gz"
    packed.write_bytes(gzip.compress(excel.read_bytes()))
    expected = read_demand_csv(plain)
    assert list(expected) == ["Käse-Gouda"]
    for path in (excel, packed):
        found = read_demand_csv(path)
        assert list(found) == ["Käse-Gouda"]
        assert found["Käse-Gouda"].start == expected["Käse-Gouda"].start
        assert found["Käse-Gouda"].y.tolist() == expected["Käse-Gouda"].y.tolist()


def test_returns_and_repeated_rows_are_said_and_counted_sensibly(tmp_path: Path) -> None:
    """Negative days went into the fits as negative demand, and repeated rows were summed,
    without a word."""
    rows = "".join(f"A,2024-01-{d:02d},2\n" for d in range(1, 29))
    path = tmp_path / "returns.csv"
    path.write_text("sku,date,quantity\n" + rows + "A,2024-01-05,-7\nA,2024-01-06,1\n")
    notes: list[str] = []
    found = read_demand_csv(path, notes)["A"].y
    assert found[4] == 0 and found[5] == 3
    assert notes == [
        "2 row(s) repeated a SKU and day already read: added up",
        "1 day(s) of a SKU netted below zero (returns): counted as 0",
    ]


def test_a_sku_that_never_sold_is_said_to_be_left_out(tmp_path: Path) -> None:
    """It was dropped without a word, so a file's SKU count and the table's disagreed."""
    rows = "".join(f"A,2024-01-{d:02d},2\nIDLE,2024-01-{d:02d},0\n" for d in range(1, 29))
    path = tmp_path / "idle.csv"
    path.write_text("sku,date,quantity\n" + rows)
    notes: list[str] = []
    assert set(read_demand_csv(path, notes)) == {"A"}
    assert notes == ["1 SKU(s) never sold: nothing to forecast, left out"]


def test_the_table_shows_a_dash_where_a_figure_has_no_value_and_keeps_its_width() -> None:
    """It printed "nan" where the JSON says null, and piped into a file rich squeezed it to 80
    columns, wrapping every figure."""
    import io

    from rich.console import Console

    from ops.evaluate import print_table

    row = {"mase": 0.5, "rmsse": 0.4, "wape": 0.3, "bias": float("nan"), "coverage": None}
    row |= {"fit_seconds_per_series": 0.01, "series": 3.0, "scored": 6.0}
    out = io.StringIO()
    print_table({"croston_sba": row}, Console(file=out, width=160))
    line = next(x for x in out.getvalue().splitlines() if "croston_sba" in x)
    assert "nan" not in line and line.count("–") == 2 and "0.500" in line


def test_the_json_holds_null_where_a_figure_has_no_value(tmp_path: Path) -> None:
    """Bias over days that sold nothing has no value: the file said NaN, which is not JSON."""
    path = tmp_path / "out.json"
    write_json({"combined": {"mase": 0.5, "bias": float("nan")}}, path, {"input": "x.csv"})
    assert json.loads(path.read_text())["methods"]["combined"] == {"mase": 0.5, "bias": None}


def test_every_method_is_scored_on_the_same_series_and_folds(tmp_path: Path) -> None:
    """Prophet cannot fit a SKU of one sale: it was left out of Prophet's score only, so
    Prophet and the rest were measured on different days (found by an outside tester)."""
    import datetime as dt

    start = dt.date(2026, 1, 1)
    days = [(start + dt.timedelta(days=d)).isoformat() for d in range(200)]
    rows = ["sku,date,quantity"]
    rows += [f"STEADY,{d},{3 + (i * i) % 5}" for i, d in enumerate(days)]
    rows += [f"ONCE,{days[0]},5", f"ONCE,{days[-1]},0"]
    data, report = tmp_path / "d.csv", tmp_path / "r.json"
    data.write_text("\n".join(rows) + "\n")
    runner = CliRunner()
    refused = runner.invoke(
        main, ["forecast", "evaluate", "--input", str(data), "--json", "/nonexistent/r.json"]
    )
    assert refused.exit_code == 1 and "not a writable directory" in refused.output
    evaluated = runner.invoke(
        main,
        [
            *("forecast", "evaluate", "--input", str(data), "--folds", "2"),
            *("--processes", "2", "--json", str(report)),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads(report.read_text())
    assert result["meta"]["left_out"] == 2  # ONCE, in both folds
    assert {r["scored"] for r in result["methods"].values()} == {2}
    assert "left out for every method" in " ".join(evaluated.output.split())


def _evaluated_in_two_folds(tmp_path: Path, rows: list[str]) -> tuple[dict, str]:
    """`forecast evaluate` of these CSV rows over two folds: its JSON, and what it printed."""
    data, report = tmp_path / "d.csv", tmp_path / "r.json"
    data.write_text("\n".join(rows) + "\n")
    evaluated = CliRunner().invoke(
        main,
        [
            *("forecast", "evaluate", "--input", str(data), "--folds", "2"),
            *("--processes", "2", "--json", str(report)),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    return json.loads(report.read_text()), evaluated.output


def test_the_json_breaks_every_methods_scores_down_by_fold_and_by_series(
    tmp_path: Path,
) -> None:
    """A shop's total hid the SKUs and the weeks a method lost on: an outside tester had to
    cut the file by hand to find its dying products."""
    import datetime as dt

    start = dt.date(2026, 1, 1)
    days = [(start + dt.timedelta(days=d)).isoformat() for d in range(150)]
    rows = ["sku,date,quantity"]
    rows += [f"STEADY,{d},{3 + (i * i) % 5}" for i, d in enumerate(days)]
    rows += [f"FADING,{d},{max(0, 9 - i // 15) + i % 3}" for i, d in enumerate(days)]
    result, _ = _evaluated_in_two_folds(tmp_path, rows)
    folds, by_series = result["folds"], result["by_series"]
    assert [(f["from"], f["to"]) for f in folds] == [
        ("2026-04-05", "2026-05-02"),
        ("2026-05-03", "2026-05-30"),  # the file's last day
    ]
    assert set(by_series) == {"STEADY", "FADING"}
    for name, overall in result["methods"].items():
        parts = [f["methods"][name] for f in folds]
        assert sum(p["scored"] for p in parts) == overall["scored"] == 4, name
        # MASE is a plain mean over series × folds, so its parts add up to it.
        assert math.isclose(
            sum(p["mase"] * p["scored"] for p in parts) / overall["scored"], overall["mase"]
        ), name
        assert math.isclose(
            sum(by_series[sku][name]["mase"] * 2 for sku in by_series) / 4, overall["mase"]
        ), name
    assert by_series["FADING"]["combined"]["bias"] != by_series["STEADY"]["combined"]["bias"]


def test_rows_without_a_sku_are_left_out_and_said(tmp_path: Path) -> None:
    """They were kept as one series named "": every product an export lists without a SKU
    would have been forecast as a single one (an outside test)."""
    rows = "".join(f"A,2024-01-{d:02d},2\n,2024-01-{d:02d},5\n" for d in range(1, 29))
    path = tmp_path / "blank.csv"
    path.write_text("sku,date,quantity\n" + rows)
    notes: list[str] = []
    assert set(read_demand_csv(path, notes)) == {"A"}
    assert notes == ["28 row(s) without a SKU: left out"]


def test_synthetic_refuses_outputs_it_cannot_write_apart(tmp_path: Path) -> None:
    """A missing folder was a traceback; the same file for both silently wrote the expected
    demand over the sales (an outside test)."""
    same = str(tmp_path / "s.csv")
    for args, message in [
        (["--output", str(tmp_path / "none" / "s.csv")], "no folder"),
        (["--output", same, "--truth", same], "must not be the sales file"),
    ]:
        result = CliRunner().invoke(main, ["forecast", "synthetic", "--days", "30", *args])
        assert result.exit_code == 2 and message in result.output, result.output
        assert not (tmp_path / "s.csv").exists()


def test_skus_too_young_for_every_fold_are_scored_apart_as_launches(tmp_path: Path) -> None:
    """They were left out altogether, so no figure said how new products are forecast."""
    import datetime as dt

    start = dt.date(2026, 1, 1)
    days = [(start + dt.timedelta(days=d)).isoformat() for d in range(200)]
    rows = ["sku,date,quantity"]
    for n in range(3):
        rows += [f"OLD{n},{d},{3 + (i * (n + 1)) % 5}" for i, d in enumerate(days)]
    # Launched 60 days before the end: two weeks of sales by the second fold's origin only.
    rows += [f"NEW,{d},{(8 if i < 180 else 3) + i % 3}" for i, d in enumerate(days) if i >= 140]
    result, printed = _evaluated_in_two_folds(tmp_path, rows)
    assert {r["scored"] for r in result["methods"].values()} == {6}  # OLD0-2, both folds
    launches = result["launches"]
    # NEW in the second fold only; Prophet alone cannot fit 32 days and is not required.
    assert {r["scored"] for n, r in launches.items() if n != "prophet"} == {1}
    assert launches["combined"]["bias"] > 0  # its first weeks sold 8 a day, the next 3
    assert "Launches" in printed
