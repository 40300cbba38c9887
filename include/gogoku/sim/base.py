"""The simulator's leaf module: reference data, model parameters, array helpers and the shared state types.

Everything the generator modules (`signal`, `tables`, `statements`, `derivatives`, `oracle`) need from the
market lives here, so that they never import `gogoku.sim.market`:

- reference data: the 33 sectors, the market codes before and after the 2022-04-04 TSE reorganization,
  the trades_spec sections;
- model parameters: the planted signal's families and weights, the volatility model, the published-data
  families' decay and publication lags (described in `gogoku.sim.market` and `gogoku.sim.signal`);
- array helpers: the JPX tick grid and daily price limits, dates as numpy / polars values, month ends,
  the offline sessions;
- the frozen state of a market (`Universe`, `Paths`, `Lifecycle`, `Weeks`, `StatementSchedule`) and
  `MarketState`, the protocol listing what a generator reads from a market (`SimMarket` satisfies it).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

from gogoku import calendar as cal

# ------------------------------------------------------------------ reference data
# (Sector33Code, name, Sector17Code, weight ~ number of TSE issuers, JP word, EN word for company names)
SECTORS33: tuple[tuple[str, str, str, int, str, str], ...] = (
    ("0050", "水産・農林業", "1", 12, "水産", "Fisheries"),
    ("1050", "鉱業", "2", 6, "資源開発", "Resources"),
    ("2050", "建設業", "3", 160, "建設", "Construction"),
    ("3050", "食料品", "1", 125, "食品", "Foods"),
    ("3100", "繊維製品", "4", 50, "紡績", "Textile"),
    ("3150", "パルプ・紙", "4", 25, "製紙", "Paper"),
    ("3200", "化学", "4", 210, "化学", "Chemical"),
    ("3250", "医薬品", "5", 70, "製薬", "Pharmaceutical"),
    ("3300", "石油･石炭製品", "2", 10, "石油", "Oil"),
    ("3350", "ゴム製品", "6", 20, "ゴム", "Rubber"),
    ("3400", "ガラス･土石製品", "3", 55, "窯業", "Ceramics"),
    ("3450", "鉄鋼", "7", 45, "製鋼", "Steel"),
    ("3500", "非鉄金属", "7", 35, "金属鉱業", "Metal Mining"),
    ("3550", "金属製品", "3", 90, "金属工業", "Metal Industries"),
    ("3600", "機械", "8", 230, "機械", "Machinery"),
    ("3650", "電気機器", "9", 240, "電機", "Electric"),
    ("3700", "輸送用機器", "6", 90, "自動車", "Motor"),
    ("3750", "精密機器", "9", 55, "光学", "Optical"),
    ("3800", "その他製品", "10", 110, "工芸", "Products"),
    ("4050", "電気･ガス業", "11", 25, "電力", "Electric Power"),
    ("5050", "陸運業", "12", 65, "鉄道", "Railway"),
    ("5100", "海運業", "12", 12, "汽船", "Kisen"),
    ("5150", "空運業", "12", 5, "航空", "Airlines"),
    ("5200", "倉庫･運輸関連業", "12", 40, "倉庫", "Warehouse"),
    ("5250", "情報･通信業", "10", 550, "通信", "Communications"),
    ("6050", "卸売業", "13", 320, "商事", "Trading"),
    ("6100", "小売業", "14", 350, "商店", "Stores"),
    ("7050", "銀行業", "15", 80, "銀行", "Bank"),
    ("7100", "証券､商品先物取引業", "16", 40, "証券", "Securities"),
    ("7150", "保険業", "16", 13, "損害保険", "Insurance"),
    ("7200", "その他金融業", "16", 35, "リース", "Lease"),
    ("8050", "不動産業", "17", 150, "不動産", "Real Estate"),
    ("9050", "サービス業", "10", 550, "サービス", "Services"),
)
SECTOR17_NAMES: dict[str, str] = {
    "1": "食品", "2": "エネルギー資源", "3": "建設・資材", "4": "素材・化学", "5": "医薬品",
    "6": "自動車・輸送機", "7": "鉄鋼・非鉄", "8": "機械", "9": "電機・精密", "10": "情報通信・サービスその他",
    "11": "電気・ガス", "12": "運輸・物流", "13": "商社・卸売", "14": "小売", "15": "銀行",
    "16": "金融（除く銀行）", "17": "不動産",
}
MARKETS: dict[str, str] = {"0111": "プライム", "0112": "スタンダード", "0113": "グロース"}
MARGINS: dict[str, str] = {"1": "信用", "2": "貸借", "3": "その他"}

REORG_DATE = dt.date(2022, 4, 4)  # TSE market restructuring: Prime / Standard / Growth
MARKET_CODES = ("0101", "0102", "0104", "0106", "0107", "0111", "0112", "0113")
MARKET_NAMES = {
    "0101": "東証一部", "0102": "東証二部", "0104": "マザーズ", "0106": "JASDAQ スタンダード",
    "0107": "JASDAQ グロース", "0111": "プライム", "0112": "スタンダード", "0113": "グロース",
}
# Section slots of trades_spec: the slot a market code belongs to, and the slot names before/after the reorg.
SLOT_OF_MARKET = np.array([0, 1, 2, 3, 3, 0, 1, 2])
SECTIONS_OLD = ("TSE1st", "TSE2nd", "TSEMothers", "TSEJASDAQ")
SECTIONS_NEW = ("TSEPrime", "TSEStandard", "TSEGrowth")
TOPIX_OLD, TOPIX_NEW = (0,), (5, 6)  # market-code indices inside TOPIX before / after the reorg
FAR = np.datetime64("2262-01-01")  # "never" for listing and segment-change dates

# ------------------------------------------------------------------ model parameters (daily units)
KAPPA = 0.06  # signal sd relative to idiosyncratic vol -> oracle RankIC about 0.05
FAMILIES = ("reversal", "momentum", "quality", "leadlag", "pead", "margin", "flow")
WEIGHTS = {"reversal": 0.45, "momentum": 0.3, "quality": 0.35, "leadlag": 0.35, "pead": 0.4, "margin": 0.3,
           "flow": 0.25}
W_REV, W_MOM, W_QUAL = WEIGHTS["reversal"], WEIGHTS["momentum"], WEIGHTS["quality"]
NORM = math.sqrt(sum(w**2 for w in WEIGHTS.values()))
LEAD_DECAY = 0.5  # daily decay of the peers' return EMA
REV_DAYS, MOM_DAYS = 5, 60
PHI_QUALITY = 0.995  # daily AR(1) persistence of the latent quality (half-life ~140 sessions)
MKT_DRIFT, MKT_VOL = 0.00025, 0.011
MKT_GARCH = (0.08, 0.90)  # (alpha, beta)
IDIO_GARCH = (0.05, 0.93)
SECTOR_VOL = 0.006
HORIZONS = (1, 5, 10, 20)
# The published-information families (see gogoku.sim.signal).
PEAD_TAU = 30.0  # sessions: half-life about 21 sessions
PEAD_JUMP = 1.5  # reaction on the effective session, in idiosyncratic sigmas per unit surprise
SURPRISE_MARGIN = 0.02  # operating-margin shift of the quarter per unit surprise
PHI_MARGIN, PHI_FLOW = 0.85, 0.6  # weekly AR(1) persistence
MARGIN_PUBLISH_LAG, FLOW_PUBLISH_LAG = 2, 4  # business days after the record date / week end

# ------------------------------------------------------------------ prices: the tick grid and the limits
# JPX daily price limits (制限値幅): base price below threshold -> width in yen.
_LIMIT_THRESHOLDS = np.array([100, 200, 500, 700, 1000, 1500, 2000, 3000, 5000, 7000, 10000, 15000, 20000,
                              30000, 50000, 70000, 100000, 150000, 200000, 300000, 500000, 700000, 1000000])
_LIMIT_WIDTHS = np.array([30, 50, 80, 100, 150, 300, 400, 500, 700, 1000, 1500, 3000, 4000, 5000, 7000,
                          10000, 15000, 30000, 40000, 50000, 70000, 100000, 150000, 300000], dtype=float)
# Tick sizes of TOPIX100 constituents (fine ticks keep rounding noise negligible).
_TICK_THRESHOLDS = np.array([1000, 3000, 10000, 30000, 100000, 300000, 1000000])
_TICKS = np.array([0.1, 0.5, 1, 5, 10, 50, 100, 1000], dtype=float)


def limit_width(price: np.ndarray) -> np.ndarray:
    """The daily price limit's width (yen) for each base price."""
    return _LIMIT_WIDTHS[np.searchsorted(_LIMIT_THRESHOLDS, price, side="right")]


