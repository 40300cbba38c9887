"""The simulator's market-data tables beyond prices and statements, typed with v1 names (see
gogoku.jquants.endpoints); each function reads a market through `base.MarketState`.

Publication schedules (JST; "usable" is the first session whose feature row may use a record under the
as-of rule, "next" the first session after the publication):

| table | record | published | usable |
|---|---|---|---|
| weekly_margin_interest | Date = the week's last session (Friday) | 2nd business day after Date, after close | next |
| daily_margin_interest | ApplicationDate = a day of an alert spell | PublishedDate = next session, after close | next |
| trades_spec | StartDate..EndDate = one week | PublishedDate = 4th business day after EndDate (Thu), 15:30 | next |
| short_selling | Date, per Sector33Code | after the close of Date | next |
| short_selling_positions | CalculatedDate | DisclosedDate = 2nd business day after, after the close | next |
| announcement | Date = the disclosure date of a statement | 19:00 of the previous business day | Date |
| indices, prices_am, breakdown | Date | after the close (prices_am: 11:30) | next |
| dividend | AnnouncementDate / AnnouncementTime = the statement's disclosure | as stated | as-of rule |

Weekly rows are served only once published (publication <= the market's `end`), so a shorter market
holds a prefix of a longer one's rows. Every table draws from its own seed child, independent of the
order in which tables are asked for.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from gogoku.jquants.endpoints import ENDPOINTS, PUBLISH_REASONS
from gogoku.sim.base import (
    MARKET_CODES,
    MARKET_NAMES,
    REORG_DATE,
    SECTIONS_NEW,
    SECTIONS_OLD,
    SECTORS33,
    MarketState,
    Weeks,
    all_sessions,
    date_series,
    month_end,
    on_grid,
    usable_week,
)

_TABLES = ("weekly_margin", "daily_margin", "trades_spec", "short_selling", "positions", "indices", "prices_am",
           "breakdown", "dividend")
ALERT_LEVEL = 1.4  # margin imbalance above which a stock's balances are published daily
MARGIN_VALUES_FROM = np.datetime64("2026-09-25")  # first application date with PubDate and yen balances


def _rng(m: MarketState, table: str) -> np.random.Generator:
    parent = m.seeds["tables"]
    seq = np.random.SeedSequence(parent.entropy, spawn_key=(*parent.spawn_key, _TABLES.index(table)))
    return np.random.default_rng(seq)


def _typed(source: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Columns in the endpoint's order and dtypes, sorted by its sort keys."""
    schema = ENDPOINTS[source].schema
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    exprs = [(pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c) for c, t in schema.items()]
    return frame.select(exprs).sort(list(ENDPOINTS[source].sort_by), maintain_order=True)


def _round100(x: np.ndarray) -> np.ndarray:
    return np.round(x / 100) * 100


def _margin_split(long: np.ndarray, short: np.ndarray, loanable: np.ndarray) -> dict[str, np.ndarray]:
    """Negotiable / standardized parts: standardized shorts exist only for loanable (貸借) issues."""
    long_std = _round100(long * np.where(loanable, 0.7, 0.6))
    short_std = np.where(loanable, _round100(short * 0.85), 0.0)
    return {"long_std": long_std, "long_neg": long - long_std, "short_std": short_std, "short_neg": short - short_std}


