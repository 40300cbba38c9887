"""Simulated JPX index derivatives of a market (`base.MarketState`): index futures and Nikkei 225 options.

Underlying indices (one value per session, causal in the simulated paths):
- topix: the market's TOPIX.
- nk225: price-weighted over the most liquid Prime names (up to 225; liquidity = expected trading value).
- jpx400: cap-weighted over the next-most liquid Prime names (up to 400).
- reit: its own factor path, 0.35 x TOPIX's return plus noise scaled by the market's GARCH volatility.

Calendar (JPX rules): the special quotation day (SQ) is the second Friday of the contract month, or the
business day before it when that Friday is a holiday; the last trading day (LTD) is the business day
before SQ. Futures list the three nearest quarterly months (Mar/Jun/Sep/Dec); Nikkei 225 options list
the three nearest monthly contracts, strikes on the 125-yen grid within 6 % of the running
at-the-money range and on the 250-yen grid within 15 %.

Futures prices: index x exp(carry x time to SQ) x (1 + mispricing + noise), where carry = the yen short
rate (`interest_rate`) minus the product's dividend yield. The mispricing is a persistent AR(1) per product
whose loading tau / (tau + 0.1) fades to zero at SQ, and the day-to-day noise fades with it, so the basis
converges to zero at expiry; the months differ by their carry and loading, so the central price gaps at
each roll by the calendar spread. Open interest follows the roll cycle: the front month builds up over its
central quarter, the positions move to the next month over its last eight sessions, and what is left
expires, so the product's total OI collapses after each SQ; a slow AR(1) level moves it between cycles.
The night session of a trading day (the evening before) ends at the level that the next cash open
confirms. Options are Black-76 on the forward with an implied-volatility smile whose level follows the
market's GARCH(1,1) variance (the equity model's MKT_VOL and MKT_GARCH from `base`, filtered from TOPIX's
returns) and mean-reverts with maturity.

Determinism: every draw comes from a SeedSequence child dedicated to this module, session-major with a
fixed shape per session, so a market with a later `end` repeats the rows of an earlier one.
Codes follow the 9-digit JPX style: futures `16` + year digit + month + underlying id; options `1` +
`3` (put) / `4` (call) + year digit + month + a 4-digit strike number (strike / 125); ids for JN400F and
REITF are the simulator's own.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl

from gogoku import calendar as cal
from gogoku.jquants.endpoints import ENDPOINTS
from gogoku.sim.base import MKT_GARCH, MKT_VOL, MarketState, date_series, index_ohlc, month_start


# scipy.signal alone takes about 2 s to import: a process (a pod) that serves no derivatives must not pay
# it, so scipy is imported on first use.
def lfilter(b: Any, a: Any, x: np.ndarray, zi: Any = None) -> Any:
    """scipy.signal.lfilter (with `zi`: the filtered series and the final state)."""
    from scipy.signal import lfilter as _lfilter

    return _lfilter(b, a, x) if zi is None else _lfilter(b, a, x, zi=zi)


def ndtr(x: np.ndarray) -> np.ndarray:
    """scipy.special.ndtr: the standard normal CDF."""
    from scipy.special import ndtr as _ndtr

    return _ndtr(x)


log = logging.getLogger(__name__)

YEAR_DAYS = 365.0
SESSIONS_PER_YEAR = 245.0


@dataclass(frozen=True)
class FuturesProduct:
    category: str
    underlying: str
    underlying_id: str  # last 4 digits of the contract code
    tick: float
    multiplier: float
    dividend_yield: float  # annual; the carry is the short rate minus this
    volume: float  # typical daily volume across the listed months
    open_interest: float  # open interest of the front month between rolls


PRODUCTS: tuple[FuturesProduct, ...] = (
    FuturesProduct("TOPIXF", "topix", "0005", 0.5, 10_000, 0.0155, 60_000, 500_000),
    FuturesProduct("NK225F", "nk225", "0018", 10.0, 1_000, 0.0125, 40_000, 250_000),
    FuturesProduct("JN400F", "jpx400", "0027", 5.0, 100, 0.0165, 3_000, 60_000),
    FuturesProduct("REITF", "reit", "0014", 0.5, 1_000, 0.0355, 1_500, 30_000),
)
MISPRICING_VOL = 0.0003  # daily innovation of the basis mispricing (stationary sd about 0.15 %)
MISPRICING_AR = 0.98
MISPRICING_TAU = 0.1  # years: the loading tau / (tau + 0.1) is 0.7 three months out, 0.03 one day out
OI_LEVEL_VOL, OI_LEVEL_AR = 0.01, 0.99  # the product's OI level: log AR(1), stationary sd about 0.07
OI_BUILD = 0.3  # the front month's OI grows by this share of its level over its central quarter
FUTURES_LISTED = 3  # nearest quarterly contract months per product
# Front month's share of volume by sessions left to its LTD (0, 1, ..., 8 and more): volume moves to the
# next month over the last eight sessions, which becomes the central (most active) month four sessions out.
ROLL_FRONT_SHARE = np.array([0.05, 0.08, 0.12, 0.2, 0.35, 0.65, 0.8, 0.9, 0.96])
OPTION_MONTHS = 3  # nearest monthly Nikkei 225 option contracts
OPTION_CARRY = -0.012
OPTION_MULTIPLIER = 1_000
BAND_FINE, BAND_WIDE = 0.06, 0.15  # 125-yen strikes within 6 %, 250-yen strikes within 15 %
NK_VOL_RATIO = 1.15  # Nikkei 225 volatility relative to TOPIX's
VOL_PREMIUM = 1.08  # implied over expected realized volatility
IV_REVERSION_YEARS = 0.25
SMILE_SKEW, SMILE_CURVE = 0.09, 0.035
_SLOTS = 128  # option noise slots per (session, month rank, put/call): strike number modulo _SLOTS
_STREAMS = ("indices", "futures", "options")
_STREAM_KEY = 0xD371  # spawn key prefix: children independent of the equity simulator's streams
_FUT_DRAWS = 12
_OPT_DRAWS = 6


# ------------------------------------------------------------------ calendar
@lru_cache(maxsize=1)
def sessions_extended() -> np.ndarray:
    """The offline JPX sessions, then plain weekdays for two years after them (far contract months)."""
    first, last = cal.calendar_bounds()
    sessions = np.array(cal.business_days(first, last), dtype="datetime64[D]")
    after = sessions[-1] + np.arange(1, 731).astype("timedelta64[D]")
    return np.concatenate([sessions, after[np.is_busday(after)]])


def month_index(year: int, month: int) -> int:
    """Absolute month number (year * 12 + month - 1)."""
    return year * 12 + month - 1


def sq_dates(mi: np.ndarray) -> np.ndarray:
    """Special quotation days: the second Friday of each month, or the business day before it."""
    first = month_start(mi)
    weekday = (first.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    second_friday = first + ((4 - weekday) % 7 + 7).astype("timedelta64[D]")
    sessions = sessions_extended()
    return sessions[np.searchsorted(sessions, second_friday, side="right") - 1]


def last_trading_days(sq: np.ndarray) -> np.ndarray:
    """The business day before each SQ day."""
    sessions = sessions_extended()
    return sessions[np.searchsorted(sessions, sq, side="left") - 1]


def _year_digit(mi: np.ndarray) -> np.ndarray:
    return (np.asarray(mi) // 12 + 5) % 10  # 2024 -> 9, 2025 -> 0, 2026 -> 1


def _contract_month_str(mi: np.ndarray) -> np.ndarray:
    mi = np.asarray(mi)
    return np.array([f"{m // 12:04d}-{m % 12 + 1:02d}" for m in mi.tolist()], dtype=object)


def _grid(x: np.ndarray, tick: float, how: str = "round") -> np.ndarray:
    step = {"round": np.round, "ceil": np.ceil, "floor": np.floor}[how]
    eps = {"round": 0.0, "ceil": -1e-9, "floor": 1e-9}[how]
    return np.round(step(x / tick + eps) * tick, 1)


def option_tick(price: np.ndarray) -> np.ndarray:
    """Nikkei 225 option ticks: 1 yen up to 100, 5 yen up to 1,000, 10 yen above."""
    return np.where(price <= 100, 1.0, np.where(price <= 1000, 5.0, 10.0))


def _option_grid(price: np.ndarray, how: str = "round") -> np.ndarray:
    tick = option_tick(price)
    step = {"round": np.round, "ceil": np.ceil, "floor": np.floor}[how]
    return np.maximum(step(price / tick) * tick, 1.0)


def black76(forward: np.ndarray, strike: np.ndarray, tau: np.ndarray, rate: np.ndarray, vol: np.ndarray,
            call: np.ndarray) -> np.ndarray:
    """European option value on a forward (Black 1976), discounted at `rate` (annual, continuous)."""
    sd = vol * np.sqrt(tau)
    d1 = (np.log(forward / strike) + 0.5 * sd**2) / sd
    d2 = d1 - sd
    disc = np.exp(-rate * tau)
    c = disc * (forward * ndtr(d1) - strike * ndtr(d2))
    p = disc * (strike * ndtr(-d2) - forward * ndtr(-d1))
    return np.where(call, c, p)


def futures_carry(prod: FuturesProduct, days: np.ndarray) -> np.ndarray:
    """Annual cost of carry of a futures product on each day: the short rate minus its dividend yield."""
    return interest_rate(days) - prod.dividend_yield


def interest_rate(days: np.ndarray) -> np.ndarray:
    """Annual yen short rate for option discounting and futures carry (0.05 %, 0.25 % from Aug 2024, 0.5 % from
    Feb 2025)."""
    return np.select([days >= np.datetime64("2025-02-01"), days >= np.datetime64("2024-08-01")], [0.005, 0.0025],
                     0.0005)


# ------------------------------------------------------------------ state shared by futures and options
def _rng(m: MarketState, stream: str) -> np.random.Generator:
    seq = np.random.SeedSequence(m.seed, spawn_key=(_STREAM_KEY, _STREAMS.index(stream)))
    return np.random.default_rng(seq)


def market_variance(close: np.ndarray) -> np.ndarray:
    """GARCH(1,1) variance of the next session's market return, known at each close (TOPIX returns)."""
    a, b = MKT_GARCH
    h0 = MKT_VOL**2
    w = (1 - a - b) * h0
    r = np.diff(np.log(close), prepend=np.log(close[0]))
    u = w + a * r**2  # h[t+1] = w + a e2[t] + b h[t], h[0] = h0
    h_next, _ = lfilter([1.0], [1.0, -b], u, zi=[b * h0])
    return h_next