def tick_size(price: np.ndarray) -> np.ndarray:
    """The tick (yen) at each price."""
    return _TICKS[np.searchsorted(_TICK_THRESHOLDS, price, side="right")]


def on_grid(price: np.ndarray, how: str = "round") -> np.ndarray:
    """Prices on the tick grid (at least one tick); `ceil`/`floor` for highs and lows."""
    tick = tick_size(price)
    steps = price / tick
    if how == "ceil":
        steps = np.ceil(steps - 1e-9)
    elif how == "floor":
        steps = np.floor(steps + 1e-9)
    else:
        steps = np.round(steps)
    return np.round(np.maximum(steps, 1.0) * tick, 1)


def cs_z(x: np.ndarray) -> np.ndarray:
    """Cross-sectional z-score (zeros when x is constant)."""
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


# ------------------------------------------------------------------ dates
def dates_np(days: list[dt.date]) -> np.ndarray:
    """Dates as datetime64[D]."""
    return np.array(days, dtype="datetime64[D]")


def date_series(values: np.ndarray, name: str) -> pl.Series:
    """A polars Date column from datetime64 values (NaT -> null)."""
    return pl.Series(name, np.asarray(values).astype("datetime64[D]"), dtype=pl.Date)


def month_start(month_index: np.ndarray) -> np.ndarray:
    """First day of each absolute month index (year * 12 + month - 1)."""
    return (np.asarray(month_index) - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]")


