"""flow_* from trades_spec: effective the session after publication (holidays and year-end included)."""

from __future__ import annotations

import datetime as dt
import math
import statistics

import polars as pl
import pytest

from gogoku.features.flow import FLOW_FEATURES, add_flow_features, flow_table

D = dt.date
# Sessions around a holiday (2024-11-04, Monday) and the year-end closure (2024-12-31 .. 2025-01-03).
DAYS = [D(2024, 10, 30), D(2024, 10, 31), D(2024, 11, 1), D(2024, 11, 5), D(2024, 11, 6), D(2024, 12, 30), D(2025, 1, 6)]


def spec(section: str, published: list[dt.date], fb: list[float], ft: list[float], ib: list[float], it: list[float]) -> pl.DataFrame:
    n = len(published)
    return pl.DataFrame({
        "Section": [section] * n, "PublishedDate": published,
        "ForeignersBalance": fb, "ForeignersTotal": ft, "IndividualsBalance": ib, "IndividualsTotal": it,
        "InvestmentTrustsBalance": [1.0] * n, "InvestmentTrustsTotal": [10.0] * n,
        "ProprietaryBalance": [0.0] * n, "ProprietaryTotal": [20.0] * n, "TotalTotal": [1000.0 + k for k in range(n)],
    })


def rows() -> pl.LazyFrame:
    return pl.LazyFrame({
        "Code": ["13010"] * len(DAYS) + ["13020"] * len(DAYS), "Date": DAYS * 2,
        "MarketCode": ["0111"] * len(DAYS) + ["0113"] * len(DAYS),
    })


def col(out: pl.DataFrame, code: str, name: str) -> list:
    return out.filter(pl.col("Code") == code).sort("Date")[name].to_list()


def test_effective_dates_section_join_and_days_since() -> None:
    prime = spec("TSEPrime", [D(2024, 10, 30), D(2024, 11, 1), D(2024, 12, 30)],
                 [10.0, -20.0, 0.0], [100.0, 200.0, 100.0], [-5.0, 10.0, 0.0], [50.0, 100.0, 50.0])
    market = spec("TokyoNagoya", [D(2024, 10, 30)], [30.0], [100.0], [0.0], [10.0])
    out = add_flow_features(rows(), pl.concat([prime, market]).lazy()).collect()
    assert set(FLOW_FEATURES) <= set(out.columns)
    assert out.height == 2 * len(DAYS)
    # Published 10-30 (15:30): usable 10-31. Published Fri 11-01: usable Tue 11-05 (11-04 is a holiday),
    # not "the next weekday". Published 12-30: usable 2025-01-06 after the year-end closure.
    # A publication attaches for MAX_AGE_DAYS = 14 days after it became usable: on 12-30 the 11-01 one
    # (usable since 11-05) is 55 days old and nothing attaches.
    fn = col(out, "13010", "flow_foreign_net")
    assert fn[0] is None
    assert fn[1:] == pytest.approx([0.1, 0.1, -0.1, -0.1, None, 0.0])
    assert col(out, "13010", "flow_individual_net")[3] == pytest.approx(0.1)
    assert col(out, "13010", "flow_foreign_net_chg")[3] == pytest.approx(-0.2)
    # The 12-30 publication comes 59 days after the previous one (PREV_MAX_DAYS = 14): no change.
    assert col(out, "13010", "flow_foreign_net_chg")[6] is None
    assert col(out, "13010", "flow_days_since") == [None, 1.0, 2.0, 1.0, 2.0, None, 1.0]
    assert col(out, "13010", "is_flow_valid") == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    assert col(out, "13010", "flow_mkt_foreign_net")[1:3] == pytest.approx([0.3, 0.3])
    # The market-wide 10-30 publication (usable 10-31) attaches through 11-14 (14 days): on 11-06, not
    # on 12-30 or 2025-01-06.
    assert col(out, "13010", "flow_mkt_foreign_net")[5:] == [None, None]
    # Growth (0113 -> TSEGrowth) has no rows here: its section features stay empty, market ones do not.
    assert col(out, "13020", "is_flow_valid") == [0.0] * len(DAYS)
    assert col(out, "13020", "flow_mkt_foreign_net")[4] == pytest.approx(0.3)


def test_z_scores_smart_money_and_shocks() -> None:
    pubs = [D(2024, 9, 5) + dt.timedelta(weeks=k) for k in range(8)]
    fb = [float(k + 1) for k in range(8)]
    t = flow_table(spec("TSE1st", pubs, fb, [100.0] * 8, [-x for x in fb], [100.0] * 8).lazy()).collect()
    z = 3.5 / math.sqrt(sum((k - 4.5) ** 2 for k in range(1, 9)) / 7)
    assert t["foreign_z"][:7].is_null().all()  # fewer than 8 publications
    assert t["foreign_z"][7] == pytest.approx(z)
    assert t["individual_z"][7] == pytest.approx(-z)
    assert t["smart_money"][7] == pytest.approx(2 * z)
    assert (t["foreign_shock"][7], t["smart_money_shock"][7]) == (0.0, 1.0)
    # Thursday publications -> the Friday sessions.
    assert t["_eff"].to_list()[:3] == [D(2024, 9, 6), D(2024, 9, 13), D(2024, 9, 20)]


def test_z_scores_take_the_publications_of_the_last_358_days_only() -> None:
    # Eight weekly publications, then eight more starting 364 days after the first: the first ones of
    # the second run have fewer than 8 publications within Z_MAX_DAYS = 358 days, and the 8th one's
    # z-score is that of its own run (as in test_z_scores_smart_money_and_shocks).
    first = [D(2023, 9, 7) + dt.timedelta(weeks=k) for k in range(8)]
    second = [D(2023, 9, 7) + dt.timedelta(weeks=52 + k) for k in range(8)]
    fb = [float(k + 1) for k in range(8)] * 2
    t = flow_table(spec("TSE1st", first + second, fb, [100.0] * 16, [-x for x in fb], [100.0] * 16).lazy()).collect()
    z = 3.5 / math.sqrt(sum((k - 4.5) ** 2 for k in range(1, 9)) / 7)
    # 2024-09-05 is 364 days after 2023-09-07: the first run has 7 publications (09-14 .. 10-26, net
    # 2% .. 8%) within 358 days of it; with its own 1% that makes the 8 values 1 .. 8 again, itself the
    # lowest: -z.
    assert t["foreign_z"][8] == pytest.approx((1.0 - 4.5) / statistics.stdev(range(1, 9)))
    assert t["foreign_z"][8] == pytest.approx(-z)
    # From 2024-09-12 on, the first run drops out week by week (357 days back is within, 358 is not).
    assert t["foreign_z"][15] == pytest.approx(z)
    # Week-over-week changes: the second run's first publication is 315 days after the first run's last.
    assert t["foreign_net_chg"][8] is None and t["foreign_net_chg"][9] == pytest.approx(0.01)
