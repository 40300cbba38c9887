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
  families from `gogoku.sim.signal`: post-earnings drift, weekly margin imbalance and foreign flows per
  section, each entering only from the session its publication becomes usable. KAPPA sets the oracle
  daily RankIC near 0.05; `signal_strengths()` reports each family's share and oracle RankIC.
- Prices live on the tick grid inside the daily limit band (UpperLimit/LowerLimit flag a touch);
  splits change raw prices on the ex-date with AdjustmentFactor = 1/ratio, and Adjustment* columns are
  back-adjusted to `end`, as J-Quants recomputes them after each split.

Determinism: every random stream is drawn session-major (or month-major) from its own SeedSequence
child, so the same seed gives the same rows for the dates two markets share, whatever their `end`.
Listings, delistings and segment changes (`signal.build_lifecycle`) are drawn relative to `start`;
quotes, listings and the truth hold only listed (Code, Date) pairs.

SimMarket is the orchestrator: it draws the universe and the price paths, and caches the derived state
that the generator modules read through `base.MarketState` (its public attributes and methods). Those
modules build the rest: the statements (`gogoku.sim.statements`), the other market-data tables (margin,
flows, short selling, indices, calendar of earnings, morning bars, breakdown, dividends:
`gogoku.sim.tables`, which also states their publication schedules), the index derivatives
(`gogoku.sim.derivatives`) and the ground truth (`gogoku.sim.oracle`). The model's parameters live in
`gogoku.sim.base`.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import cached_property

import numpy as np
import polars as pl

from gogoku import calendar as cal
from gogoku.errors import InputError
from gogoku.jquants.endpoints import ENDPOINTS, OPTIONS
from gogoku.sim import derivatives, oracle, tables
from gogoku.sim.base import (
    IDIO_GARCH,
    KAPPA,
    LEAD_DECAY,
    MARGINS,
    MARKET_CODES,
    MARKET_NAMES,
    MARKETS,
    MKT_DRIFT,
    MKT_GARCH,
    MKT_VOL,
    MOM_DAYS,
    NORM,
    PEAD_JUMP,
    PHI_QUALITY,
    REORG_DATE,
    REV_DAYS,
    SECTOR17_NAMES,
    SECTOR_VOL,
    SECTORS33,
    TOPIX_NEW,
    TOPIX_OLD,
    W_MOM,
    W_QUAL,
    W_REV,
    WEIGHTS,
    Lifecycle,
    Paths,
    StatementSchedule,
    Universe,
    Weeks,
    cs_z,
    date_series,
    date_slice,
    dates_np,
    index_ohlc,
    limit_width,
    on_grid,
    tick_size,
)
from gogoku.sim.signal import (
    build_lifecycle,
    build_statement_schedule,
    build_weeks,
    published_signals,
    weekly_latents,
)
from gogoku.sim.statements import build_statements

# Company names: a stem, the sector's word and a suffix.
_STEMS: tuple[tuple[str, str], ...] = (
    ("日本", "Nippon"), ("東洋", "Toyo"), ("大和", "Daiwa"), ("富士", "Fuji"), ("北陸", "Hokuriku"),
    ("中央", "Chuo"), ("関東", "Kanto"), ("旭", "Asahi"), ("新光", "Shinko"), ("東邦", "Toho"),
    ("昭和", "Showa"), ("大同", "Daido"), ("太平", "Taihei"), ("明治", "Meiji"), ("光", "Hikari"),
    ("丸三", "Marusan"), ("協和", "Kyowa"), ("第一", "Daiichi"), ("共栄", "Kyoei"), ("千代田", "Chiyoda"),
    ("中部", "Chubu"), ("九州", "Kyushu"), ("東北", "Tohoku"), ("瑞穂", "Mizuho"), ("桜", "Sakura"),
    ("若葉", "Wakaba"), ("三星", "Mitsuboshi"), ("山陽", "Sanyo"), ("北斗", "Hokuto"), ("朝日", "Asahi"),
)
_SUFFIXES: tuple[tuple[str, str], ...] = (("", "Co.,Ltd."), ("ホールディングス", "Holdings,Inc."),
                                          ("工業", "Industries,Ltd."))