def month_end(month_index: np.ndarray) -> np.ndarray:
    """Last day of each absolute month index (year * 12 + month - 1)."""
    return month_start(np.asarray(month_index) + 1) - np.timedelta64(1, "D")


def all_sessions() -> np.ndarray:
    """Every session of the offline JPX calendar (datetime64[D])."""
    return np.array(cal.business_days(*cal.calendar_bounds()), dtype="datetime64[D]")


def usable_week(published: np.ndarray, days: np.ndarray) -> np.ndarray:
    """For each session, the latest week whose after-close publication is usable (-1 if none)."""
    usable_from = np.searchsorted(days, published, side="right")  # first session after the publication
    return np.searchsorted(usable_from, np.arange(len(days)), side="right") - 1


def date_slice(frame: pl.DataFrame, column: str, start: dt.date | None, end: dt.date | None) -> pl.DataFrame:
    """Rows of a frame sorted by `column` with start <= column <= end, by binary search."""
    col = frame[column]
    lo = 0 if start is None else int(col.search_sorted(start, side="left"))
    hi = frame.height if end is None else int(col.search_sorted(end, side="right"))
    return frame.slice(lo, max(hi - lo, 0))


# ------------------------------------------------------------------ the state of a market
@dataclass(frozen=True)
class Universe:
    """Static traits per simulated stock (arrays of length N), drawn once from the `static` stream."""

    codes: np.ndarray  # "13010"-style strings
    sector: np.ndarray  # index into SECTORS33
    market: np.ndarray  # "0111" / "0112" / "0113"
    scale: np.ndarray
    margin: np.ndarray
    name_jp: np.ndarray
    name_en: np.ndarray
    price0: np.ndarray
    shares0: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    idio_vol: np.ndarray
    turnover: np.ndarray
    quality0: np.ndarray
    fy_end_month: np.ndarray
    ifrs: np.ndarray
    sales0: np.ndarray  # annual sales (yen) at the start
    margin0: np.ndarray  # operating margin level
    asset_turnover: np.ndarray
    equity_ratio: np.ndarray
    treasury: np.ndarray  # treasury share fraction
    topix0: float


@dataclass(frozen=True)
class Paths:
    """The simulated daily paths, (T sessions, N stocks) arrays."""

    open: np.ndarray  # (T, N) raw prices
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    upper: np.ndarray  # bool: touched the upper limit
    lower: np.ndarray
    volume: np.ndarray
    turnover: np.ndarray
    factor: np.ndarray  # AdjustmentFactor (1/split ratio on ex-dates)
    quality: np.ndarray  # float32
    sigma_next: np.ndarray  # float32: idiosyncratic vol for t+1, known at t's close
    z_rev: np.ndarray  # float32 cross-sectional z-scores of the signal terms at t's close
    z_mom: np.ndarray
    z_qual: np.ndarray
    z_lead: np.ndarray


@dataclass(frozen=True)
class Lifecycle:
    """Listings, delistings, segment changes and the latent peer graph (see `signal.build_lifecycle`)."""

    ipo: np.ndarray  # datetime64[D]: first listed session
    delist: np.ndarray  # datetime64[D]: first session no longer listed (FAR if never)
    old_market: np.ndarray  # int index into MARKET_CODES before the reorg
    new_market: np.ndarray  # after the reorg, before any segment change
    change: np.ndarray  # datetime64[D] of a segment change (FAR if none)
    changed_market: np.ndarray  # after the change
    leaders: np.ndarray  # (N, K) peers whose past returns a stock follows
    cap_z: np.ndarray  # cross-sectional z of log market cap at the start
    long_frac: np.ndarray  # typical long margin balance / shares
    short_frac: np.ndarray

    def market_at(self, dates: np.ndarray) -> np.ndarray:
        """(len(dates), N) index into MARKET_CODES of each stock's market on each date."""
        d = np.asarray(dates, dtype="datetime64[D]")[:, None]
        after = np.where(d >= self.change[None, :], self.changed_market[None, :], self.new_market[None, :])
        return np.where(d < np.datetime64(REORG_DATE), self.old_market[None, :], after).astype(np.int8)

    def listed_at(self, dates: np.ndarray) -> np.ndarray:
        """(len(dates), N) bool: each stock is listed on each date."""
        d = np.asarray(dates, dtype="datetime64[D]")[:, None]
        return (d >= self.ipo[None, :]) & (d < self.delist[None, :])


