"""A simulated Tokyo equity market, deterministic for a seed, that serves J-Quants-shaped tables.

Daily model, vectorized over stocks with one loop over sessions:

    r[t,i] = mu[t,i] + beta_i * f_mkt[t] + gamma_i * f_sec[t, sector(i)] + sigma_i[t] * z[t,i]

- f_mkt and the idiosyncratic sigma_i follow GARCH(1,1) (volatility clustering); sector factors scale
  with the market's volatility state.
- The planted signal, fixed at the close of t from information public then (the as-of rule):
      mu[t+1,i] = KAPPA * sigma_i[t+1] * sum_f W_f * z_f[t,i] / NORM
  over seven families f (FAMILIES): reversal (z of -5-day idiosyncratic return), momentum (60-day
  return), quality (a persistent AR(1) latent that drives the statements' growth and margins), lead-lag
  (an EMA of the idiosyncratic returns of 4 latent peers, mostly same-sector), and three published-data
  families from `sim_signal`: post-earnings drift, weekly margin imbalance and foreign flows per section,
  each entering only from the session its publication becomes usable. KAPPA sets the oracle daily
  RankIC near 0.05; `signal_strengths()` reports each family's share and oracle RankIC.
- Prices live on the tick grid inside the daily limit band (UpperLimit/LowerLimit flag a touch);
  splits change raw prices on the ex-date with AdjustmentFactor = 1/ratio, and Adjustment* columns are
  back-adjusted to `end`, as J-Quants recomputes them after each split.

Determinism: every random stream is drawn session-major (or month-major) from its own SeedSequence
child, so the same seed gives the same rows for the dates two markets share, whatever their `end`.
Listings, delistings and segment changes (`sim_signal.build_lifecycle`) are drawn relative to `start`;
quotes, listings and the truth hold only listed (Code, Date) pairs. The other market-data tables
(margin, flows, short selling, indices, calendar of earnings, morning bars, breakdown, dividends) are
built in `sim_tables`, which also states their publication schedules.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

from gogoku import calendar as cal
from gogoku.errors import InputError
from gogoku.jquants import sim_signal, sim_tables
from gogoku.jquants.endpoints import STATEMENTS

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
_STEMS: tuple[tuple[str, str], ...] = (
    ("日本", "Nippon"), ("東洋", "Toyo"), ("大和", "Daiwa"), ("富士", "Fuji"), ("北陸", "Hokuriku"),
    ("中央", "Chuo"), ("関東", "Kanto"), ("旭", "Asahi"), ("新光", "Shinko"), ("東邦", "Toho"),
    ("昭和", "Showa"), ("大同", "Daido"), ("太平", "Taihei"), ("明治", "Meiji"), ("光", "Hikari"),
    ("丸三", "Marusan"), ("協和", "Kyowa"), ("第一", "Daiichi"), ("共栄", "Kyoei"), ("千代田", "Chiyoda"),
    ("中部", "Chubu"), ("九州", "Kyushu"), ("東北", "Tohoku"), ("瑞穂", "Mizuho"), ("桜", "Sakura"),
    ("若葉", "Wakaba"), ("三星", "Mitsuboshi"), ("山陽", "Sanyo"), ("北斗", "Hokuto"), ("朝日", "Asahi"),
)
_SUFFIXES: tuple[tuple[str, str], ...] = (("", "Co.,Ltd."), ("ホールディングス", "Holdings,Inc."), ("工業", "Industries,Ltd."))

# Model parameters (daily units).
KAPPA = 0.06  # signal sd relative to idiosyncratic vol -> oracle RankIC about 0.05
FAMILIES = ("reversal", "momentum", "quality", "leadlag", "pead", "margin", "flow")
WEIGHTS = {"reversal": 0.45, "momentum": 0.3, "quality": 0.35, "leadlag": 0.35, "pead": 0.4, "margin": 0.3,
           "flow": 0.25}
W_REV, W_MOM, W_QUAL = WEIGHTS["reversal"], WEIGHTS["momentum"], WEIGHTS["quality"]
NORM = math.sqrt(sum(w**2 for w in WEIGHTS.values()))
LEAD_DECAY = 0.5  # daily decay of the peers' return EMA
HOLIDAY_TRADING_FROM = dt.date(2022, 9, 23)  # JPX derivatives trade on most weekday holidays since
REV_DAYS, MOM_DAYS = 5, 60
PHI_QUALITY = 0.995  # daily AR(1) persistence of the latent quality (half-life ~140 sessions)
MKT_DRIFT, MKT_VOL = 0.00025, 0.011
MKT_GARCH = (0.08, 0.90)  # (alpha, beta)
IDIO_GARCH = (0.05, 0.93)
SECTOR_VOL = 0.006
HORIZONS = (1, 5, 10, 20)
_CHUNK = 256  # sessions drawn per batch (bounded memory; draws stay session-major)
_STREAMS = ("static", "market", "sector", "idio", "ohlc", "volume", "events", "quality", "statements", "disclosure",
            "futures", "lifecycle", "surprise", "margin", "flow", "tables", "revision")

# JPX daily price limits (制限値幅): base price below threshold -> width in yen.
_LIMIT_THRESHOLDS = np.array([100, 200, 500, 700, 1000, 1500, 2000, 3000, 5000, 7000, 10000, 15000, 20000,
                              30000, 50000, 70000, 100000, 150000, 200000, 300000, 500000, 700000, 1000000])
_LIMIT_WIDTHS = np.array([30, 50, 80, 100, 150, 300, 400, 500, 700, 1000, 1500, 3000, 4000, 5000, 7000,
                          10000, 15000, 30000, 40000, 50000, 70000, 100000, 150000, 300000], dtype=float)
# Tick sizes of TOPIX100 constituents (fine ticks keep rounding noise negligible).
_TICK_THRESHOLDS = np.array([1000, 3000, 10000, 30000, 100000, 300000, 1000000])
_TICKS = np.array([0.1, 0.5, 1, 5, 10, 50, 100, 1000], dtype=float)
_SPLIT_RATIOS = np.array([2.0, 3.0, 4.0, 5.0, 10.0])
_SPLIT_CUM = np.cumsum([0.5, 0.2, 0.1, 0.15, 0.05])


def _limit_width(price: np.ndarray) -> np.ndarray:
    return _LIMIT_WIDTHS[np.searchsorted(_LIMIT_THRESHOLDS, price, side="right")]


def _tick(price: np.ndarray) -> np.ndarray:
    return _TICKS[np.searchsorted(_TICK_THRESHOLDS, price, side="right")]


def _on_grid(price: np.ndarray, how: str = "round") -> np.ndarray:
    """Prices on the tick grid (at least one tick); `ceil`/`floor` for highs and lows."""
    tick = _tick(price)
    steps = price / tick
    if how == "ceil":
        steps = np.ceil(steps - 1e-9)
    elif how == "floor":
        steps = np.floor(steps + 1e-9)
    else:
        steps = np.round(steps)
    return np.round(np.maximum(steps, 1.0) * tick, 1)


def _cs_z(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _decay_weights(h: int) -> dict[str, float]:
    """Sum over the next h days of each family's remaining weight (see `SimMarket.truth`)."""
    k = np.arange(h)
    return {
        "reversal": float(np.clip(1 - k / REV_DAYS, 0, None).sum()),
        "momentum": float(np.clip(1 - k / MOM_DAYS, 0, None).sum()),
        "quality": float((PHI_QUALITY**k).sum()),
        "leadlag": float((LEAD_DECAY**k).sum()),
        "pead": float(np.exp(-k / sim_signal.PEAD_TAU).sum()),
        "margin": float((sim_signal.PHI_MARGIN ** (k / 5)).sum()),
        "flow": float((sim_signal.PHI_FLOW ** (k / 5)).sum()),
    }