def weekly_margin_interest(m: MarketState) -> pl.DataFrame:
    """Weekly margin balances per stock (the planted imbalance tilts long vs short), published weeks only."""
    u, life, wk = m.universe, m.life, m.weeks
    x, _ = m.weekly
    noise = _rng(m, "weekly_margin").standard_normal((len(wk.record), m.n_stocks, 2))
    shown = (wk.margin_published <= np.datetime64(m.end)) & (wk.record >= np.datetime64(m.start))
    w_idx = np.flatnonzero(shown)
    t_idx = np.searchsorted(m.days, wk.record[w_idx])
    rows = life.listed_at(wk.record[w_idx]) & (u.margin != "3")[None, :]
    ww, ii = np.nonzero(rows)
    w, t = w_idx[ww], t_idx[ww]
    shares = m.shares[t, ii]
    long = _round100(shares * life.long_frac[ii] * np.exp(0.35 * x[w, ii] + 0.05 * noise[w, ii, 0]))
    short = _round100(shares * life.short_frac[ii] * np.exp(-0.35 * x[w, ii] + 0.08 * noise[w, ii, 1]))
    split = _margin_split(long, short, u.margin[ii] == "2")
    # Since the 2026-09-28 revision the API also sends the publication date and the balances in yen (at
    # the record date's close), empty for applications before 2026-09-25.
    revised = wk.record[w] >= MARGIN_VALUES_FROM
    close = np.where(revised, m.paths.close[t, ii], np.nan)
    values = {f"{side}MarginTradeValue": np.round(vol * close) for side, vol in (
        ("Short", short), ("Long", long), ("ShortNegotiable", split["short_neg"]),
        ("LongNegotiable", split["long_neg"]), ("ShortStandardized", split["short_std"]),
        ("LongStandardized", split["long_std"]))}
    return _typed("weekly_margin_interest", pl.DataFrame({
        "Date": date_series(wk.record[w], "Date"), "Code": u.codes[ii],
        "ShortMarginTradeVolume": short, "LongMarginTradeVolume": long,
        "ShortNegotiableMarginTradeVolume": split["short_neg"], "LongNegotiableMarginTradeVolume": split["long_neg"],
        "ShortStandardizedMarginTradeVolume": split["short_std"],
        "LongStandardizedMarginTradeVolume": split["long_std"],
        "IssueType": u.margin[ii],
        "PublishedDate": date_series(np.where(revised, wk.margin_published[w], np.datetime64("NaT")), "PublishedDate"),
        **values,
    }, nan_to_null=True))


def daily_margin_interest(m: MarketState) -> pl.DataFrame:
    """Daily publication for stocks whose latest published weekly imbalance is above ALERT_LEVEL.

    DailyChange* is null ("-" on the real wire) on the first day of a spell; *ListedShareRatio is null
    ("*") when it rounds below 0.01%.
    """
    u, life, days = m.universe, m.life, m.days
    x, _ = m.weekly
    t_len = len(days)
    wk_usable = usable_week(m.weeks.margin_published, days)
    # The week holding each session: its balances move with that week's imbalance.
    wk_now = np.clip(np.searchsorted(m.weeks.record, days), 0, len(m.weeks.record) - 1)
    level = np.where(wk_usable[:, None] >= 0, x[np.maximum(wk_usable, 0)], -np.inf)
    alert = (level > ALERT_LEVEL) & m.listed_mask & (u.margin != "3")[None, :]
    alert[-1] = False  # published the next session, after `end`
    noise = _rng(m, "daily_margin").standard_normal((t_len, m.n_stocks, 3))
    tt, ii = np.nonzero(alert)
    shares = m.shares[tt, ii]
    xn = x[wk_now[tt], ii]
    long = _round100(shares * life.long_frac[ii] * np.exp(0.35 * xn + 0.03 * noise[tt, ii, 0]))
    short = _round100(shares * life.short_frac[ii] * np.exp(-0.35 * xn + 0.05 * noise[tt, ii, 1]))
    split = _margin_split(long, short, u.margin[ii] == "2")
    lv = level[tt, ii]
    flag = lambda b: np.where(b, "1", "0")  # noqa: E731
    reasons = {
        "Restricted": flag(lv > 2.2), "DailyPublication": flag(np.ones_like(lv, bool)),
        "Monitoring": flag(noise[tt, ii, 2] > 1.3), "RestrictedByJSF": flag(lv > 2.5),
        "PrecautionByJSF": flag(lv > 2.0), "UnclearOrSecOnAlert": flag(noise[tt, ii, 2] < -2.05),
    }
    frame = pl.DataFrame({
        "PublishedDate": date_series(days[tt + 1], "PublishedDate"), "Code": u.codes[ii],
        "ApplicationDate": date_series(days[tt], "ApplicationDate"),
        **{f"PublishReason_{r}": reasons[r] for r in PUBLISH_REASONS},
        "ShortMarginOutstanding": short, "LongMarginOutstanding": long,
        "ShortNegotiableMarginOutstanding": split["short_neg"],
        "ShortStandardizedMarginOutstanding": split["short_std"],
        "LongNegotiableMarginOutstanding": split["long_neg"], "LongStandardizedMarginOutstanding": split["long_std"],
        "_shares": shares, "_idx": tt,
        "TSEMarginBorrowingAndLendingRegulationClassification": np.where(lv > 2.2, "002",
                                                                         np.where(lv > 2.0, "001", "")),
    })
    frame = frame.sort("Code", "ApplicationDate")
    cont = (pl.col("_idx") - pl.col("_idx").shift(1).over("Code")) == 1  # the spell went on from yesterday
    change = {
        "DailyChangeShortMarginOutstanding": "ShortMarginOutstanding",
        "DailyChangeLongMarginOutstanding": "LongMarginOutstanding",
        "DailyChangeShortNegotiableMarginOutstanding": "ShortNegotiableMarginOutstanding",
        "DailyChangeShortStandardizedMarginOutstanding": "ShortStandardizedMarginOutstanding",
        "DailyChangeLongNegotiableMarginOutstanding": "LongNegotiableMarginOutstanding",
        "DailyChangeLongStandardizedMarginOutstanding": "LongStandardizedMarginOutstanding",
    }
    ratio = lambda c: (100 * pl.col(c) / pl.col("_shares")).round(2)  # noqa: E731
    frame = frame.with_columns(
        *[pl.when(cont).then(pl.col(v) - pl.col(v).shift(1).over("Code")).alias(k) for k, v in change.items()],
        pl.when(ratio("ShortMarginOutstanding") >= 0.01).then(ratio("ShortMarginOutstanding"))
        .alias("ShortMarginOutstandingListedShareRatio"),
        pl.when(ratio("LongMarginOutstanding") >= 0.01).then(ratio("LongMarginOutstanding"))
        .alias("LongMarginOutstandingListedShareRatio"),
        pl.when(pl.col("ShortMarginOutstanding") > 0)
        .then((100 * pl.col("LongMarginOutstanding") / pl.col("ShortMarginOutstanding")).round(2))
        .alias("ShortLongRatio"),
    )
    return _typed("daily_margin_interest", frame)