def _eligible(m: MarketState) -> np.ndarray:
    """(T, N) bool: codes that may be index constituents on each session (the TOPIX universe of the
    session: listed since the previous session, in the main market)."""
    return np.asarray(m.index_members, dtype=bool)


def index_members(m: MarketState) -> dict[str, np.ndarray]:
    """(T, N) bool constituents of the Nikkei-225-like index (the 225 most liquid eligible codes of each
    session; liquidity = expected trading value) and of the JPX400-like index (the 400 most liquid)."""
    u = m.universe
    eligible = _eligible(m)
    order = np.argsort(-(u.price0 * u.shares0 * u.turnover), kind="stable")
    in_order = eligible[:, order]
    seats = np.cumsum(in_order, axis=1)
    out = {}
    for name, size in (("nk225", 225), ("jpx400", 400)):
        members = np.zeros(eligible.shape, bool)
        members[:, order] = in_order & (seats <= size)
        out[name] = members
    return out


def underlying_indices(m: MarketState) -> dict[str, dict[str, np.ndarray]]:
    """open/high/low/close/prev (previous close) per session for topix, nk225, jpx400 and reit."""
    u, p = m.universe, m.paths
    topix = m.topix()
    tc = topix["Close"].to_numpy()
    out = {"topix": {"open": topix["Open"].to_numpy(), "high": topix["High"].to_numpy(),
                     "low": topix["Low"].to_numpy(), "close": tc,
                     "prev": np.concatenate([[u.topix0], tc[:-1]])}}
    members = index_members(m)
    cols = np.flatnonzero(members["nk225"].any(0) | members["jpx400"].any(0))  # only constituents enter the sums
    factor = p.factor[:, cols]
    base = np.vstack([u.price0[cols], p.close[:-1, cols]]) * factor  # previous close in post-split terms
    shares = np.asarray(m.shares)[:, cols]
    cap = np.vstack([u.price0[cols] * u.shares0[cols], (p.close[:, cols] * shares)[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = {k: getattr(p, k)[:, cols] / base for k in ("open", "high", "low", "close")}
    # Price-weighted (the divisor absorbs splits) and cap-weighted, over each session's constituents.
    for name, weight, level0 in (("nk225", base, 12.5 * u.topix0), ("jpx400", cap, 9.0 * u.topix0)):
        mask = members[name][:, cols]
        w = np.where(mask, np.nan_to_num(weight), 0.0)
        w = w / np.maximum(w.sum(1, keepdims=True), 1e-300)
        out[name] = index_ohlc(w, {k: np.where(mask, v, 0.0) for k, v in rel.items()}, level0)
    # REIT index: own factor path.
    t_len = len(m.days)
    z = _rng(m, "indices").standard_normal((t_len, 4))
    h = np.concatenate([[MKT_VOL**2], market_variance(tc)[:-1]])  # variance for each session
    sig = np.sqrt(h)
    r_topix = tc / out["topix"]["prev"] - 1
    r = 0.35 * r_topix + 0.9 * sig * z[:, 0]
    level0 = 1700.0 + 400.0 * (u.topix0 - 1500.0) / 500.0
    close = level0 * np.cumprod(1 + r)
    prev = np.concatenate([[level0], close[:-1]])
    open_ = prev * (1 + 0.4 * r + 0.15 * sig * z[:, 1])
    high = np.maximum(open_, close) * (1 + 0.4 * sig * np.abs(z[:, 2]))
    low = np.minimum(open_, close) * (1 - 0.4 * sig * np.abs(z[:, 3]))
    out["reit"] = {"open": open_, "high": high, "low": low, "close": close, "prev": prev}
    return {k: {f: np.round(v, 2) for f, v in d.items()} for k, d in out.items()}


# ------------------------------------------------------------------ futures
def build_futures(m: MarketState, indices: dict[str, dict[str, np.ndarray]] | None = None) -> pl.DataFrame:
    """Rows of derivatives/futures (v1 names, typed, sorted by Date and Code) for every session."""
    ix = indices if indices is not None else underlying_indices(m)
    days, t_len = m.days, len(m.days)
    sessions = sessions_extended()
    q0 = month_index(m.start.year, m.start.month) // 3
    q1 = month_index(m.end.year, m.end.month) // 3 + FUTURES_LISTED + 2
    cm = np.arange(q0 - 1, q1 + 1) * 3 + 2  # Mar, Jun, Sep, Dec (one quarter back for listing days)
    sq = sq_dates(cm)
    ltd = last_trading_days(sq)
    listed_on = np.full(len(cm), np.datetime64("1900-01-01"), dtype="datetime64[D]")
    listed_on[FUTURES_LISTED:] = sessions[np.searchsorted(sessions, ltd[:-FUTURES_LISTED], side="right")]
    front = np.searchsorted(ltd, days, side="left")
    day_pos = np.searchsorted(sessions, days)
    to_ltd = np.searchsorted(sessions, ltd[front]) - day_pos  # sessions until the front month's LTD
    front_share = np.interp(to_ltd, np.arange(len(ROLL_FRONT_SHARE)), ROLL_FRONT_SHARE)
    roll = (ROLL_FRONT_SHARE[-1] - front_share) / (ROLL_FRONT_SHARE[-1] - ROLL_FRONT_SHARE[0])  # 0 -> 1 over the roll
    vol_share = (front_share, 0.99 - front_share, np.full(t_len, 0.01))
    central_rank = np.where(front_share < 0.5, 1, 0)  # the most active month
    h = market_variance(ix["topix"]["close"])
    sig = np.sqrt(np.concatenate([[MKT_VOL**2], h[:-1]]))
    z_all = _rng(m, "futures").standard_normal((t_len, len(PRODUCTS), FUTURES_LISTED + 1, _FUT_DRAWS))
    dd = days.astype("datetime64[D]")
    spec_cols = list(ENDPOINTS["futures"].schema)
    frames = []
    for p_i, prod in enumerate(PRODUCTS):
        s = ix[prod.underlying]
        r_abs = np.abs(s["close"] / s["prev"] - 1)
        z_p = z_all[:, p_i, FUTURES_LISTED]
        log_vol = lfilter([0.35], [1.0, -0.7], z_p[:, 0])
        total = prod.volume * np.exp(log_vol + 0.5 * r_abs / sig - 0.5)
        # Shared by the product's months, so each contract's price path stays continuous across rank changes.
        mispricing = lfilter([MISPRICING_VOL], [1.0, -MISPRICING_AR], z_p[:, 1])
        oi_level = np.exp(lfilter([OI_LEVEL_VOL], [1.0, -OI_LEVEL_AR], z_p[:, 2]))
        carry_rate = futures_carry(prod, dd)
        for rank in range(FUTURES_LISTED):
            c = front + rank
            z = z_all[:, p_i, rank]
            tau = (sq[c] - days).astype(float) / YEAR_DAYS
            fade = tau / (tau + MISPRICING_TAU)  # arbitrage pins the contract to the index as SQ nears
            carry = np.exp(carry_rate * tau) * (1 + mispricing * fade)
            noise = 0.0002 * (1 + rank) * (0.2 + 0.8 * fade)
            tick = prod.tick
            night_open = _grid(s["prev"] * carry * (1 + 2 * noise * z[:, 0]), tick)
            night_close = _grid(s["open"] * carry * (1 + noise * z[:, 1]), tick)
            night_high = _grid(np.maximum(night_open, night_close) * (1 + 0.3 * sig * np.abs(z[:, 2])), tick, "ceil")
            night_low = _grid(np.minimum(night_open, night_close) * (1 - 0.3 * sig * np.abs(z[:, 3])), tick, "floor")
            day_open = _grid(night_close * (1 + noise * z[:, 4]), tick)
            day_close = _grid(s["close"] * carry * (1 + noise * z[:, 5]), tick)
            day_high = _grid(np.maximum(np.maximum(day_open, day_close),
                                        s["high"] * carry * (1 + noise * np.abs(z[:, 6]))), tick, "ceil")
            day_low = _grid(np.minimum(np.minimum(day_open, day_close),
                                       s["low"] * carry * (1 - noise * np.abs(z[:, 7]))), tick, "floor")
            first_day = days == listed_on[c]  # no night session on a contract's first trading day
            nan = np.full(t_len, np.nan)
            n_open, n_high = np.where(first_day, nan, night_open), np.where(first_day, nan, night_high)
            n_low, n_close = np.where(first_day, nan, night_low), np.where(first_day, nan, night_close)
            volume = np.maximum(np.round(total * vol_share[rank] * np.exp(0.08 * z[:, 8])), 1.0)
            prev_roll = roll if rank == 1 else np.full(t_len, 1.0 if rank == 0 else 0.0)
            own_roll = roll if rank == 0 else np.zeros(t_len)
            left = np.searchsorted(sessions, ltd[c]) - day_pos
            build = 1 + OI_BUILD * (np.clip(1 - left / 62.0, 0.0, 1.0) - 0.5)  # grows while it is the front month
            oi = prod.open_interest * oi_level * build \
                * (0.25 * np.exp(-np.maximum(left - 62, 0) / 40.0) + 0.75 * prev_roll) \
                * (1 - 0.85 * own_roll) * np.exp(0.02 * z[:, 9])
            mi = cm[c]
            code = 160_000_000 + _year_digit(mi) * 1_000_000 + (mi % 12 + 1) * 10_000 + int(prod.underlying_id)
            frames.append(pl.DataFrame({
                "Date": date_series(days, "Date"),
                "Code": pl.Series(code).cast(pl.Utf8),
                "DerivativesProductCategory": np.full(t_len, prod.category),
                "WholeDayOpen": np.where(first_day, day_open, night_open),
                "WholeDayHigh": np.where(first_day, day_high, np.maximum(night_high, day_high)),
                "WholeDayLow": np.where(first_day, day_low, np.minimum(night_low, day_low)),
                "WholeDayClose": day_close,
                "MorningSessionOpen": nan, "MorningSessionHigh": nan, "MorningSessionLow": nan,
                "MorningSessionClose": nan,
                "NightSessionOpen": n_open, "NightSessionHigh": n_high, "NightSessionLow": n_low,
                "NightSessionClose": n_close,
                "DaySessionOpen": day_open, "DaySessionHigh": day_high, "DaySessionLow": day_low,
                "DaySessionClose": day_close,
                "Volume": volume, "OpenInterest": np.round(oi),
                "TurnoverValue": np.round(volume * prod.multiplier * (day_open + day_close) / 2),
                "ContractMonth": pl.Series(_contract_month_str(mi), dtype=pl.Utf8),
                "Volume(OnlyAuction)": np.round(volume * (0.86 + 0.12 * ndtr(z[:, 10]))),
                "EmergencyMarginTriggerDivision": np.full(t_len, "002"),
                "LastTradingDay": date_series(ltd[c], "LastTradingDay"),
                "SpecialQuotationDay": date_series(sq[c], "SpecialQuotationDay"),
                "SettlementPrice": day_close,
                "CentralContractMonthFlag": np.where(central_rank == rank, "1", "0"),
            }, nan_to_null=True))
    return pl.concat(frames).select(spec_cols).sort("Date", "Code")


# ------------------------------------------------------------------ Nikkei 225 options
def implied_vol_atm(h_next: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """At-the-money implied volatility (annual) from the market's GARCH variance and time to SQ."""
    now = NK_VOL_RATIO * np.sqrt(h_next * SESSIONS_PER_YEAR)
    long_run = NK_VOL_RATIO * MKT_VOL * math.sqrt(SESSIONS_PER_YEAR)
    return VOL_PREMIUM * (long_run + (now - long_run) * np.exp(-tau / IV_REVERSION_YEARS))


def smile(atm: np.ndarray, forward: np.ndarray, strike: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Implied volatility across strikes: a put skew and a little curvature in standardized moneyness."""
    x = np.clip(np.log(strike / forward) / (atm * np.sqrt(tau)), -4.0, 4.0)
    return atm * np.maximum(1 - SMILE_SKEW * x + SMILE_CURVE * x**2, 0.3)


def build_index_options(m: MarketState, indices: dict[str, dict[str, np.ndarray]] | None = None) -> pl.DataFrame:
    """Rows of option/index_option (v1 names, typed, sorted by Date and Code) for every session."""
    ix = indices if indices is not None else underlying_indices(m)
    nk = ix["nk225"]
    days, t_len = m.days, len(m.days)
    sessions = sessions_extended()
    mi0 = month_index(m.start.year, m.start.month) - 1
    cm = np.arange(mi0, month_index(m.end.year, m.end.month) + OPTION_MONTHS + 2)
    sq = sq_dates(cm)
    ltd = last_trading_days(sq)
    front = np.searchsorted(ltd, days, side="left")
    listed_on = np.full(len(cm), np.datetime64("1900-01-01"), dtype="datetime64[D]")
    listed_on[OPTION_MONTHS:] = sessions[np.searchsorted(sessions, ltd[:-OPTION_MONTHS], side="right")]
    ref = nk["prev"]  # strikes are set from the previous close
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("t", "c", "k", "new", "age")}
    for c in np.unique(np.concatenate([front + r for r in range(OPTION_MONTHS)])):
        alive = np.flatnonzero((front <= c) & (c < front + OPTION_MONTHS))
        if alive.size == 0:
            continue
        path = ref[alive]
        lo_f, hi_f = np.minimum.accumulate(path) * (1 - BAND_FINE), np.maximum.accumulate(path) * (1 + BAND_FINE)
        lo_w, hi_w = np.minimum.accumulate(path) * (1 - BAND_WIDE), np.maximum.accumulate(path) * (1 + BAND_WIDE)
        strikes = np.arange(np.floor(lo_w.min() / 250) * 250, np.ceil(hi_w.max() / 250) * 250 + 1, 125.0)
        k2 = strikes[None, :]
        listed = ((k2 >= lo_f[:, None]) & (k2 <= hi_f[:, None])) | (
            (k2 % 250 == 0) & (k2 >= lo_w[:, None]) & (k2 <= hi_w[:, None]))
        age = np.cumsum(listed, axis=0)  # sessions since the strike was listed (1 on its first day)
        first_listing = days[alive[0]] == listed_on[c]
        new = (age == 1) & ((np.arange(alive.size) > 0)[:, None] | first_listing)
        ti, ki = np.nonzero(listed)
        parts["t"].append(alive[ti])
        parts["c"].append(np.full(ti.size, c))
        parts["k"].append(strikes[ki])
        parts["new"].append(new[ti, ki])
        parts["age"].append(age[ti, ki])
    t, c, strike = (np.concatenate(parts[k]) for k in ("t", "c", "k"))
    new, age = np.concatenate(parts["new"]), np.concatenate(parts["age"]).astype(float)
    # Both puts and calls for every listed strike.
    n_rows = t.size
    t, c, strike, new, age = (np.concatenate([a, a]) for a in (t, c, strike, new, age))
    call = np.repeat(np.array([False, True]), n_rows)
    rank = c - front[t]
    slot = (strike / 125).astype(np.int64) % _SLOTS
    # One block per session: (month rank, put/call, strike slot + one slot for the month's level noise).
    z_all = _rng(m, "options").standard_normal((t_len, OPTION_MONTHS, 2, _SLOTS + 1, _OPT_DRAWS))
    z = z_all[t, rank, call.astype(int), slot]
    z_month = z_all[:, :, 0, _SLOTS, 0]
    del z_all

    day = days[t]
    tau = (sq[c] - day).astype(float) / YEAR_DAYS
    rate = interest_rate(day)
    grow = np.exp(OPTION_CARRY * tau)
    spot = nk["close"][t]
    forward = spot * grow
    h_next = market_variance(ix["topix"]["close"])
    base_vol = np.maximum(implied_vol_atm(h_next[t], tau) * (1 + 0.02 * z_month[t, rank]), 0.05)
    iv = smile(base_vol, forward, strike, tau)
    value = black76(forward, strike, tau, rate, iv, call)
    theo = black76(forward, strike, tau, rate, base_vol, call)
    settle = _option_grid(value)

    def at(level: np.ndarray) -> np.ndarray:
        return _option_grid(black76(level * grow, strike, tau, rate, iv, call))

    night_open = at(nk["prev"][t] * (1 + 0.0008 * z[:, 0]))
    night_close = at(nk["open"][t] * (1 + 0.0004 * z[:, 1]))
    night_high = _option_grid(np.maximum(night_open, night_close) * (1 + 0.05 * np.abs(z[:, 2])), "ceil")
    night_low = _option_grid(np.minimum(night_open, night_close) * (1 - 0.05 * np.abs(z[:, 2])), "floor")
    day_open = at(nk["open"][t] * (1 + 0.0003 * z[:, 3]))
    day_close = settle
    hi_level, lo_level = np.where(call, nk["high"][t], nk["low"][t]), np.where(call, nk["low"][t], nk["high"][t])
    day_high = np.maximum(at(hi_level), np.maximum(day_open, day_close))
    day_low = np.minimum(at(lo_level), np.minimum(day_open, day_close))

    x = np.log(strike / forward) / (base_vol * np.sqrt(tau))
    otm = np.where(call, strike > forward, strike < forward)
    base_volume = np.array([2500.0, 600.0, 150.0])[rank]
    volume = np.floor(base_volume * np.exp(-0.5 * (x / 1.2) ** 2) * np.where(otm, 1.3, 0.5) * np.exp(0.8 * z[:, 4]))
    x_oi = np.log(strike / spot) / (base_vol * np.sqrt(np.maximum(tau, 7 / YEAR_DAYS)))
    open_interest = np.round(np.array([40_000.0, 15_000.0, 5_000.0])[rank] * np.exp(-0.5 * (x_oi / 1.5) ** 2)
                             * (1 - np.exp(-age / 10.0)) * np.exp(0.1 * z[:, 5]))
    traded = volume > 0
    night = traded & ~new
    zero = np.zeros(t.size)
    nan = np.full(t.size, np.nan)
    w_open = np.where(night, night_open, day_open)
    w_high = np.where(night, np.maximum(night_high, day_high), day_high)
    w_low = np.where(night, np.minimum(night_low, day_low), day_low)

    def traded_only(a: np.ndarray) -> np.ndarray:
        return np.where(traded, a, zero)

    def night_only(a: np.ndarray) -> np.ndarray:
        return np.where(new, nan, np.where(night, a, zero))

    mi = cm[c]
    code = (100_000_000 + np.where(call, 4, 3) * 10_000_000 + _year_digit(mi) * 1_000_000 + (mi % 12 + 1) * 10_000
            + (strike / 125).astype(np.int64) % 10_000)
    cm_str = pl.Series(_contract_month_str(cm), dtype=pl.Utf8).gather(c)
    frame = pl.DataFrame({
        "Date": date_series(day, "Date"),
        "Code": pl.Series(code).cast(pl.Utf8),
        "WholeDayOpen": traded_only(w_open), "WholeDayHigh": traded_only(w_high),
        "WholeDayLow": traded_only(w_low), "WholeDayClose": traded_only(day_close),
        "NightSessionOpen": night_only(night_open), "NightSessionHigh": night_only(night_high),
        "NightSessionLow": night_only(night_low), "NightSessionClose": night_only(night_close),
        "DaySessionOpen": traded_only(day_open), "DaySessionHigh": traded_only(day_high),
        "DaySessionLow": traded_only(day_low), "DaySessionClose": traded_only(day_close),
        "Volume": volume, "OpenInterest": open_interest,
        "TurnoverValue": np.round(volume * OPTION_MULTIPLIER * (day_open + day_close) / 2),
        "ContractMonth": cm_str,
        "StrikePrice": strike,
        "Volume(OnlyAuction)": np.round(volume * (0.9 + 0.1 * ndtr(z[:, 1]))),
        "EmergencyMarginTriggerDivision": pl.repeat("002", t.size, eager=True),
        "PutCallDivision": np.where(call, "2", "1"),
        "LastTradingDay": date_series(ltd[c], "LastTradingDay"),
        "SpecialQuotationDay": date_series(sq[c], "SpecialQuotationDay"),
        "SettlementPrice": settle,
        "TheoreticalPrice": np.round(theo, 4),
        "BaseVolatility": np.round(100 * base_vol, 4),
        "UnderlyingPrice": spot,
        "ImpliedVolatility": np.round(100 * iv, 4),
        "InterestRate": np.round(100 * rate, 4),
    }, nan_to_null=True)
    log.debug("index options: %d rows over %d sessions", frame.height, t_len)
    return frame.select(list(ENDPOINTS["index_option"].schema)).sort("Date", "Code")