def _dates_np(days: list[dt.date]) -> np.ndarray:
    return np.array(days, dtype="datetime64[D]")


def _date_series(values: np.ndarray, name: str) -> pl.Series:
    return pl.Series(name, values.astype("datetime64[D]"), dtype=pl.Date)


@dataclass(frozen=True)
class _Universe:
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
class _Paths:
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


class SimMarket:
    """A deterministic market for `seed`, with sessions from `start` through `end` (Tokyo dates).

    Tables come back typed with v1 field names (see gogoku.jquants.endpoints); generation is lazy and
    cached per instance.
    """

    def __init__(self, seed: int = 42, n_stocks: int = 300, start: dt.date = dt.date(2016, 1, 4),
                 end: dt.date | None = None) -> None:
        first, last = cal.calendar_bounds()
        if end is None:
            end = cal.tokyo_date(dt.datetime.now(dt.UTC))
        if not 5 <= n_stocks <= 8000:
            raise InputError(f"n_stocks={n_stocks}: expected 5..8000 simulated stocks")
        if start < first or end > last:
            raise InputError(f"simulated span {start}..{end} must lie within the offline JPX calendar {first}..{last}")
        days = cal.business_days(start, end)
        if len(days) < 2:
            raise InputError(f"simulated span {start}..{end} holds fewer than 2 business days")
        self.seed = seed
        self.n_stocks = n_stocks
        self.start = start
        self.end = end
        self.days = _dates_np(days)
        children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
        self._seeds = dict(zip(_STREAMS, children, strict=True))

    def _rng(self, stream: str) -> np.random.Generator:
        return np.random.default_rng(self._seeds[stream])

    # ------------------------------------------------------------------ generation
    @cached_property
    def universe(self) -> _Universe:
        rng = self._rng("static")
        n = self.n_stocks
        weights = np.array([s[3] for s in SECTORS33], dtype=float)
        sector = np.sort(rng.choice(len(SECTORS33), size=n, p=weights / weights.sum()))
        codes4 = np.sort(rng.choice(np.arange(1301, 9999), size=n, replace=False))
        # Codes follow sectors (the securities code plan), except for a fifth reassigned at random.
        moved = rng.choice(n, size=n // 5, replace=False)
        sector[moved] = sector[rng.permutation(moved)]
        log_cap = np.clip(rng.normal(np.log(5e10), 1.6, n), np.log(2e9), np.log(3e13))
        price0 = np.clip(np.exp(rng.normal(np.log(1500), 0.8, n)), 80, 60000)
        price0 = _on_grid(price0)
        shares0 = np.maximum(np.round(np.exp(log_cap) / price0, -2), 100_000)
        cap = price0 * shares0
        cap_pct = np.argsort(np.argsort(cap)) / max(n - 1, 1)
        seg_score = cap_pct + 0.15 * rng.standard_normal(n)
        market = np.where(seg_score >= 0.5, "0111", np.where(seg_score < 0.15, "0113", "0112"))
        growth = market == "0113"
        scale = self._scale_categories(cap, market)
        u_margin = rng.random(n)
        margin = np.where(u_margin < 0.02, "3", np.where(
            ((market == "0111") & (u_margin < 0.85)) | ((market == "0112") & (u_margin < 0.4)), "2", "1"))
        stem = rng.integers(0, len(_STEMS), n)
        suffix = rng.integers(0, len(_SUFFIXES), n)
        name_jp = np.array([_STEMS[a][0] + SECTORS33[s][4] + _SUFFIXES[b][0] for a, s, b in zip(stem, sector, suffix, strict=True)])
        name_en = np.array([f"{_STEMS[a][1]} {SECTORS33[s][5]} {_SUFFIXES[b][1]}" for a, s, b in zip(stem, sector, suffix, strict=True)])
        beta = np.clip(rng.normal(1.0, 0.25, n) + 0.15 * growth, 0.3, 1.9)
        gamma = np.clip(rng.normal(1.0, 0.2, n), 0.3, 1.7)
        idio_vol = (0.009 + 0.012 * (1 - cap_pct) + 0.006 * growth) * np.exp(0.2 * rng.standard_normal(n))
        turnover = 0.004 * np.exp(0.5 * rng.standard_normal(n)) * np.where(growth, 1.8, 1.0)
        quality0 = rng.standard_normal(n)
        fy_end_month = rng.choice(np.array([3, 12, 9, 6, 2, 8]), size=n, p=[0.72, 0.13, 0.05, 0.04, 0.03, 0.03])
        ifrs = rng.random(n) < 0.1
        sales0 = cap * np.exp(rng.normal(np.log(0.9), 0.5, n))
        margin0 = np.clip(rng.normal(0.07, 0.04, n), -0.05, 0.3)
        asset_turnover = np.exp(rng.normal(np.log(0.8), 0.3, n))
        equity_ratio = np.clip(rng.normal(0.45, 0.15, n), 0.08, 0.9)
        treasury = 0.04 * rng.random(n)
        topix0 = float(1500 + 500 * rng.random())
        return _Universe(
            codes=np.array([f"{c}0" for c in codes4]), sector=sector, market=market, scale=scale, margin=margin,
            name_jp=name_jp, name_en=name_en, price0=price0, shares0=shares0, beta=beta, gamma=gamma,
            idio_vol=idio_vol, turnover=turnover, quality0=quality0, fy_end_month=fy_end_month, ifrs=ifrs,
            sales0=sales0, margin0=margin0, asset_turnover=asset_turnover, equity_ratio=equity_ratio,
            treasury=treasury, topix0=topix0,
        )

    @staticmethod
    def _scale_categories(cap: np.ndarray, market: np.ndarray) -> np.ndarray:
        """TOPIX size buckets by cap rank among Prime/Standard, in TOPIX's proportions."""
        scale = np.full(cap.shape, "-", dtype=object)
        members = np.flatnonzero(market != "0113")
        ranked = members[np.argsort(-cap[members])]
        bounds = np.cumsum([0.015, 0.035, 0.2, 0.25]) * len(ranked)
        labels = np.array(["TOPIX Core30", "TOPIX Large70", "TOPIX Mid400", "TOPIX Small 1", "TOPIX Small 2"])
        scale[ranked] = labels[np.searchsorted(np.ceil(bounds), np.arange(len(ranked)), side="right")]
        return scale.astype(str)

    @cached_property
    def paths(self) -> _Paths:
        u = self.universe
        n, t_len = self.n_stocks, len(self.days)
        rng = {s: self._rng(s) for s in ("market", "sector", "idio", "ohlc", "volume", "events", "quality")}
        f64 = lambda: np.empty((t_len, n))  # noqa: E731
        f32 = lambda: np.empty((t_len, n), dtype=np.float32)  # noqa: E731
        o, h, lo_, c, vol, tv, fac = f64(), f64(), f64(), f64(), f64(), f64(), f64()
        upper, lower = np.zeros((t_len, n), bool), np.zeros((t_len, n), bool)
        qual, sig_next, z_rev, z_mom, z_qual, z_lead = f32(), f32(), f32(), f32(), f32(), f32()
        published = self._published
        jump, leaders = published["jump"], self.life.leaders
        lead_state = np.zeros(n)
        w_pub = {f: WEIGHTS[f] for f in ("pead", "margin", "flow")}

        sec = u.sector
        am, bm = MKT_GARCH
        ai, bi = IDIO_GARCH
        wm = (1 - am - bm) * MKT_VOL**2
        wi = (1 - ai - bi) * u.idio_vol**2
        hm, hi = MKT_VOL**2, u.idio_vol**2
        prev_close, shares = u.price0.copy(), u.shares0.copy()
        rev_buf, mom_buf = np.zeros((REV_DAYS, n)), np.zeros((MOM_DAYS, n))
        rev_sum, mom_sum = np.zeros(n), np.zeros(n)
        mu = np.zeros(n)
        q = u.quality0.copy()
        log_vol = np.zeros(n)
        q_innov = math.sqrt(1 - PHI_QUALITY**2)
        for t0 in range(0, t_len, _CHUNK):
            size = min(_CHUNK, t_len - t0)
            zm = rng["market"].standard_normal(size)
            zs = rng["sector"].standard_normal((size, len(SECTORS33)))
            zi = rng["idio"].standard_normal((size, n))
            zo = rng["ohlc"].standard_normal((size, 3, n))
            zv = rng["volume"].standard_normal((size, n))
            ue = rng["events"].random((size, 2, n))
            zq = rng["quality"].standard_normal((size, n))
            for j in range(size):
                t = t0 + j
                sig_m, sig = math.sqrt(hm), np.sqrt(hi)
                f_mkt = MKT_DRIFT + sig_m * zm[j]
                f_sec = SECTOR_VOL * (sig_m / MKT_VOL) * zs[j]
                common = u.beta * f_mkt + u.gamma * f_sec[sec]
                # Earnings news moves the price on its effective session (the close that first includes it).
                eps = sig * (zi[j] + sim_signal.PEAD_JUMP * jump[t])
                r = mu + common + eps
                # Splits follow high prices; reverse splits (10:1 consolidations) follow very low ones.
                u_split, u_ratio = ue[j, 0], ue[j, 1]
                split = (u_split < np.where(prev_close >= 5000, 8e-4, 1.2e-4)) & (t > 0)
                consolidate = (u_split > 1 - 3e-4) & (prev_close < 80) & (t > 0)
                ratio = np.where(split, _SPLIT_RATIOS[np.searchsorted(_SPLIT_CUM, u_ratio * _SPLIT_CUM[-1])],
                                 np.where(consolidate, 0.1, 1.0))
                base = prev_close / ratio
                ref = _on_grid(base)
                width = _limit_width(ref)
                hi_px, lo_px = ref + width, np.maximum(ref - width, _tick(ref))
                close = np.clip(_on_grid(np.clip(base * (1 + r), lo_px, hi_px)), lo_px, hi_px)
                open_ = np.clip(_on_grid(np.clip(base * (1 + 0.5 * common + 0.35 * sig * zo[j, 0]), lo_px, hi_px)), lo_px, hi_px)
                top, bottom = np.maximum(open_, close), np.minimum(open_, close)
                high = np.maximum(np.minimum(_on_grid(top * (1 + 0.6 * sig * np.abs(zo[j, 1])), "ceil"), hi_px), top)
                low = np.minimum(np.maximum(_on_grid(bottom * (1 - 0.6 * sig * np.abs(zo[j, 2])), "floor"), lo_px), bottom)
                r_real = close / base - 1
                shares = shares * ratio
                log_vol = 0.75 * log_vol + 0.4 * zv[j]
                volume = np.maximum(np.round(shares * u.turnover * np.exp(log_vol + 0.5 * np.abs(r_real) / u.idio_vol) / 100) * 100, 100)
                o[t], h[t], lo_[t], c[t] = open_, high, low, close
                upper[t], lower[t] = high >= hi_px - 1e-9, low <= lo_px + 1e-9
                vol[t], tv[t] = volume, np.round(volume * (open_ + high + low + close) / 4)
                fac[t] = 1 / ratio
                # State known at t's close -> the signal for t+1.
                idio = r_real - common
                k5, k60 = t % REV_DAYS, t % MOM_DAYS
                rev_sum += idio - rev_buf[k5]
                rev_buf[k5] = idio
                mom_sum += r_real - mom_buf[k60]
                mom_buf[k60] = r_real
                q = PHI_QUALITY * q + q_innov * zq[j]
                hm = wm + am * (f_mkt - MKT_DRIFT) ** 2 + bm * hm
                hi = wi + ai * eps**2 + bi * hi
                sig1 = np.sqrt(hi)
                zr = _cs_z(-rev_sum / (sig1 * math.sqrt(min(t + 1, REV_DAYS))))
                zmo = _cs_z(mom_sum / (sig1 * math.sqrt(min(t + 1, MOM_DAYS))))
                zqu = _cs_z(q)
                lead_state = LEAD_DECAY * lead_state + (idio / sig)[leaders].mean(axis=1)
                zle = _cs_z(lead_state)
                pub = sum(w * published[f][t] for f, w in w_pub.items())
                mu = KAPPA * sig1 * (W_REV * zr + W_MOM * zmo + W_QUAL * zqu + WEIGHTS["leadlag"] * zle + pub) / NORM
                qual[t], sig_next[t], z_rev[t], z_mom[t], z_qual[t], z_lead[t] = q, sig1, zr, zmo, zqu, zle
                prev_close = close
        return _Paths(open=o, high=h, low=lo_, close=c, upper=upper, lower=lower, volume=vol, turnover=tv,
                      factor=fac, quality=qual, sigma_next=sig_next, z_rev=z_rev, z_mom=z_mom, z_qual=z_qual,
                      z_lead=z_lead)

    @cached_property
    def _shares(self) -> np.ndarray:
        """Shares outstanding (incl. treasury) per session; splits multiply them on the ex-date."""
        return self.universe.shares0 / np.cumprod(self.paths.factor, axis=0)

    # ------------------------------------------------------------------ life cycle and publications
    @cached_property
    def life(self) -> sim_signal.Lifecycle:
        return sim_signal.build_lifecycle(self)

    @cached_property
    def _listed_mask(self) -> np.ndarray:
        """(T, N) bool: the code is listed (and quoted) on the session."""
        return self.life.listed_at(self.days)

    @cached_property
    def _market_idx(self) -> np.ndarray:
        """(T, N) index into sim_signal.MARKET_CODES of each code's market on each session."""
        return self.life.market_at(self.days)

    @cached_property
    def weeks(self) -> sim_signal.Weeks:
        return sim_signal.build_weeks(self)

    @cached_property
    def _weekly(self) -> tuple[np.ndarray, np.ndarray]:
        return sim_signal.weekly_latents(self)

    @cached_property
    def _schedule(self) -> sim_signal.StatementSchedule:
        return sim_signal.build_statement_schedule(self)

    @cached_property
    def _published(self) -> dict[str, np.ndarray]:
        return sim_signal.published_signals(self)

    @cached_property
    def _index_members(self) -> np.ndarray:
        """(T, N) bool: TOPIX constituents (1st section before the reorg, Prime + Standard after), from
        the session after listing."""
        listed = self._listed_mask
        listed_prev = np.vstack([listed[:1], listed[:-1]])
        reorg = (self.days >= np.datetime64(sim_signal.REORG_DATE))[:, None]
        mk = self._market_idx
        old = np.isin(mk, sim_signal.TOPIX_OLD)
        new = np.isin(mk, sim_signal.TOPIX_NEW)
        members = listed & listed_prev & np.where(reorg, new, old)
        empty = ~members.any(axis=1)
        members[empty] = listed[empty] | ~listed[empty].any(axis=1, keepdims=True)
        return members

    @cached_property
    def _indices(self) -> dict[str, np.ndarray]:
        """TOPIX (cap-weighted over `_index_members`) and a price-weighted NK225 proxy: O/H/L/C per session."""
        u, p = self.universe, self.paths
        base = np.vstack([u.price0, p.close[:-1]]) * p.factor  # previous close in post-split terms
        rel = {k: getattr(p, k) / base for k in ("open", "high", "low", "close")}
        out: dict[str, np.ndarray] = {}
        cap_prev = np.vstack([u.price0 * u.shares0, (p.close * self._shares)[:-1]]) * self._index_members
        out.update(self._index_ohlc("topix", cap_prev / cap_prev.sum(1, keepdims=True), rel, u.topix0))
        prime = np.flatnonzero(u.market == "0111") if (u.market == "0111").any() else np.arange(self.n_stocks)
        top = prime[np.argsort(-(u.price0 * u.shares0)[prime])][:225]
        w = np.zeros_like(base)
        w[:, top] = base[:, top] * self._listed_mask[:, top]
        out.update(self._index_ohlc("nk225", w / w.sum(1, keepdims=True), rel, 12.5 * u.topix0))
        return out

    @staticmethod
    def _index_ohlc(name: str, w: np.ndarray, rel: dict[str, np.ndarray], level0: float) -> dict[str, np.ndarray]:
        agg = {k: (w * v).sum(1) for k, v in rel.items()}
        prev = level0 * np.concatenate([[1.0], np.cumprod(agg["close"])[:-1]])
        close, open_ = prev * agg["close"], prev * agg["open"]
        top, bottom = np.maximum(open_, close), np.minimum(open_, close)
        # The index's own high/low lie between max(O,C) and the weighted constituent highs.
        high = top + 0.35 * np.maximum(prev * agg["high"] - top, 0)
        low = bottom - 0.35 * np.maximum(bottom - prev * agg["low"], 0)
        return {f"{name}_{k}": np.round(v, 2) for k, v in (("open", open_), ("high", high), ("low", low), ("close", close))}

    # ------------------------------------------------------------------ tables (v1 names, typed)
    @cached_property
    def _listed(self) -> pl.DataFrame:
        u = self.universe
        s33 = [SECTORS33[s] for s in u.sector]
        return pl.DataFrame({
            "Code": u.codes, "CompanyName": u.name_jp, "CompanyNameEnglish": u.name_en,
            "Sector17Code": [s[2] for s in s33], "Sector17CodeName": [SECTOR17_NAMES[s[2]] for s in s33],
            "Sector33Code": [s[0] for s in s33], "Sector33CodeName": [s[1] for s in s33],
            "ScaleCategory": u.scale, "MarketCode": u.market, "MarketCodeName": [MARKETS[m] for m in u.market],
            "MarginCode": u.margin, "MarginCodeName": [MARGINS[m] for m in u.margin],
            "ProductCategory": np.full(self.n_stocks, "011"),  # every simulated issue is a domestic stock
        })

    def listed_info(self, date: dt.date | None = None, code: str | None = None) -> pl.DataFrame:
        """The listing snapshot as of `date` (default `end`): the codes listed that day with their market
        then (the old sections before 2022-04-04); empty outside [start, end]."""
        date = self.end if date is None else date
        day = np.array([date], dtype="datetime64[D]")
        market = np.array(sim_signal.MARKET_CODES)[self.life.market_at(day)[0]]
        in_topix = np.isin(market, ("0101", "0111", "0112"))
        scale = np.where(in_topix, np.where(self.universe.scale == "-", "TOPIX Small 2", self.universe.scale), "-")
        frame = self._listed.with_columns(
            pl.Series("ScaleCategory", scale, dtype=pl.Utf8),
            pl.Series("MarketCode", market, dtype=pl.Utf8),
            pl.Series("MarketCodeName", [sim_signal.MARKET_NAMES[c] for c in market], dtype=pl.Utf8),
        ).filter(pl.Series(self.life.listed_at(day)[0]))
        if code is not None:
            frame = frame.filter(pl.col("Code") == code)
        if not self.start <= date <= self.end:
            frame = frame.clear()
        return frame.select(pl.lit(date, dtype=pl.Date).alias("Date"), pl.all())

    @cached_property
    def _quotes(self) -> pl.DataFrame:
        """daily_quotes for every session and listed code, sorted by (Date, Code)."""
        p, n, t_len = self.paths, self.n_stocks, len(self.days)
        cum = np.cumprod(p.factor, axis=0)
        to_end = cum[-1] / cum  # product of the adjustment factors after each session, through `end`
        day_idx, code_idx = np.repeat(np.arange(t_len), n), np.tile(np.arange(n), t_len)
        flag = lambda a: pl.Series(a.ravel()).cast(pl.UInt8).cast(pl.Utf8)  # noqa: E731
        return pl.DataFrame({
            "Date": _date_series(self.days, "Date").gather(day_idx),
            "Code": pl.Series(self.universe.codes, dtype=pl.Utf8).gather(code_idx),
            "Open": p.open.ravel(), "High": p.high.ravel(), "Low": p.low.ravel(), "Close": p.close.ravel(),
            "UpperLimit": flag(p.upper), "LowerLimit": flag(p.lower),
            "Volume": p.volume.ravel(), "TurnoverValue": p.turnover.ravel(), "AdjustmentFactor": p.factor.ravel(),
            "AdjustmentOpen": (p.open * to_end).ravel(), "AdjustmentHigh": (p.high * to_end).ravel(),
            "AdjustmentLow": (p.low * to_end).ravel(), "AdjustmentClose": (p.close * to_end).ravel(),
            "AdjustmentVolume": (p.volume / to_end).ravel(),
        }).filter(pl.Series(self._listed_mask.ravel())).with_columns(
            # Premium's session fields; the listed rows above are in the same session-major order.
            (flag(values) if values.dtype == bool else pl.Series(values)).alias(name)
            for name, values in sim_tables.session_bars(self).items()
        )

    def daily_quotes(self, start: dt.date | None = None, end: dt.date | None = None, code: str | None = None) -> pl.DataFrame:
        frame = date_slice(self._quotes, "Date", start, end)
        return frame if code is None else frame.filter(pl.col("Code") == code)

    @cached_property
    def _topix(self) -> pl.DataFrame:
        ix = self._indices
        return pl.DataFrame({"Date": _date_series(self.days, "Date"), "Open": ix["topix_open"], "High": ix["topix_high"],
                             "Low": ix["topix_low"], "Close": ix["topix_close"]})

    def topix(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        return date_slice(self._topix, "Date", start, end)

    def trading_calendar(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """Every calendar day in [start, end] (default: the simulated span) within the offline calendar:
        HolidayDivision "1" business day, "0" non-business day, "3" non-business day with derivatives
        holiday trading (weekday holidays from 2022-09-23, except 31 Dec - 3 Jan). The calendar is public
        ahead of time, so it is not limited to the simulated span when dates are given."""
        first, last = cal.calendar_bounds()
        lo, hi = max(start or self.start, first), min(end or self.end, last)
        if hi < lo:
            return pl.DataFrame(schema={"Date": pl.Date, "HolidayDivision": pl.Utf8})
        all_days = pl.date_range(lo, hi, interval="1d", eager=True).alias("Date")
        business = pl.Series(cal.business_days(lo, hi), dtype=pl.Date)
        d = pl.col("Date")
        new_year = ((d.dt.month() == 12) & (d.dt.day() == 31)) | ((d.dt.month() == 1) & (d.dt.day() <= 3))
        holiday_trading = (d >= HOLIDAY_TRADING_FROM) & (d.dt.weekday() <= 5) & ~new_year
        return pl.DataFrame({"Date": all_days}).with_columns(
            pl.when(d.is_in(business)).then(pl.lit("1")).when(holiday_trading).then(pl.lit("3"))
            .otherwise(pl.lit("0")).alias("HolidayDivision")
        )

    @cached_property
    def _statements(self) -> pl.DataFrame:
        return _build_statements(self)

    def statements(self, start: dt.date | None = None, end: dt.date | None = None, code: str | None = None) -> pl.DataFrame:
        """fins/statements rows by DisclosedDate in [start, end], sorted (DisclosedDate, DisclosedTime, LocalCode)."""
        frame = date_slice(self._statements, "DisclosedDate", start, end)
        return frame if code is None else frame.filter(pl.col("LocalCode") == code)

    # ------------------------------------------------------------------ market-data tables (sim_tables)
    @cached_property
    def _tables(self) -> dict[str, pl.DataFrame]:
        return {}

    def _table(self, source: str, start: dt.date | None, end: dt.date | None, **equal: str | None) -> pl.DataFrame:
        """Rows of a sim_tables table by its date column in [start, end], filtered on column == value."""
        from gogoku.jquants.endpoints import ENDPOINTS

        date_col = ENDPOINTS[source].date_column
        if source not in self._tables:
            self._tables[source] = getattr(sim_tables, source)(self).sort(date_col, maintain_order=True)
        frame = date_slice(self._tables[source], date_col, start, end)
        for column, value in equal.items():
            if value is not None:
                frame = frame.filter(pl.col(column) == value)
        return frame

    def trades_spec(self, start: dt.date | None = None, end: dt.date | None = None,
                    section: str | None = None) -> pl.DataFrame:
        """markets/trades_spec: weekly investor-type flows per section, by PublishedDate."""
        return self._table("trades_spec", start, end, Section=section)

    def weekly_margin_interest(self, start: dt.date | None = None, end: dt.date | None = None,
                               code: str | None = None) -> pl.DataFrame:
        """markets/weekly_margin_interest by Date (the week's last session), published rows only."""
        return self._table("weekly_margin_interest", start, end, Code=code)

    def daily_margin_interest(self, start: dt.date | None = None, end: dt.date | None = None,
                              code: str | None = None) -> pl.DataFrame:
        """markets/daily_margin_interest by PublishedDate, PublishReason flattened to PublishReason_* columns."""
        return self._table("daily_margin_interest", start, end, Code=code)

    def short_selling(self, start: dt.date | None = None, end: dt.date | None = None,
                      sector33: str | None = None) -> pl.DataFrame:
        """markets/short_selling: per Date and Sector33Code."""
        return self._table("short_selling", start, end, Sector33Code=sector33)

    def short_selling_positions(self, start: dt.date | None = None, end: dt.date | None = None,
                                code: str | None = None, calculated: dt.date | None = None) -> pl.DataFrame:
        """markets/short_selling_positions by DisclosedDate (optionally one CalculatedDate)."""
        frame = self._table("short_selling_positions", start, end, Code=code)
        return frame if calculated is None else frame.filter(pl.col("CalculatedDate") == calculated)

    def announcement(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """fins/announcement: the scheduled statement dates (Date), visible from 19:00 the business day before."""
        return self._table("announcement", start, end)

    def indices(self, start: dt.date | None = None, end: dt.date | None = None, code: str | None = None) -> pl.DataFrame:
        """indices: TOPIX, size, sector and market-segment indices by Date."""
        return self._table("indices", start, end, Code=code)

    def prices_am(self, start: dt.date | None = None, end: dt.date | None = None, code: str | None = None) -> pl.DataFrame:
        """prices/prices_am: morning-session bars by Date (the simulator serves every session)."""
        return self._table("prices_am", start, end, Code=code)

    def breakdown(self, start: dt.date | None = None, end: dt.date | None = None, code: str | None = None) -> pl.DataFrame:
        """markets/breakdown: volume and value by trade type, by Date."""
        return self._table("breakdown", start, end, Code=code)

    def dividend(self, start: dt.date | None = None, end: dt.date | None = None, code: str | None = None) -> pl.DataFrame:
        """fins/dividend by AnnouncementDate."""
        return self._table("dividend", start, end, Code=code)

    @cached_property
    def _derivative_indices(self) -> dict[str, dict[str, np.ndarray]]:
        from gogoku.jquants import sim_derivatives

        return sim_derivatives.underlying_indices(self)

    @cached_property
    def _futures(self) -> pl.DataFrame:
        from gogoku.jquants import sim_derivatives

        return sim_derivatives.build_futures(self, self._derivative_indices)

    def futures(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """derivatives/futures rows (TOPIXF, NK225F, JN400F, REITF) by Date in [start, end], sorted (Date, Code)."""
        return date_slice(self._futures, "Date", start, end)

    @cached_property
    def _index_option(self) -> pl.DataFrame:
        from gogoku.jquants import sim_derivatives

        return sim_derivatives.build_index_options(self, self._derivative_indices)

    def index_option(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """option/index_option rows (Nikkei 225 options) by Date in [start, end], sorted (Date, Code)."""
        return date_slice(self._index_option, "Date", start, end)

    def options(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """derivatives/options rows: the Nikkei 225 series (category NK225E; no morning session, the
        nearest contract month flagged central), by Date in [start, end], sorted (Date, Code)."""
        from gogoku.jquants.endpoints import OPTIONS

        frame = self.index_option(start, end)
        nearest = pl.col("ContractMonth") == pl.col("ContractMonth").min().over("Date")
        return frame.with_columns(
            pl.lit("NK225E").alias("DerivativesProductCategory"),
            *[pl.lit(None, dtype=pl.Float64).alias(f"MorningSession{k}") for k in ("Open", "High", "Low", "Close")],
            pl.lit("-").alias("UnderlyingSSO"),
            pl.when(nearest).then(pl.lit("1")).otherwise(pl.lit("0")).alias("CentralContractMonthFlag"),
        ).select(list(OPTIONS.schema))

    def _contribution(self, family: str) -> np.ndarray:
        """(T, N) float32: the family's part of mu for the next session, fixed at each session's close."""
        p = self.paths
        z = {"reversal": p.z_rev, "momentum": p.z_mom, "quality": p.z_qual, "leadlag": p.z_lead}.get(family)
        if z is None:
            z = self._published[family]
        return (KAPPA * WEIGHTS[family] / NORM) * p.sigma_next * z

    @cached_property
    def _truth(self) -> pl.DataFrame:
        n, t_len = self.n_stocks, len(self.days)
        listed = self._listed_mask.T.ravel()
        contrib = {f: self._contribution(f) for f in FAMILIES}
        cols: dict[str, np.ndarray] = {}
        for h in HORIZONS:
            decay = _decay_weights(h)
            total = sum(decay[f] * contrib[f].astype(float) for f in FAMILIES)
            cols[f"exp_ret_{h}d"] = total.T.ravel()[listed]
        for f in FAMILIES:
            cols[f"contrib_{f}_1d"] = contrib[f].T.ravel()[listed]
        return pl.DataFrame({
            "Code": pl.Series(self.universe.codes, dtype=pl.Utf8).gather(np.repeat(np.arange(n), t_len)).filter(listed),
            "Date": _date_series(self.days, "Date").gather(np.tile(np.arange(t_len), n)).filter(listed),
            **cols,
        })

    def truth(self) -> pl.DataFrame:
        """The planted expected returns per listed (Code, Date), sorted (Code, Date); for evaluation only.

        exp_ret_1d at (Code, Date) is mu for the next session, fixed at Date's close from information
        public by then; contrib_{family}_1d are its parts (they sum to it). exp_ret_{h}d is the sum of
        the next h daily expectations holding the volatility state and cross-sectional scales fixed: the
        reversal term fades linearly over 5 sessions as its window rolls off, momentum over 60, quality,
        lead-lag and post-earnings drift decay at their rates, and the weekly margin and flow terms at
        their weekly AR(1) persistence.
        """
        return self._truth

    def peers(self) -> pl.DataFrame:
        """The latent lead-lag graph (evaluation only): each Code follows the past returns of its PeerCodes."""
        leaders = self.life.leaders
        codes = self.universe.codes
        return pl.DataFrame({"Code": np.repeat(codes, leaders.shape[1]), "PeerCode": codes[leaders.ravel()]})

    def signal_strengths(self) -> pl.DataFrame:
        """Per planted family: its weight, its share of the 1d signal variance, and the oracle mean daily
        RankIC at 1d of its contribution alone against the realized next-session return (days with >= 20
        listed names); a last row `total` holds exp_ret_1d."""
        p = self.paths
        nxt = np.full(p.close.shape, np.nan)
        nxt[:-1] = p.close[1:] / (p.close[:-1] * p.factor[1:]) - 1
        valid = self._listed_mask & np.vstack([self._listed_mask[1:], np.zeros((1, self.n_stocks), bool)])
        contrib = {f: self._contribution(f) for f in FAMILIES}
        contrib["total"] = sum(c.astype(float) for c in contrib.values())
        variances = {f: float(np.var(c[valid])) for f, c in contrib.items()}
        keep = valid & np.isfinite(nxt)
        rows_ok = keep.sum(axis=1) >= 20
        realized = _centered_ranks(np.where(keep, nxt, np.nan)[rows_ok])
        total_var = sum(variances[f] for f in FAMILIES) or 1.0
        rows = []
        for f, c in contrib.items():
            rows.append({
                "family": f,
                "weight": WEIGHTS.get(f, NORM),
                "variance_share": variances[f] / total_var if f != "total" else 1.0,
                "rank_ic_1d": _mean_rank_ic(np.where(keep, c, np.nan)[rows_ok], realized),
            })
        return pl.DataFrame(rows)


def _centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks within each row minus the row's mean rank, 0 where x is NaN (ties broken by position)."""
    missing = np.isnan(x)
    ranks = np.argsort(np.argsort(np.where(missing, np.inf, x), axis=1), axis=1).astype(np.float32)
    counts = np.maximum((~missing).sum(axis=1, keepdims=True), 1)
    return np.where(missing, 0.0, ranks - (counts - 1) / 2).astype(np.float32)


def _mean_rank_ic(signal: np.ndarray, realized_ranks: np.ndarray) -> float:
    """Mean over rows of the Spearman correlation of signal with pre-ranked realized values."""
    if not len(signal):
        return float("nan")
    a = _centered_ranks(signal)
    num = (a * realized_ranks).sum(axis=1, dtype=np.float64)
    den = np.sqrt((a * a).sum(axis=1, dtype=np.float64) * (realized_ranks * realized_ranks).sum(axis=1, dtype=np.float64))
    return float(np.divide(num, den, out=np.zeros_like(num), where=den > 0).mean())


def date_slice(frame: pl.DataFrame, column: str, start: dt.date | None, end: dt.date | None) -> pl.DataFrame:
    """Rows of a frame sorted by `column` with start <= column <= end, by binary search."""
    col = frame[column]
    lo = 0 if start is None else int(col.search_sorted(start, side="left"))
    hi = frame.height if end is None else int(col.search_sorted(end, side="right"))
    return frame.slice(lo, max(hi - lo, 0))


def _month_start(month_index: np.ndarray) -> np.ndarray:
    """First day of each absolute month index (year * 12 + month - 1)."""
    return (np.asarray(month_index) - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]")


def _month_end(month_index: np.ndarray) -> np.ndarray:
    return _month_start(np.asarray(month_index) + 1) - np.timedelta64(1, "D")


def _build_statements(m: SimMarket) -> pl.DataFrame:
    """Quarterly summaries (1Q, 2Q, 3Q, FY) per listed stock, disclosed 33-50 days after each period end
    during the session (11:30, 13:00), at the close (15:00, 15:30 from 2024-11-05) or in the evening,
    and forecast revisions (TypeOfDocument EarnForecastRevision, forecasts only) between them.

    Sales and profits are cumulative from the fiscal-year start as in fins/summary; growth and margins
    load on the latent quality, so statements carry lagged, noisy information about it. IFRS filers
    leave OrdinaryProfit empty, as the real API does.
    """
    u, p, n = m.universe, m.paths, m.n_stocks
    # Month grid from 15 months before the start through the end; draws are month-major. A stock's
    # quarter ends are the months congruent to its fiscal-year-end month (mod 3) (see sim_signal).
    sch = m._schedule
    n_months = m.end.year * 12 + m.end.month - 1 - sch.month0 + 1
    z = m._rng("statements").standard_normal((n_months, n, 7))
    cols = np.arange(n)[None, :]
    k, qtype, period_end = sch.k, sch.qtype, sch.period_end
    j = np.arange(k.shape[0])[:, None]
    pe_mi = sch.month0 + k
    is_fy = qtype == 4
    d = z[k, cols]

    # State at each period end: the last session on or before it (the start state before the span).
    t_idx = np.searchsorted(m.days, period_end, side="right") - 1
    t_c = np.clip(t_idx, 0, len(m.days) - 1)
    quality = np.where(t_idx >= 0, p.quality[t_c, cols], u.quality0[None, :])
    shares = np.where(t_idx >= 0, m._shares[t_c, cols], u.shares0[None, :])

    growth = 0.03 + 0.05 * quality + 0.04 * d[..., 0]
    q_sales = np.exp(np.log(u.sales0 / 4)[None, :] + np.cumsum(growth / 4, axis=0) + 0.04 * d[..., 1])
    # The quarter's earnings surprise shifts its operating margin (and so the run-rate guidance).
    q_op = q_sales * (u.margin0[None, :] + 0.03 * quality + 0.015 * d[..., 2] + sim_signal.SURPRISE_MARGIN * sch.surprise)
    # Year-to-date sums: a quarter of type n covers quarters j-n+1..j of its fiscal year; the first,
    # partial fiscal year on the grid is not disclosed.
    fy_first, complete = sch.fy_first, sch.complete
    cs_sales = np.vstack([np.zeros((1, n)), np.cumsum(q_sales, axis=0)])
    cs_op = np.vstack([np.zeros((1, n)), np.cumsum(q_op, axis=0)])
    sales = cs_sales[j + 1, cols] - cs_sales[fy_first, cols]
    op = cs_op[j + 1, cols] - cs_op[fy_first, cols]
    odp = op * (1.03 + 0.02 * d[..., 3])
    profit = odp * 0.68 * (1 + 0.05 * d[..., 4])
    avg_shares = shares * (1 - u.treasury[None, :])
    total_assets = 4 * q_sales / u.asset_turnover[None, :]
    equity = total_assets * u.equity_ratio[None, :] * (1 + 0.02 * d[..., 5])
    # Guidance: quarters forecast the current year from the run rate; FY results guide the next year.
    forecast = np.where(is_fy, np.nan, sales * (4.0 / qtype) * (1 + 0.03 * d[..., 6]))
    next_forecast = np.where(is_fy, sales * (1.03 + 0.05 * quality + 0.03 * d[..., 6]), np.nan)

    disclosed, disc_time = sch.disclosed, sch.time
    keep = complete & (disclosed >= np.datetime64(m.start)) & (disclosed <= np.datetime64(m.end))
    keep &= (disclosed >= m.life.ipo[None, :]) & (disclosed < m.life.delist[None, :])
    jj, ii = np.nonzero(keep)
    pick = lambda a: a[jj, ii]  # noqa: E731
    fy_row, ifrs, qt, pe = pick(is_fy), u.ifrs[ii], pick(qtype), pick(pe_mi)
    fy_end = _month_end(pe + (4 - qt) * 3)
    fy_start = _month_end(pe - 3 * qt) + np.timedelta64(1, "D")
    nat = np.datetime64("NaT")
    period = np.where(fy_row, "FY", np.char.add(qt.astype(str), "Q"))
    disc = pick(disclosed)
    yen = lambda a: np.round(a, -6)  # noqa: E731  amounts in yen, reported to the million
    s, o, pr, sh, avg = pick(sales), pick(op), pick(profit), pick(shares), pick(avg_shares)
    f_sales, nx_sales = pick(forecast), pick(next_forecast)
    op_margin, profit_margin = o / s, pr / s
    no_odp = lambda a: np.where(ifrs, np.nan, a)  # noqa: E731
    frame = pl.DataFrame({
        "DisclosedDate": _date_series(disc, "DisclosedDate"),
        "DisclosedTime": pick(disc_time),
        "LocalCode": u.codes[ii],
        "DisclosureNumber": np.char.add(np.char.replace(np.datetime_as_string(disc), "-", ""), u.codes[ii]),
        "TypeOfDocument": np.char.add(np.char.add(period, "FinancialStatements_Consolidated_"), np.where(ifrs, "IFRS", "JP")),
        "TypeOfCurrentPeriod": period,
        "CurrentPeriodStartDate": _date_series(fy_start, "CurrentPeriodStartDate"),
        "CurrentPeriodEndDate": _date_series(pick(period_end), "CurrentPeriodEndDate"),
        "CurrentFiscalYearStartDate": _date_series(fy_start, "CurrentFiscalYearStartDate"),
        "CurrentFiscalYearEndDate": _date_series(fy_end, "CurrentFiscalYearEndDate"),
        "NextFiscalYearStartDate": _date_series(np.where(fy_row, fy_end + np.timedelta64(1, "D"), nat), "NextFiscalYearStartDate"),
        "NextFiscalYearEndDate": _date_series(np.where(fy_row, _month_end(pe + 12), nat), "NextFiscalYearEndDate"),
        "NetSales": yen(s),
        "OperatingProfit": yen(o),
        "OrdinaryProfit": no_odp(yen(pick(odp))),
        "Profit": yen(pr),
        "EarningsPerShare": np.round(pr / avg, 2),
        "TotalAssets": yen(pick(total_assets)),
        "Equity": yen(pick(equity)),
        "EquityToAssetRatio": np.round(pick(equity) / pick(total_assets), 3),
        "BookValuePerShare": np.round(pick(equity) / avg, 2),
        "ForecastNetSales": yen(f_sales),
        "ForecastOperatingProfit": yen(f_sales * op_margin),
        "ForecastOrdinaryProfit": no_odp(yen(f_sales * op_margin * 1.03)),
        "ForecastProfit": yen(f_sales * profit_margin),
        "ForecastEarningsPerShare": np.round(f_sales * profit_margin / avg, 2),
        "NextYearForecastNetSales": yen(nx_sales),
        "NextYearForecastOperatingProfit": yen(nx_sales * op_margin),
        "NextYearForecastOrdinaryProfit": no_odp(yen(nx_sales * op_margin * 1.03)),
        "NextYearForecastProfit": yen(nx_sales * profit_margin),
        "NextYearForecastEarningsPerShare": np.round(nx_sales * profit_margin / avg, 2),
        "NumberOfIssuedAndOutstandingSharesAtTheEndOfFiscalYearIncludingTreasuryStock": sh,
        "NumberOfTreasuryStockAtTheEndOfFiscalYear": np.round(sh * u.treasury[ii]),
        "AverageNumberOfShares": np.round(avg),
    }, nan_to_null=True)
    grids = {"qtype": qtype, "month": k, "profit": profit, "avg_shares": avg_shares, "forecast": forecast,
             "next_forecast": next_forecast}
    frame = frame.hstack(pl.DataFrame(_summary_extras(m, n_months, grids, jj, ii, frame), nan_to_null=True))
    # Forecast revisions between statements: the guidance in force (this year's, or the next year's after
    # an FY statement) moves with the revision's surprise; actuals stay empty.
    rev_keep = sch.rev & (sch.rev_disclosed >= np.datetime64(m.start)) & (sch.rev_disclosed <= np.datetime64(m.end))
    rev_keep &= (sch.rev_disclosed >= m.life.ipo[None, :]) & (sch.rev_disclosed < m.life.delist[None, :])
    rj, ri = np.nonzero(rev_keep)
    at = lambda a: a[rj, ri]  # noqa: E731
    r_fy, r_pe, r_qt = at(is_fy), at(pe_mi), at(qtype)
    r_fy_end = np.where(r_fy, _month_end(r_pe + 12), _month_end(r_pe + (4 - r_qt) * 3))
    r_fy_start = np.where(r_fy, _month_end(r_pe), _month_end(r_pe - 3 * r_qt)) + np.timedelta64(1, "D")
    guide = np.where(r_fy, at(next_forecast), at(forecast))
    shock = at(sch.rev_surprise)
    r_sales = guide * (1 + 0.03 * shock)
    r_op = guide * at(op) / at(sales) * (1 + 0.10 * shock)
    r_profit = guide * at(profit) / at(sales) * (1 + 0.10 * shock)
    r_disc = at(sch.rev_disclosed)
    r_ifrs = u.ifrs[ri]
    revisions = pl.DataFrame({
        "DisclosedDate": _date_series(r_disc, "DisclosedDate"),
        "DisclosedTime": at(sch.rev_time),
        "LocalCode": u.codes[ri],
        "DisclosureNumber": np.char.add(np.char.replace(np.datetime_as_string(r_disc), "-", ""), u.codes[ri]),
        "TypeOfDocument": np.full(len(ri), "EarnForecastRevision"),
        "TypeOfCurrentPeriod": np.full(len(ri), "FY"),
        "CurrentPeriodStartDate": _date_series(r_fy_start, "CurrentPeriodStartDate"),
        "CurrentPeriodEndDate": _date_series(r_fy_end, "CurrentPeriodEndDate"),
        "CurrentFiscalYearStartDate": _date_series(r_fy_start, "CurrentFiscalYearStartDate"),
        "CurrentFiscalYearEndDate": _date_series(r_fy_end, "CurrentFiscalYearEndDate"),
        "ForecastNetSales": yen(r_sales),
        "ForecastOperatingProfit": yen(r_op),
        "ForecastOrdinaryProfit": np.where(r_ifrs, np.nan, yen(r_op * 1.03)),
        "ForecastProfit": yen(r_profit),
        "ForecastEarningsPerShare": np.round(r_profit / at(avg_shares), 2),
    }, nan_to_null=True)
    frame = pl.concat([frame, revisions], how="diagonal_relaxed")

    def column(name: str, dtype: type[pl.DataType]) -> pl.Expr:
        """Every documented field, typed; one a row lacks is "" on the wire, so a null number or date and
        a "" string in typed frames (as the client reads the wire)."""
        col = (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype)
        return (col.fill_null("") if dtype == pl.Utf8 else col).alias(name)

    frame = frame.select([column(c, t) for c, t in STATEMENTS.schema.items()])
    return frame.sort("DisclosedDate", "DisclosedTime", "LocalCode")


_SUMMARY_KEY = 0x53554D  # spawn-key prefix of the summary extras' streams: apart from every other stream
# From this disclosure date the summaries report SignificantChangesInTheScopeOfConsolidation instead of
# MaterialChangesInSubsidiaries (the quarterly-disclosure reform).
SCOPE_FLAG_FROM = np.datetime64("2024-07-22")


def _summary_rng(m: SimMarket, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(m.seed, spawn_key=(_SUMMARY_KEY, stream)))


def _summary_extras(m: SimMarket, n_months: int, grids: dict[str, np.ndarray], jj: np.ndarray, ii: np.ndarray,
                    core: pl.DataFrame) -> dict[str, np.ndarray]:
    """The fins/summary fields beyond the core P&L, balance sheet and forecasts, for the statements at
    grid cells (jj, ii) whose core columns are `core` (v1 names; NaN = empty).

    Derived from the core figures, with per-stock traits and per-month flag draws from streams of their
    own (`_summary_rng`: no draw of another stream changes): diluted EPS a little below EPS for about
    45% of the issuers; cash flows at 2Q and FY; dividends as `sim_tables.dividend` pays them (interim
    from the half-year EPS, final from the full year's) with forecasts from the forecast EPS; first-half
    forecasts at 1Q (this year) and FY (next year); non-consolidated results and owners' equity and ROE
    at FY; accounting-change flags, mostly "false".
    """
    u = m.universe
    traits = _summary_rng(m, 0).random((m.n_stocks, 10))[ii]
    draws = _summary_rng(m, 1).random((n_months, m.n_stocks, 5))[grids["month"][jj, ii], ii]
    qt = grids["qtype"][jj, ii]
    fy, q1, cash_flow = qt == 4, qt == 1, (qt == 2) | (qt == 4)
    col = lambda name: core[name].fill_null(np.nan).to_numpy().astype(float)  # noqa: E731
    sales, op, profit, eps = col("NetSales"), col("OperatingProfit"), col("Profit"), col("EarningsPerShare")
    assets, equity, avg = col("TotalAssets"), col("Equity"), col("AverageNumberOfShares")
    outstanding = col("NumberOfIssuedAndOutstandingSharesAtTheEndOfFiscalYearIncludingTreasuryStock") - col(
        "NumberOfTreasuryStockAtTheEndOfFiscalYear")
    feps, nx_eps = col("ForecastEarningsPerShare"), col("NextYearForecastEarningsPerShare")
    ifrs = u.ifrs[ii]
    nan = np.full(len(ii), np.nan)
    yen = lambda a: np.round(a, -6)  # noqa: E731  amounts in yen, reported to the million
    dps = lambda e: np.maximum(np.round(0.3 * e / 2 * 2) / 2, 0)  # noqa: E731  as sim_tables.dividend pays

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, np.round(num / den, 3), np.nan)

    # The interim dividend is paid on the half-year EPS of the same fiscal year (its 2Q cell).
    eps_grid = np.round(grids["profit"] / grids["avg_shares"], 2)
    interim = np.where(qt >= 2, dps(eps_grid[np.where(qt >= 2, jj - (qt - 2), jj), ii]), nan)
    final = np.where(fy, dps(eps), nan)
    annual = interim + final
    f_div_2q = np.where(q1, dps(feps / 2), nan)
    f_div_fy = np.where(qt == 2, interim, dps(feps))  # at 2Q the final is forecast at the interim's level
    f_div_ann = np.where(q1, f_div_2q, interim) + f_div_fy
    nx_div_2q, nx_div_fy = dps(nx_eps / 2), dps(nx_eps)
    cfo = np.where(cash_flow, yen(op * (1.05 + 0.3 * traits[:, 0])), nan)
    # First-half forecasts: this year's at 1Q, next year's with the FY results, at the margins in force.
    half = 0.48 + 0.04 * traits[:, 1]
    op_margin, np_margin = op / sales, profit / sales
    h_sales = np.where(q1, grids["forecast"][jj, ii], grids["next_forecast"][jj, ii]) * half
    h_sales = np.where(q1 | fy, h_sales, nan)
    first_half = {
        "NetSales2ndQuarter": yen(h_sales), "OperatingProfit2ndQuarter": yen(h_sales * op_margin),
        "OrdinaryProfit2ndQuarter": np.where(ifrs, np.nan, yen(h_sales * op_margin * 1.03)),
        "Profit2ndQuarter": yen(h_sales * np_margin),
        "EarningsPerShare2ndQuarter": np.round(h_sales * np_margin / avg, 2),
    }
    # Non-consolidated (parent-only, Japanese GAAP even for IFRS groups) results at FY.
    parent = np.where(fy, 0.35 + 0.45 * traits[:, 2], np.nan)
    nc_sales, nc_op, nc_np = yen(sales * parent), yen(op * parent * 0.9), yen(profit * parent * 0.95)
    nc_assets, nc_equity = yen(assets * (0.45 + 0.3 * parent)), yen(equity * (0.5 + 0.4 * parent))
    owners_equity = yen(equity * (0.95 + 0.04 * traits[:, 3]))
    nc_owners_equity = yen(nc_equity * 0.995)
    flag = lambda b: np.where(b, "true", "false")  # noqa: E731
    scope_form = core["DisclosedDate"].to_numpy().astype("datetime64[D]") >= SCOPE_FLAG_FROM
    return {
        "DilutedEarningsPerShare": np.where((traits[:, 4] < 0.45) & (eps > 0),
                                            np.round(eps * (1 - 0.002 - 0.01 * traits[:, 5]), 2), nan),
        "CashFlowsFromOperatingActivities": cfo,
        "CashFlowsFromInvestingActivities": yen(-np.abs(cfo) * (0.4 + 0.5 * traits[:, 6])),
        "CashFlowsFromFinancingActivities": yen(-np.abs(cfo) * (0.1 + 0.4 * traits[:, 7])),
        "CashAndEquivalents": np.where(cash_flow, yen(assets * (0.06 + 0.14 * traits[:, 8])), nan),
        "ResultDividendPerShare2ndQuarter": interim, "ResultDividendPerShareFiscalYearEnd": final,
        "ResultDividendPerShareAnnual": annual, "ResultTotalDividendPaidAnnual": yen(annual * outstanding),
        "ResultPayoutRatioAnnual": ratio(annual, eps),
        "ForecastDividendPerShare2ndQuarter": f_div_2q, "ForecastDividendPerShareFiscalYearEnd": f_div_fy,
        "ForecastDividendPerShareAnnual": f_div_ann, "ForecastPayoutRatioAnnual": ratio(f_div_ann, feps),
        "NextYearForecastDividendPerShare2ndQuarter": nx_div_2q,
        "NextYearForecastDividendPerShareFiscalYearEnd": nx_div_fy,
        "NextYearForecastDividendPerShareAnnual": nx_div_2q + nx_div_fy,
        "NextYearForecastPayoutRatioAnnual": ratio(nx_div_2q + nx_div_fy, nx_eps),
        **{f"Forecast{k}": np.where(q1, v, nan) for k, v in first_half.items()},
        **{f"NextYearForecast{k}": np.where(fy, v, nan) for k, v in first_half.items()},
        "MaterialChangesInSubsidiaries": np.where(scope_form, "", flag(draws[:, 0] < 0.02)),
        "SignificantChangesInTheScopeOfConsolidation": np.where(scope_form, flag(draws[:, 0] < 0.02), ""),
        "ChangesBasedOnRevisionsOfAccountingStandard": flag(draws[:, 1] < 0.03),
        "ChangesOtherThanOnesBasedOnRevisionsOfAccountingStandard": flag(draws[:, 2] < 0.02),
        "ChangesInAccountingEstimates": flag(draws[:, 3] < 0.02),
        "RetrospectiveRestatement": flag(draws[:, 4] < 0.01),
        "NonConsolidatedNetSales": nc_sales, "NonConsolidatedOperatingProfit": nc_op,
        "NonConsolidatedOrdinaryProfit": yen(nc_op * 1.08), "NonConsolidatedProfit": nc_np,
        "NonConsolidatedEarningsPerShare": np.round(nc_np / avg, 2), "NonConsolidatedTotalAssets": nc_assets,
        "NonConsolidatedEquity": nc_equity, "NonConsolidatedEquityToAssetRatio": ratio(nc_equity, nc_assets),
        "NonConsolidatedBookValuePerShare": np.round(nc_equity / avg, 2),
        "ShareholdersEquity": owners_equity, "NonConsolidatedShareholdersEquity": nc_owners_equity,
        "ReturnOnEquity": np.where(fy, ratio(profit, owners_equity), nan),
        "NonConsolidatedReturnOnEquity": ratio(nc_np, nc_owners_equity),
    }