# (v1 prefix, share of brokerage sales) for the ten investor types; Proprietary is a share of the total.
_INVESTOR_SHARES = (
    ("Individuals", 0.22), ("Foreigners", 0.60), ("SecuritiesCos", 0.01), ("InvestmentTrusts", 0.03),
    ("BusinessCos", 0.02), ("OtherCos", 0.005), ("InsuranceCos", 0.003), ("CityBKsRegionalBKsEtc", 0.003),
    ("TrustBanks", 0.04), ("OtherFinancialInstitutions", 0.002),
)
_SLOT_SALES = np.array([1.5e10, 4e8, 8e8, 3e8])  # weekly brokerage sales per section slot, thousand yen


def trades_spec(m: MarketState) -> pl.DataFrame:
    """Weekly investor-type flows per section; the foreigners' balance is the planted flow latent."""
    wk = m.weeks
    _, f = m.weekly
    n_w, n_c = len(wk.record), len(_INVESTOR_SHARES)
    z = _rng(m, "trades_spec").standard_normal((n_w, 4, n_c + 2, 2))
    shown = wk.flow_published <= np.datetime64(m.end)
    old_era = wk.record < np.datetime64(REORG_DATE)
    shares = np.array([s for _, s in _INVESTOR_SHARES])
    size = _SLOT_SALES[None, :] * np.exp(0.15 * z[:, :, n_c, 0])  # (W, slot)
    sales = size[:, :, None] * shares[None, None, :] * np.exp(0.05 * z[:, :, :n_c, 0])
    tilt = 0.03 * z[:, :, :n_c, 1]
    tilt[:, :, 1] = 0.05 * f  # foreigners: the planted weekly flow
    tilt[:, :, 0] = -0.04 * f + 0.02 * z[:, :, 0, 1]  # individuals lean against them
    purchases = sales * (1 + tilt)
    prop_sales = 0.25 * size * np.exp(0.05 * z[:, :, n_c + 1, 0])
    prop_buys = prop_sales * (1 + 0.02 * z[:, :, n_c + 1, 1])
    rows = []
    for slot_names, era in ((SECTIONS_OLD, old_era), (SECTIONS_NEW, ~old_era)):
        slots = np.arange(len(slot_names))
        keep = np.flatnonzero(shown & era)
        if not len(keep):
            continue
        rows.append(_trades_rows(wk, keep, slots, list(slot_names), sales, purchases, prop_sales, prop_buys))
    # TokyoNagoya: both markets' total, a little above the sections' sum.
    keep = np.flatnonzero(shown)

    def both_markets(a: np.ndarray) -> np.ndarray:
        """(W, 1, ...) sums over the sections of each week's era (the JASDAQ slot ends with the reorg)."""
        era = old_era.reshape(-1, *([1] * (a.ndim - 1)))
        return np.where(era, a.sum(1, keepdims=True), a[:, :3].sum(1, keepdims=True)) * 1.01

    if len(keep):
        rows.append(_trades_rows(wk, keep, np.array([0]), ["TokyoNagoya"], both_markets(sales),
                                 both_markets(purchases), both_markets(prop_sales), both_markets(prop_buys)))
    frame = pl.concat(rows) if rows else pl.DataFrame()
    return _typed("trades_spec", frame)


