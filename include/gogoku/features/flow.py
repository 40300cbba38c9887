"""Investor-type flow features `flow_*` from trades_spec (light plan and above).

Timing: a week's trades_spec row is published on `PublishedDate` (the 4th business day after the
week, 15:30 JST, at or after the close), so it is usable from the next business day of the exchange
calendar (holiday-aware, never weekday arithmetic). Rows are per Section; a stock takes the rows of
its own Section on each date (listed_info MarketCode -> Section, see `SECTION_BY_MARKET_CODE`), and
the market-wide `TokyoNagoya` rows give the `flow_mkt_*` columns.

Per publication: net ratios balance / total of foreigners, individuals, investment trusts and
proprietary traders; their week-over-week changes; 52-publication time-series z-scores; the
smart-money index (foreign z minus individual z); shock flags |z| > 2; activity (total value) change.

Bounded memory (gogoku.features.memory; rows dated by PublishedDate): a publication attaches only
while it became usable at most MAX_AGE_DAYS = 14 days before the row (two weeks); week-over-week
changes compare with the previous publication only when it was published at most PREV_MAX_DAYS = 14
days earlier; the z-scores take the last 52 publications within Z_MAX_DAYS = 358 days of the
publication (52 weekly ones span 357 days), at least 8.
"""

from __future__ import annotations

import polars as pl

from gogoku.features._asof import asof_attach, prev_within, ratio, recent_ts_z, session_index, session_shift
from gogoku.features.memory import PUBLICATION_LAG_DAYS

SECTION_BY_MARKET_CODE: dict[str, str] = {
    "0101": "TSE1st", "0102": "TSE2nd", "0104": "TSEMothers", "0106": "TSEJASDAQ", "0107": "TSEJASDAQ",
    "0111": "TSEPrime", "0112": "TSEStandard", "0113": "TSEGrowth",
}
MARKET_SECTION = "TokyoNagoya"
REQUIRED = ("Section", "PublishedDate", "ForeignersBalance", "ForeignersTotal", "IndividualsBalance",
            "IndividualsTotal", "InvestmentTrustsBalance", "InvestmentTrustsTotal", "ProprietaryBalance",
            "ProprietaryTotal", "TotalTotal")
Z_WINDOW = 52
Z_MIN_SAMPLES = 8
SHOCK_Z = 2.0
MAX_AGE_DAYS = 14
PREV_MAX_DAYS = 14
Z_MAX_DAYS = 358
# The most calendar days before a row that its flow_* features read (PublishedDate): smart_money_chg
# reads the previous publication's z-scores.
MEMORY_DAYS = PUBLICATION_LAG_DAYS + MAX_AGE_DAYS + PREV_MAX_DAYS + Z_MAX_DAYS

_SECTION_FEATURES = (
    "foreign_net", "individual_net", "trust_net", "prop_net", "foreign_share", "individual_share",
    "foreign_net_chg", "individual_net_chg", "activity_chg",
    "foreign_z", "individual_z", "trust_z", "prop_z", "smart_money", "smart_money_chg",
    "foreign_shock", "individual_shock", "smart_money_shock",
)
_MARKET_FEATURES = ("foreign_net", "individual_net", "foreign_z", "individual_z", "smart_money", "activity_chg")

FLOW_FEATURES: tuple[str, ...] = (
    *[f"flow_{n}" for n in _SECTION_FEATURES],
    *[f"flow_mkt_{n}" for n in _MARKET_FEATURES],
    "flow_days_since",
    "is_flow_valid",
)