HOLIDAY_TRADING_FROM = dt.date(2022, 9, 23)  # JPX derivatives trade on most weekday holidays since
_CHUNK = 256  # sessions drawn per batch (bounded memory; draws stay session-major)
# The named random streams, in SeedSequence spawn order (appending keeps every existing stream's draws).
STREAMS = ("static", "market", "sector", "idio", "ohlc", "volume", "events", "quality", "statements", "disclosure",
           "futures", "lifecycle", "surprise", "margin", "flow", "tables", "revision")
_SPLIT_RATIOS = np.array([2.0, 3.0, 4.0, 5.0, 10.0])
_SPLIT_CUM = np.cumsum([0.5, 0.2, 0.1, 0.15, 0.05])


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
        self.days = dates_np(days)
        children = np.random.SeedSequence(seed).spawn(len(STREAMS))
        self.seeds: dict[str, np.random.SeedSequence] = dict(zip(STREAMS, children, strict=True))

    def rng(self, stream: str) -> np.random.Generator:
        """A fresh generator on the named stream (one of STREAMS): the same draws on every call."""
        return np.random.default_rng(self.seeds[stream])

    # ------------------------------------------------------------------ generation
    @cached_property
    def universe(self) -> Universe:
        """The stocks' static traits: codes, sectors, segments, names, prices, volatilities, fundamentals."""
        rng = self.rng("static")
        n = self.n_stocks
        weights = np.array([s[3] for s in SECTORS33], dtype=float)
        sector = np.sort(rng.choice(len(SECTORS33), size=n, p=weights / weights.sum()))
        codes4 = np.sort(rng.choice(np.arange(1301, 9999), size=n, replace=False))
        # Codes follow sectors (the securities code plan), except for a fifth reassigned at random.
        moved = rng.choice(n, size=n // 5, replace=False)
        sector[moved] = sector[rng.permutation(moved)]
        log_cap = np.clip(rng.normal(np.log(5e10), 1.6, n), np.log(2e9), np.log(3e13))
        price0 = np.clip(np.exp(rng.normal(np.log(1500), 0.8, n)), 80, 60000)
        price0 = on_grid(price0)
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
        words = list(zip(stem, sector, suffix, strict=True))
        name_jp = np.array([_STEMS[a][0] + SECTORS33[s][4] + _SUFFIXES[b][0] for a, s, b in words])
        name_en = np.array([f"{_STEMS[a][1]} {SECTORS33[s][5]} {_SUFFIXES[b][1]}" for a, s, b in words])
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
        return Universe(
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
    def paths(self) -> Paths:
        """The daily paths (prices on the tick grid, limits, volumes, splits) and the signal's state."""
        u = self.universe
        n, t_len = self.n_stocks, len(self.days)
        rng = {s: self.rng(s) for s in ("market", "sector", "idio", "ohlc", "volume", "events", "quality")}
        f64 = lambda: np.empty((t_len, n))  # noqa: E731
        f32 = lambda: np.empty((t_len, n), dtype=np.float32)  # noqa: E731
        o, h, lo_, c, vol, tv, fac = f64(), f64(), f64(), f64(), f64(), f64(), f64()
        upper, lower = np.zeros((t_len, n), bool), np.zeros((t_len, n), bool)
        qual, sig_next, z_rev, z_mom, z_qual, z_lead = f32(), f32(), f32(), f32(), f32(), f32()
        published = self.published
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
                eps = sig * (zi[j] + PEAD_JUMP * jump[t])
                r = mu + common + eps
                # Splits follow high prices; reverse splits (10:1 consolidations) follow very low ones.
                u_split, u_ratio = ue[j, 0], ue[j, 1]
                split = (u_split < np.where(prev_close >= 5000, 8e-4, 1.2e-4)) & (t > 0)
                consolidate = (u_split > 1 - 3e-4) & (prev_close < 80) & (t > 0)
                ratio = np.where(split, _SPLIT_RATIOS[np.searchsorted(_SPLIT_CUM, u_ratio * _SPLIT_CUM[-1])],
                                 np.where(consolidate, 0.1, 1.0))
                base = prev_close / ratio
                ref = on_grid(base)
                width = limit_width(ref)
                hi_px, lo_px = ref + width, np.maximum(ref - width, tick_size(ref))
                close = np.clip(on_grid(np.clip(base * (1 + r), lo_px, hi_px)), lo_px, hi_px)
                open_ = np.clip(on_grid(np.clip(base * (1 + 0.5 * common + 0.35 * sig * zo[j, 0]), lo_px, hi_px)),
                                lo_px, hi_px)
                top, bottom = np.maximum(open_, close), np.minimum(open_, close)
                high = np.maximum(np.minimum(on_grid(top * (1 + 0.6 * sig * np.abs(zo[j, 1])), "ceil"), hi_px), top)
                low = np.minimum(np.maximum(on_grid(bottom * (1 - 0.6 * sig * np.abs(zo[j, 2])), "floor"), lo_px),
                                 bottom)
                r_real = close / base - 1
                shares = shares * ratio
                log_vol = 0.75 * log_vol + 0.4 * zv[j]
                activity = np.exp(log_vol + 0.5 * np.abs(r_real) / u.idio_vol)
                volume = np.maximum(np.round(shares * u.turnover * activity / 100) * 100, 100)
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
                zr = cs_z(-rev_sum / (sig1 * math.sqrt(min(t + 1, REV_DAYS))))
                zmo = cs_z(mom_sum / (sig1 * math.sqrt(min(t + 1, MOM_DAYS))))
                zqu = cs_z(q)
                lead_state = LEAD_DECAY * lead_state + (idio / sig)[leaders].mean(axis=1)
                zle = cs_z(lead_state)
                pub = sum(w * published[f][t] for f, w in w_pub.items())
                mu = KAPPA * sig1 * (W_REV * zr + W_MOM * zmo + W_QUAL * zqu + WEIGHTS["leadlag"] * zle + pub) / NORM
                qual[t], sig_next[t], z_rev[t], z_mom[t], z_qual[t], z_lead[t] = q, sig1, zr, zmo, zqu, zle
                prev_close = close
        return Paths(open=o, high=h, low=lo_, close=c, upper=upper, lower=lower, volume=vol, turnover=tv,
                      factor=fac, quality=qual, sigma_next=sig_next, z_rev=z_rev, z_mom=z_mom, z_qual=z_qual,
                      z_lead=z_lead)

    @cached_property
    def shares(self) -> np.ndarray:
        """Shares outstanding (incl. treasury) per session; splits multiply them on the ex-date."""
        return self.universe.shares0 / np.cumprod(self.paths.factor, axis=0)

    # ------------------------------------------------------------------ life cycle and publications
    @cached_property
    def life(self) -> Lifecycle:
        """Listings, delistings, segment changes and the peer graph (`signal.build_lifecycle`)."""
        return build_lifecycle(self)

    @cached_property
    def listed_mask(self) -> np.ndarray:
        """(T, N) bool: the code is listed (and quoted) on the session."""
        return self.life.listed_at(self.days)

    @cached_property
    def market_idx(self) -> np.ndarray:
        """(T, N) index into MARKET_CODES of each code's market on each session."""
        return self.life.market_at(self.days)

    @cached_property
    def weeks(self) -> Weeks:
        """The weekly grid of record and publication dates (`signal.build_weeks`)."""
        return build_weeks(self)

    @cached_property
    def weekly(self) -> tuple[np.ndarray, np.ndarray]:
        """(margin imbalance (W, N), foreign flow (W, section slots)) weekly latents."""
        return weekly_latents(self)

    @cached_property
    def schedule(self) -> StatementSchedule:
        """When each statement and forecast revision is disclosed, and its surprise."""
        return build_statement_schedule(self)

    @cached_property
    def published(self) -> dict[str, np.ndarray]:
        """(T, N) terms of the published-information families and the announcement jumps."""
        return published_signals(self)

    @cached_property
    def index_members(self) -> np.ndarray:
        """(T, N) bool: TOPIX constituents (1st section before the reorg, Prime + Standard after), from
        the session after listing."""
        listed = self.listed_mask
        listed_prev = np.vstack([listed[:1], listed[:-1]])
        reorg = (self.days >= np.datetime64(REORG_DATE))[:, None]
        mk = self.market_idx
        old = np.isin(mk, TOPIX_OLD)
        new = np.isin(mk, TOPIX_NEW)
        members = listed & listed_prev & np.where(reorg, new, old)
        empty = ~members.any(axis=1)
        members[empty] = listed[empty] | ~listed[empty].any(axis=1, keepdims=True)
        return members

    @cached_property
    def _indices(self) -> dict[str, np.ndarray]:
        """TOPIX (cap-weighted over `index_members`) and a price-weighted NK225 proxy: O/H/L/C per session."""
        u, p = self.universe, self.paths
        base = np.vstack([u.price0, p.close[:-1]]) * p.factor  # previous close in post-split terms
        rel = {k: getattr(p, k) / base for k in ("open", "high", "low", "close")}
        out: dict[str, np.ndarray] = {}
        cap_prev = np.vstack([u.price0 * u.shares0, (p.close * self.shares)[:-1]]) * self.index_members
        out.update(self._index_ohlc("topix", cap_prev / cap_prev.sum(1, keepdims=True), rel, u.topix0))
        prime = np.flatnonzero(u.market == "0111") if (u.market == "0111").any() else np.arange(self.n_stocks)
        top = prime[np.argsort(-(u.price0 * u.shares0)[prime])][:225]
        w = np.zeros_like(base)
        w[:, top] = base[:, top] * self.listed_mask[:, top]
        out.update(self._index_ohlc("nk225", w / w.sum(1, keepdims=True), rel, 12.5 * u.topix0))
        return out

    @staticmethod
    def _index_ohlc(name: str, w: np.ndarray, rel: dict[str, np.ndarray], level0: float) -> dict[str, np.ndarray]:
        ohlc = index_ohlc(w, rel, level0)
        return {f"{name}_{k}": np.round(ohlc[k], 2) for k in ("open", "high", "low", "close")}

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
        market = np.array(MARKET_CODES)[self.life.market_at(day)[0]]
        in_topix = np.isin(market, ("0101", "0111", "0112"))
        scale = np.where(in_topix, np.where(self.universe.scale == "-", "TOPIX Small 2", self.universe.scale), "-")
        frame = self._listed.with_columns(
            pl.Series("ScaleCategory", scale, dtype=pl.Utf8),
            pl.Series("MarketCode", market, dtype=pl.Utf8),
            pl.Series("MarketCodeName", [MARKET_NAMES[c] for c in market], dtype=pl.Utf8),
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
            "Date": date_series(self.days, "Date").gather(day_idx),
            "Code": pl.Series(self.universe.codes, dtype=pl.Utf8).gather(code_idx),
            "Open": p.open.ravel(), "High": p.high.ravel(), "Low": p.low.ravel(), "Close": p.close.ravel(),
            "UpperLimit": flag(p.upper), "LowerLimit": flag(p.lower),
            "Volume": p.volume.ravel(), "TurnoverValue": p.turnover.ravel(), "AdjustmentFactor": p.factor.ravel(),
            "AdjustmentOpen": (p.open * to_end).ravel(), "AdjustmentHigh": (p.high * to_end).ravel(),
            "AdjustmentLow": (p.low * to_end).ravel(), "AdjustmentClose": (p.close * to_end).ravel(),
            "AdjustmentVolume": (p.volume / to_end).ravel(),
        }).filter(pl.Series(self.listed_mask.ravel())).with_columns(
            # Premium's session fields; the listed rows above are in the same session-major order.
            (flag(values) if values.dtype == bool else pl.Series(values)).alias(name)
            for name, values in tables.session_bars(self).items()
        )

    def daily_quotes(self, start: dt.date | None = None, end: dt.date | None = None,
                     code: str | None = None) -> pl.DataFrame:
        """prices/daily_quotes by Date in [start, end], sorted (Date, Code)."""
        frame = date_slice(self._quotes, "Date", start, end)
        return frame if code is None else frame.filter(pl.col("Code") == code)

    @cached_property
    def _topix(self) -> pl.DataFrame:
        ix = self._indices
        return pl.DataFrame({"Date": date_series(self.days, "Date"), "Open": ix["topix_open"],
                             "High": ix["topix_high"], "Low": ix["topix_low"], "Close": ix["topix_close"]})

    def topix(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """indices/topix by Date in [start, end]."""
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
        return build_statements(self)

    def statements(self, start: dt.date | None = None, end: dt.date | None = None,
                   code: str | None = None) -> pl.DataFrame:
        """fins/statements rows by DisclosedDate in [start, end], sorted (DisclosedDate, DisclosedTime,
        LocalCode)."""
        frame = date_slice(self._statements, "DisclosedDate", start, end)
        return frame if code is None else frame.filter(pl.col("LocalCode") == code)

    # ------------------------------------------------------------------ market-data tables (gogoku.sim.tables)
    @cached_property
    def _tables(self) -> dict[str, pl.DataFrame]:
        return {}

    def _table(self, source: str, start: dt.date | None, end: dt.date | None, **equal: str | None) -> pl.DataFrame:
        """Rows of a `tables` table by its date column in [start, end], filtered on column == value."""
        date_col = ENDPOINTS[source].date_column
        if source not in self._tables:
            self._tables[source] = getattr(tables, source)(self).sort(date_col, maintain_order=True)
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
        """fins/announcement: the scheduled statement dates (Date), visible from 19:00 the business day
        before."""
        return self._table("announcement", start, end)

    def indices(self, start: dt.date | None = None, end: dt.date | None = None,
                code: str | None = None) -> pl.DataFrame:
        """indices: TOPIX, size, sector and market-segment indices by Date."""
        return self._table("indices", start, end, Code=code)

    def prices_am(self, start: dt.date | None = None, end: dt.date | None = None,
                  code: str | None = None) -> pl.DataFrame:
        """prices/prices_am: morning-session bars by Date (the simulator serves every session)."""
        return self._table("prices_am", start, end, Code=code)

    def breakdown(self, start: dt.date | None = None, end: dt.date | None = None,
                  code: str | None = None) -> pl.DataFrame:
        """markets/breakdown: volume and value by trade type, by Date."""
        return self._table("breakdown", start, end, Code=code)

    def dividend(self, start: dt.date | None = None, end: dt.date | None = None,
                 code: str | None = None) -> pl.DataFrame:
        """fins/dividend by AnnouncementDate."""
        return self._table("dividend", start, end, Code=code)

    @cached_property
    def derivative_indices(self) -> dict[str, dict[str, np.ndarray]]:
        """The derivatives' underlying indices per session (`derivatives.underlying_indices`)."""
        return derivatives.underlying_indices(self)

    @cached_property
    def _futures(self) -> pl.DataFrame:
        return derivatives.build_futures(self, self.derivative_indices)

    def futures(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """derivatives/futures rows (TOPIXF, NK225F, JN400F, REITF) by Date in [start, end], sorted (Date,
        Code)."""
        return date_slice(self._futures, "Date", start, end)

    @cached_property
    def _index_option(self) -> pl.DataFrame:
        return derivatives.build_index_options(self, self.derivative_indices)

    def index_option(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """option/index_option rows (Nikkei 225 options) by Date in [start, end], sorted (Date, Code)."""
        return date_slice(self._index_option, "Date", start, end)

    def options(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """derivatives/options rows: the Nikkei 225 series (category NK225E; no morning session, the
        nearest contract month flagged central), by Date in [start, end], sorted (Date, Code)."""
        frame = self.index_option(start, end)
        nearest = pl.col("ContractMonth") == pl.col("ContractMonth").min().over("Date")
        return frame.with_columns(
            pl.lit("NK225E").alias("DerivativesProductCategory"),
            *[pl.lit(None, dtype=pl.Float64).alias(f"MorningSession{k}") for k in ("Open", "High", "Low", "Close")],
            pl.lit("-").alias("UnderlyingSSO"),
            pl.when(nearest).then(pl.lit("1")).otherwise(pl.lit("0")).alias("CentralContractMonthFlag"),
        ).select(list(OPTIONS.schema))

    # ------------------------------------------------------------------ ground truth (gogoku.sim.oracle)
    @cached_property
    def _truth(self) -> pl.DataFrame:
        return oracle.build_truth(self)

    def truth(self) -> pl.DataFrame:
        """The planted expected returns per listed (Code, Date), sorted (Code, Date); for evaluation only
        (`oracle.build_truth` says what each column holds)."""
        return self._truth

    def peers(self) -> pl.DataFrame:
        """The latent lead-lag graph (evaluation only): each Code follows the past returns of its PeerCodes."""
        return oracle.peers(self)

    def signal_strengths(self) -> pl.DataFrame:
        """Per planted family: its weight, its share of the 1d signal variance and its oracle RankIC at 1d
        (`oracle.signal_strengths`); a last row `total` holds exp_ret_1d."""
        return oracle.signal_strengths(self)