def _trades_rows(wk: Weeks, keep: np.ndarray, slots: np.ndarray, names: list[str], sales: np.ndarray,
                 purchases: np.ndarray, prop_sales: np.ndarray, prop_buys: np.ndarray) -> pl.DataFrame:
    ww = np.repeat(keep, len(slots))
    ss = np.tile(slots, len(keep))
    cols: dict[str, np.ndarray] = {}

    def put(prefix: str, sell: np.ndarray, buy: np.ndarray) -> None:
        sell, buy = np.round(sell), np.round(buy)
        cols[f"{prefix}Sales"], cols[f"{prefix}Purchases"] = sell, buy
        cols[f"{prefix}Total"], cols[f"{prefix}Balance"] = sell + buy, buy - sell

    for c, (prefix, _) in enumerate(_INVESTOR_SHARES):
        put(prefix, sales[ww, ss, c], purchases[ww, ss, c])
    brk_s = sum(cols[f"{p}Sales"] for p, _ in _INVESTOR_SHARES)
    brk_b = sum(cols[f"{p}Purchases"] for p, _ in _INVESTOR_SHARES)
    put("Brokerage", brk_s, brk_b)
    put("Proprietary", prop_sales[ww, ss], prop_buys[ww, ss])
    put("Total", cols["ProprietarySales"] + brk_s, cols["ProprietaryPurchases"] + brk_b)
    return pl.DataFrame({
        "Section": np.array(names)[ss], "PublishedDate": date_series(wk.flow_published[ww], "PublishedDate"),
        "StartDate": date_series(wk.first[ww], "StartDate"), "EndDate": date_series(wk.record[ww], "EndDate"), **cols,
    })


def short_selling(m: MarketState) -> pl.DataFrame:
    """Per session and 33-sector: turnover split into long sells and short sells with/without price
    restriction (short share about 40%)."""
    u, p = m.universe, m.paths
    t_len, n_sec = len(m.days), len(SECTORS33)
    onehot = np.zeros((m.n_stocks, n_sec))
    onehot[np.arange(m.n_stocks), u.sector] = 1.0
    turnover = (p.turnover * m.listed_mask) @ onehot  # (T, S)
    z = _rng(m, "short_selling").standard_normal((t_len, n_sec, 2))
    share = np.clip(0.40 + 0.04 * z[..., 0], 0.2, 0.6)
    restricted = share * np.clip(0.9 + 0.03 * z[..., 1], 0.8, 0.97)
    tt, ss = np.nonzero(turnover > 0)
    tv = turnover[tt, ss]
    return _typed("short_selling", pl.DataFrame({
        "Date": date_series(m.days[tt], "Date"), "Sector33Code": np.array([s[0] for s in SECTORS33])[ss],
        "SellingExcludingShortSellingTurnoverValue": np.round(tv * (1 - share[tt, ss])),
        "ShortSellingWithRestrictionsTurnoverValue": np.round(tv * restricted[tt, ss]),
        "ShortSellingWithoutRestrictionsTurnoverValue": np.round(tv * (share - restricted)[tt, ss]),
    }))