def flow_table(trades_spec: pl.LazyFrame) -> pl.LazyFrame:
    """Per (Section, EffectiveDate): the weekly features, computed over each Section's publications."""
    t = (
        trades_spec.select(REQUIRED)
        .unique(["Section", "PublishedDate"], keep="last")
        .with_columns(pl.exclude("Section", "PublishedDate").cast(pl.Float64))
        .sort("Section", "PublishedDate")
    )
    net = {
        "foreign_net": ratio(pl.col("ForeignersBalance"), pl.col("ForeignersTotal")),
        "individual_net": ratio(pl.col("IndividualsBalance"), pl.col("IndividualsTotal")),
        "trust_net": ratio(pl.col("InvestmentTrustsBalance"), pl.col("InvestmentTrustsTotal")),
        "prop_net": ratio(pl.col("ProprietaryBalance"), pl.col("ProprietaryTotal")),
    }
    t = t.with_columns(
        *[e.alias(k) for k, e in net.items()],
        ratio(pl.col("ForeignersTotal"), pl.col("TotalTotal")).alias("foreign_share"),
        ratio(pl.col("IndividualsTotal"), pl.col("TotalTotal")).alias("individual_share"),
    )
    over = "Section"

    def prev(x: pl.Expr) -> pl.Expr:
        return prev_within(x, "PublishedDate", PREV_MAX_DAYS, over)

    t = t.with_columns(
        (pl.col("foreign_net") - prev(pl.col("foreign_net"))).alias("foreign_net_chg"),
        (pl.col("individual_net") - prev(pl.col("individual_net"))).alias("individual_net_chg"),
        (pl.col("TotalTotal") / prev(pl.col("TotalTotal")) - 1.0).alias("activity_chg"),
    )
    for k in ("foreign", "individual", "trust", "prop"):
        t = recent_ts_z(t, pl.col(f"{k}_net"), f"{k}_z", date="PublishedDate", by=over, window=Z_WINDOW,
                        min_samples=Z_MIN_SAMPLES, max_days=Z_MAX_DAYS)
    t = t.with_columns((pl.col("foreign_z") - pl.col("individual_z")).alias("smart_money"))
    t = t.with_columns(
        (pl.col("smart_money") - prev(pl.col("smart_money"))).alias("smart_money_chg"),
        *[(pl.col(c).abs() > SHOCK_Z).cast(pl.Float64).alias(f"{k}_shock")
          for k, c in (("foreign", "foreign_z"), ("individual", "individual_z"), ("smart_money", "smart_money"))],
    )
    # Published at 15:30 (at or after the close): usable from the next session.
    return session_shift(t, "PublishedDate", 1, "_eff")


def add_flow_features(lf: pl.LazyFrame, trades_spec: pl.LazyFrame) -> pl.LazyFrame:
    """Add `FLOW_FEATURES` to rows keyed by (Code, Date) that carry `MarketCode`."""
    table = flow_table(trades_spec).collect().lazy()
    sec = table.filter(pl.col("Section") != MARKET_SECTION).select(
        "Section", "_eff", pl.col("PublishedDate").alias("_pub"),
        *[pl.col(n).alias(f"flow_{n}") for n in _SECTION_FEATURES],
    )
    mkt = table.filter(pl.col("Section") == MARKET_SECTION).select(
        pl.col("_eff").alias("_eff_m"), *[pl.col(n).alias(f"flow_mkt_{n}") for n in _MARKET_FEATURES]
    )
    lf = lf.with_columns(
        pl.col("MarketCode").cast(pl.Utf8).replace_strict(SECTION_BY_MARKET_CODE, default=None).alias("_flow_sec")
    )
    lf = asof_attach(lf, sec.rename({"Section": "_flow_sec"}), "_eff", "_flow_sec",
                     ["_pub", *[f"flow_{n}" for n in _SECTION_FEATURES]], max_age_days=MAX_AGE_DAYS)
    lf = asof_attach(lf, mkt, "_eff_m", None, [f"flow_mkt_{n}" for n in _MARKET_FEATURES], max_age_days=MAX_AGE_DAYS)
    lf = session_index(session_index(lf, "Date", "_di"), "_pub", "_pi")
    return lf.with_columns(
        (pl.col("_di") - pl.col("_pi")).cast(pl.Float64).alias("flow_days_since"),
        pl.col("_pub").is_not_null().cast(pl.Float64).alias("is_flow_valid"),
    ).drop("_flow_sec", "_eff", "_eff_m", "_pub", "_di", "_pi")