@dataclass(frozen=True)
class Weeks:
    """The weekly grid from the week of `start`: record dates and publication dates (datetime64[D])."""

    first: np.ndarray  # first session of the week (trades_spec StartDate)
    record: np.ndarray  # last session of the week (weekly margin Date, trades_spec EndDate)
    margin_published: np.ndarray  # after the close of the 2nd business day after `record`
    flow_published: np.ndarray  # after the close of the 4th business day after `record`


@dataclass(frozen=True)
class StatementSchedule:
    """Quarterly statements on a (quarter j, stock) grid, with their disclosure time and surprise."""

    month0: int  # absolute month index of the grid's first row
    k: np.ndarray  # (J, N) month row of each quarter end
    qtype: np.ndarray  # 1..3 quarters, 4 = FY
    fy_first: np.ndarray  # first quarter row of the fiscal year
    complete: np.ndarray  # bool: inside the grid with a whole fiscal year behind it
    period_end: np.ndarray  # datetime64[D]
    disclosed: np.ndarray  # datetime64[D], a session
    time: np.ndarray  # "HH:MM:SS"
    effective: np.ndarray  # datetime64[D]: the first session whose close includes the news
    surprise: np.ndarray  # (J, N) float
    # Forecast revisions (EarnForecastRevision) between statement j and the next, for about 20% of them.
    rev: np.ndarray  # bool
    rev_disclosed: np.ndarray
    rev_time: np.ndarray
    rev_effective: np.ndarray
    rev_surprise: np.ndarray


class MarketState(Protocol):
    """What the generator modules read from a market: its span and seeds, its random streams, its static
    traits and paths, and the derived per-session state. `gogoku.sim.market.SimMarket` provides it."""

    @property
    def seed(self) -> int: ...

    @property
    def n_stocks(self) -> int: ...

    @property
    def start(self) -> dt.date: ...

    @property
    def end(self) -> dt.date: ...

    @property
    def days(self) -> np.ndarray:
        """The simulated sessions (datetime64[D])."""
        ...

    @property
    def seeds(self) -> Mapping[str, np.random.SeedSequence]:
        """The SeedSequence child of each named random stream."""
        ...

    def rng(self, stream: str) -> np.random.Generator:
        """A fresh generator on the named stream (the same draws every call)."""
        ...

    @property
    def universe(self) -> Universe: ...

    @property
    def paths(self) -> Paths: ...

    @property
    def shares(self) -> np.ndarray:
        """(T, N) shares outstanding per session."""
        ...

    @property
    def life(self) -> Lifecycle: ...

    @property
    def listed_mask(self) -> np.ndarray:
        """(T, N) bool: listed on the session."""
        ...

    @property
    def market_idx(self) -> np.ndarray:
        """(T, N) index into MARKET_CODES on each session."""
        ...

    @property
    def index_members(self) -> np.ndarray:
        """(T, N) bool: TOPIX constituents on each session."""
        ...

    @property
    def weeks(self) -> Weeks: ...

    @property
    def weekly(self) -> tuple[np.ndarray, np.ndarray]:
        """(margin imbalance (W, N), foreign flow (W, section slots)) latents."""
        ...

    @property
    def schedule(self) -> StatementSchedule: ...

    @property
    def published(self) -> dict[str, np.ndarray]:
        """(T, N) terms of the published-information families and the announcement jumps."""
        ...

    def topix(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame: ...

    def statements(self, start: dt.date | None = None, end: dt.date | None = None,
                   code: str | None = None) -> pl.DataFrame: ...


def index_ohlc(weights: np.ndarray, rel: dict[str, np.ndarray], level0: float) -> dict[str, np.ndarray]:
    """An index's daily open, high, low, close and previous close from its constituents' weights (T, N)
    and their OHLC relative to the previous close (`rel`: open, high, low, close, each (T, N)), starting
    at `level0`. Its high and low lie between max(O, C) / min(O, C) and the weighted constituents' own."""
    agg = {k: (weights * v).sum(1) for k, v in rel.items()}
    prev = level0 * np.concatenate([[1.0], np.cumprod(agg["close"])[:-1]])
    close, open_ = prev * agg["close"], prev * agg["open"]
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = top + 0.35 * np.maximum(prev * agg["high"] - top, 0)
    low = bottom - 0.35 * np.maximum(bottom - prev * agg["low"], 0)
    return {"open": open_, "high": high, "low": low, "close": close, "prev": prev}