_SELLERS = (
    ("Morgan Trust Capital", "New York, USA"), ("Harbor Bridge Partners LLP", "London, UK"),
    ("Pacific Arc Asset Management", "Singapore"), ("Nordlicht Kapital AG", "Frankfurt, Germany"),
    ("Kestrel Point Investors", "Greenwich, USA"), ("東都アセット株式会社", "東京都千代田区"),
)


def short_selling_positions(m: MarketState) -> pl.DataFrame:
    """Large short positions (>= 0.5% of shares): about two reports a year per loanable stock, disclosed
    two business days after their calculation date."""
    u, days = m.universe, m.days
    t_len = len(days)
    draws = _rng(m, "positions").random((t_len, m.n_stocks, 3))
    event = (draws[..., 0] < np.where(u.margin == "2", 0.008, 0.001)[None, :]) & m.listed_mask
    event[max(t_len - 2, 0):] = False  # disclosed after `end`
    tt, ii = np.nonzero(event)
    ratio = np.round(0.005 + 0.006 * -np.log1p(-draws[tt, ii, 1] * 0.999), 4)
    seller = (draws[tt, ii, 2] * len(_SELLERS)).astype(int)
    shares = np.round(ratio * m.shares[tt, ii], -2)
    frame = pl.DataFrame({
        "DisclosedDate": date_series(days[tt + 2], "DisclosedDate"),
        "CalculatedDate": date_series(days[tt], "CalculatedDate"),
        "Code": u.codes[ii], "ShortSellerName": np.array([s[0] for s in _SELLERS])[seller],
        "ShortSellerAddress": np.array([s[1] for s in _SELLERS])[seller],
        "DiscretionaryInvestmentContractorName": np.full(len(tt), ""),
        "DiscretionaryInvestmentContractorAddress": np.full(len(tt), ""),
        "InvestmentFundName": np.full(len(tt), ""),
        "ShortPositionsToSharesOutstandingRatio": ratio, "ShortPositionsInSharesNumber": shares,
        "ShortPositionsInTradingUnitsNumber": np.round(shares / 100), "Notes": np.full(len(tt), ""),
    }).sort("Code", "ShortSellerName", "CalculatedDate")
    frame = frame.with_columns(
        pl.col("CalculatedDate").shift(1).over("Code", "ShortSellerName").alias("CalculationInPreviousReportingDate"),
        pl.col("ShortPositionsToSharesOutstandingRatio").shift(1).over("Code", "ShortSellerName")
        .alias("ShortPositionsInPreviousReportingRatio"),
    )
    return _typed("short_selling_positions", frame)


_QUARTER_NAMES = {1: "第１四半期", 2: "第２四半期", 3: "第３四半期", 4: "通期"}


def announcement(m: MarketState) -> pl.DataFrame:
    """The earnings calendar: one row per scheduled statement, Date = its disclosure date."""
    u, sch, life = m.universe, m.schedule, m.life
    keep = sch.complete & (sch.disclosed >= np.datetime64(m.start)) & (sch.disclosed <= np.datetime64(m.end))
    keep &= (sch.disclosed >= life.ipo[None, :]) & (sch.disclosed < life.delist[None, :])
    jj, ii = np.nonzero(keep)
    disclosed = sch.disclosed[jj, ii]
    market = np.array(MARKET_CODES)[life.market_at(disclosed)[np.arange(len(ii)), ii]]
    fy_month = u.fy_end_month[ii]
    fy_end_day = month_end(np.full(len(ii), 2001 * 12) + fy_month - 1).astype(object)
    return _typed("announcement", pl.DataFrame({
        "Date": date_series(disclosed, "Date"), "Code": u.codes[ii], "CompanyName": u.name_jp[ii],
        "FiscalYear": [f"{mo}月{d.day}日" for mo, d in zip(fy_month, fy_end_day, strict=True)],
        "SectorName": np.array([s[1] for s in SECTORS33])[u.sector[ii]],
        "FiscalQuarter": [_QUARTER_NAMES[q] for q in sch.qtype[jj, ii]],
        "Section": [MARKET_NAMES[c] for c in market],
    }))


def _index_levels(w: np.ndarray, rel: dict[str, np.ndarray], level0: float) -> dict[str, np.ndarray]:
    """OHLC of an index with weights w (T, N) over the constituents' relative moves (flat if empty)."""
    total = w.sum(1)
    safe = np.where(total > 0, total, 1.0)
    agg = {k: np.where(total > 0, (w * v).sum(1) / safe, 1.0) for k, v in rel.items()}
    prev = level0 * np.concatenate([[1.0], np.cumprod(agg["close"])[:-1]])
    close, open_ = prev * agg["close"], prev * agg["open"]
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = top + 0.35 * np.maximum(prev * agg["high"] - top, 0)
    low = bottom - 0.35 * np.maximum(bottom - prev * agg["low"], 0)
    return {"Open": open_, "High": high, "Low": low, "Close": close}


def indices(m: MarketState) -> pl.DataFrame:
    """TOPIX (0000), its size indices (0028 Core30, 0029 Large70, 002B Mid400, 002D Small), the 33
    sector indices (0040-0060) and, from 2022-04-04, the Prime/Standard/Growth market indices (0500-0502)."""
    u, p, days = m.universe, m.paths, m.days
    base = np.vstack([u.price0, p.close[:-1]]) * p.factor
    rel = {k: getattr(p, k) / base for k in ("open", "high", "low", "close")}
    cap = np.vstack([u.price0 * u.shares0, (p.close * m.shares)[:-1]]) * m.index_members
    listed = m.listed_mask
    cap_all = np.vstack([u.price0 * u.shares0, (p.close * m.shares)[:-1]]) * listed
    indexes: list[tuple[str, np.ndarray, np.ndarray]] = []  # (code, weights, rows shown)
    every = np.ones(len(days), bool)
    for code, labels in (("0028", ("TOPIX Core30",)), ("0029", ("TOPIX Large70",)), ("002B", ("TOPIX Mid400",)),
                         ("002D", ("TOPIX Small 1", "TOPIX Small 2"))):
        indexes.append((code, cap * np.isin(u.scale, labels)[None, :], every))
    for s in range(len(SECTORS33)):
        indexes.append((f"{0x40 + s:04X}", cap * (u.sector == s)[None, :], every))
    reorg = days >= np.datetime64(REORG_DATE)
    for code, market in (("0500", 5), ("0501", 6), ("0502", 7)):
        indexes.append((code, cap_all * (m.market_idx == market), reorg))
    frames = [m.topix().select("Date", pl.lit("0000").alias("Code"), "Open", "High", "Low", "Close")]
    for code, w, shown in indexes:
        lv = _index_levels(w, rel, 1000.0)
        frames.append(pl.DataFrame({
            "Date": date_series(days, "Date"), "Code": np.full(len(days), code),
            **{k: np.round(v, 2) for k, v in lv.items()},
        }).filter(pl.Series(shown)))
    return _typed("indices", pl.concat(frames))


def morning_bars(m: MarketState) -> dict[str, np.ndarray]:
    """Morning-session bars inside each day's bar, one value per listed (session, code) in session-major
    order (`np.nonzero(m.listed_mask)`): the open is the day's open, about half the volume. Drawn afresh
    from the table's own stream, so prices_am and the daily bars' morning fields agree."""
    p, listed = m.paths, m.listed_mask
    z = _rng(m, "prices_am").random((len(m.days), m.n_stocks, 4))
    tt, ii = np.nonzero(listed)
    # Boolean selection keeps np.nonzero's session-major order, faster than gathering by (tt, ii).
    o, h, lo, c = p.open[listed], p.high[listed], p.low[listed], p.close[listed]
    zz = z[listed]
    mc = np.clip(on_grid(o + zz[:, 0] * (c - o) + (zz[:, 1] - 0.5) * (h - lo) * 0.5), lo, h)
    top, bottom = np.maximum(o, mc), np.minimum(o, mc)
    mh = np.clip(on_grid(top + zz[:, 2] * (h - top), "ceil"), top, h)
    ml = np.clip(on_grid(bottom - zz[:, 3] * (bottom - lo), "floor"), lo, bottom)
    mv = np.maximum(_round100(p.volume[listed] * (0.4 + 0.2 * zz[:, 1])), 100)
    return {"t": tt, "i": ii, "open": o, "high": mh, "low": ml, "close": mc, "volume": mv,
            "turnover": np.round(mv * (o + mh + ml + mc) / 4)}


def prices_am(m: MarketState) -> pl.DataFrame:
    """Morning-session bars (`morning_bars`)."""
    am = morning_bars(m)
    return _typed("prices_am", pl.DataFrame({
        "Date": date_series(m.days[am["t"]], "Date"), "Code": m.universe.codes[am["i"]], "MorningOpen": am["open"],
        "MorningHigh": am["high"], "MorningLow": am["low"], "MorningClose": am["close"],
        "MorningVolume": am["volume"], "MorningTurnoverValue": am["turnover"],
    }))


def session_bars(m: MarketState) -> dict[str, np.ndarray]:
    """The daily bars' Morning* and Afternoon* fields (v1 names), per listed (session, code) in session-major
    order. No draws: the morning is `morning_bars`; the afternoon opens a quarter of the way from the
    morning close to the day's close, closes at it, and reaches the day's high (low) unless the morning
    did, when its bar spans only its open and close; the volume and turnover are the day's less the
    morning's. Adjusted fields use the day's back-adjustment; the limit flags (bool arrays, "1"/"0" on
    the wire) say which session touched the limit."""
    p, am, listed = m.paths, morning_bars(m), m.listed_mask
    h, lo, c = p.high[listed], p.low[listed], p.close[listed]
    vol, turnover = p.volume[listed], p.turnover[listed]
    cum = np.cumprod(p.factor, axis=0)
    to_end = (cum[-1] / cum)[listed]
    ao = np.clip(on_grid(am["close"] + 0.25 * (c - am["close"])), lo, h)
    ah = np.where(am["high"] < h, h, np.maximum(ao, c))
    al = np.where(am["low"] > lo, lo, np.minimum(ao, c))
    av = vol - am["volume"]
    upper, lower = p.upper[listed], p.lower[listed]
    sessions = {
        "Morning": (am["open"], am["high"], am["low"], am["close"], am["volume"], am["turnover"]),
        "Afternoon": (ao, ah, al, c, av, np.where(av > 0, np.maximum(turnover - am["turnover"], 0), 0.0)),
    }
    out: dict[str, np.ndarray] = {}
    for name, (o_, h_, l_, c_, v_, va_) in sessions.items():
        out.update({
            f"{name}Open": o_, f"{name}High": h_, f"{name}Low": l_, f"{name}Close": c_,
            f"{name}UpperLimit": upper & (h_ >= h), f"{name}LowerLimit": lower & (l_ <= lo),
            f"{name}Volume": v_, f"{name}TurnoverValue": va_,
            f"{name}AdjustmentOpen": o_ * to_end, f"{name}AdjustmentHigh": h_ * to_end,
            f"{name}AdjustmentLow": l_ * to_end, f"{name}AdjustmentClose": c_ * to_end,
            f"{name}AdjustmentVolume": v_ / to_end,
        })
    return out


_SELL_SIDE = (("LongSell", 0.55), ("ShortSellWithoutMargin", 0.25), ("MarginSellNew", 0.08), ("MarginSellClose", 0.12))
_BUY_SIDE = (("LongBuy", 0.6), ("MarginBuyNew", 0.25), ("MarginBuyClose", 0.15))


def breakdown(m: MarketState) -> pl.DataFrame:
    """Each day's volume split by trade type on both sides; each side sums to the day's volume, values
    at the day's average price."""
    p, listed = m.paths, m.listed_mask
    z = _rng(m, "breakdown").standard_normal((len(m.days), m.n_stocks, len(_SELL_SIDE) + len(_BUY_SIDE)))
    tt, ii = np.nonzero(listed)
    volume, vwap = p.volume[tt, ii], p.turnover[tt, ii] / p.volume[tt, ii]
    zz = z[tt, ii]
    cols: dict[str, np.ndarray] = {}
    offset = 0
    for side in (_SELL_SIDE, _BUY_SIDE):
        weights = np.array([s for _, s in side])[None, :] * np.exp(0.2 * zz[:, offset:offset + len(side)])
        parts = _round100(volume[:, None] * weights / weights.sum(1, keepdims=True))
        parts[:, 0] = volume - parts[:, 1:].sum(1)  # the main category takes the rounding
        for k, (name, _) in enumerate(side):
            cols[f"{name}Volume"] = parts[:, k]
            cols[f"{name}Value"] = np.round(parts[:, k] * vwap)
        offset += len(side)
    return _typed("breakdown", pl.DataFrame({"Date": date_series(m.days[tt], "Date"), "Code": m.universe.codes[ii],
                                             **cols}))


def dividend(m: MarketState) -> pl.DataFrame:
    """Interim (2Q) and final (FY) dividends announced with the statements: a result row with the record,
    ex and payable dates, and at 2Q a forecast of the final dividend ("-" undecided for about 15%)."""
    st = m.statements().filter(pl.col("TypeOfCurrentPeriod").is_in(["2Q", "FY"]),
                               pl.col("TypeOfDocument").str.contains("FinancialStatements"))
    draws = _rng(m, "dividend").random(max(st.height, 1))[: st.height]
    sessions = all_sessions()
    record = st["CurrentPeriodEndDate"].to_numpy().astype("datetime64[D]")
    last_on_or_before = np.searchsorted(sessions, record, side="right") - 1
    ex = sessions[np.maximum(last_on_or_before - 1, 0)]
    payable = sessions[np.minimum(np.searchsorted(sessions, record + np.timedelta64(85, "D")), len(sessions) - 1)]
    is_fy = (st["TypeOfCurrentPeriod"] == "FY").to_numpy()
    eps = st["EarningsPerShare"].fill_null(0).to_numpy()
    dps = np.maximum(np.round(0.3 * eps / 2 * 2) / 2, 0)  # about 30% payout of the half year, in 0.5 yen
    disclosed = st["DisclosedDate"].to_numpy().astype("datetime64[D]")
    base = pl.DataFrame({
        "AnnouncementDate": date_series(disclosed, "AnnouncementDate"),
        "AnnouncementTime": st["DisclosedTime"].str.slice(0, 5),
        "Code": st["LocalCode"], "BoardMeetingDate": date_series(disclosed, "BoardMeetingDate"),
        "StatusCode": np.full(st.height, "1"), "CommemorativeSpecialCode": np.full(st.height, "0"),
    })
    term = np.datetime_as_string(record, unit="M")
    results = base.with_columns(
        pl.Series("InterimFinalCode", np.where(is_fy, "2", "1")), pl.lit("1").alias("ForecastResultCode"),
        pl.Series("InterimFinalTerm", term), pl.Series("GrossDividendRate", dps),
        date_series(record, "RecordDate"), date_series(ex, "ExDate"), date_series(record, "ActualRecordDate"),
        date_series(payable, "PayableDate"), pl.lit(0).alias("_n"),
    )
    half = ~is_fy
    fy_end = st["CurrentFiscalYearEndDate"].to_numpy().astype("datetime64[D]")
    forecasts = base.filter(pl.Series(half)).with_columns(
        pl.lit("2").alias("InterimFinalCode"), pl.lit("2").alias("ForecastResultCode"),
        pl.Series("InterimFinalTerm", np.datetime_as_string(fy_end[half], unit="M")),
        pl.Series("GrossDividendRate", np.where(draws[half] < 0.15, np.nan, dps[half])),
        date_series(fy_end[half], "RecordDate"), pl.lit(1).alias("_n"),
    ).fill_nan(None)
    frame = pl.concat([results, forecasts], how="diagonal_relaxed").with_columns(
        (pl.col("AnnouncementDate").dt.strftime("%Y%m%d") + pl.col("Code") + pl.col("_n").cast(pl.Utf8))
        .alias("ReferenceNumber"),
    ).with_columns(pl.col("ReferenceNumber").alias("CAReferenceNumber"))
    return _typed("dividend", frame)

