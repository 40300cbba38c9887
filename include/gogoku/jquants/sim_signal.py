"""The simulated market's life cycle, publication schedules and the published-information signal families.

Everything here is drawn before (and independently of) the price paths, from its own random streams, so
that the planted signal of each family enters expected returns exactly from the session on which its
information is public under the as-of rule (docs/data.md):

- **pead**: each quarterly statement carries a surprise s ~ N(0, 1) (it moves the quarter's operating
  margin, so it is visible in the disclosed profits and forecasts), and so does each forecast revision
  (EarnForecastRevision, about one in five quarters: the forecasts move by 3% (sales) / 10% (profits) per
  unit surprise). Its effective session E is the
  disclosure date when disclosed before that session's close (15:00, 15:30 from 2024-11-05), else the
  next session. The price reacts on E (a jump in E's return) and drifts after it: the family's term at
  the close of t >= E is s * exp(-(t - E) / PEAD_TAU).
- **margin**: a weekly AR(1) long-vs-short margin imbalance x per stock, recorded as of the week's last
  session (the Friday) and published after the close of the second business day after it; usable from the
  third. High long-margin overhang predicts weak returns: the term is -x of the latest usable week.
- **flow**: a weekly AR(1) foreign net-buying balance per section, published in trades_spec after the
  close of the fourth business day of the following week (a Thursday), usable from the next session.
  The term is f[section] * (cross-sectional z of log market cap): foreign buying lifts large caps.

Reversal, momentum, quality and the lead-lag spillover depend on the price paths and live in
`SimMarket.paths`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gogoku import calendar as cal

if TYPE_CHECKING:
    from gogoku.jquants.market import SimMarket

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

PEAD_TAU = 30.0  # sessions: half-life about 21 sessions
PEAD_JUMP = 1.5  # reaction on the effective session, in idiosyncratic sigmas per unit surprise
SURPRISE_MARGIN = 0.02  # operating-margin shift of the quarter per unit surprise
PHI_MARGIN, PHI_FLOW = 0.85, 0.6  # weekly AR(1) persistence
MARGIN_PUBLISH_LAG, FLOW_PUBLISH_LAG = 2, 4  # business days after the record date / week end
_PEAD_NORM = math.sqrt(float(np.mean(np.exp(-2 * np.arange(63) / PEAD_TAU))))
FAR = np.datetime64("2262-01-01")


@dataclass(frozen=True)
class Lifecycle:
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
        d = np.asarray(dates, dtype="datetime64[D]")[:, None]
        return (d >= self.ipo[None, :]) & (d < self.delist[None, :])


def all_sessions() -> np.ndarray:
    return np.array(cal.business_days(*cal.calendar_bounds()), dtype="datetime64[D]")


def build_lifecycle(m: SimMarket) -> Lifecycle:
    """Listings, delistings, segment changes and the latent peer graph, drawn relative to `start`.

    About 6% of the codes list after the start (IPO within ~10 years), 4% delist within ~10 years and 6%
    move segment (within ~3 years after the reorg). Offsets count sessions of the offline calendar from `start`, so they
    do not depend on `end`.
    """
    u, n = m.universe, m.n_stocks
    rng = m._rng("lifecycle")
    sessions = all_sessions()
    s0 = int(np.searchsorted(sessions, np.datetime64(m.start)))

    def at(offset: np.ndarray) -> np.ndarray:
        idx = s0 + offset
        return np.where(idx < len(sessions), sessions[np.minimum(idx, len(sessions) - 1)], FAR)

    u_ipo, u_del, u_chg, u_old = rng.random(n), rng.random(n), rng.random(n), rng.random(n)
    ipo_off = np.where(u_ipo < 0.06, rng.integers(20, 2500, n), 0)
    del_off = np.where(u_del < 0.04, ipo_off + rng.integers(120, 2500, n), 10**7)
    ipo, delist = at(ipo_off), at(np.minimum(del_off, 10**6))
    delist = np.where(del_off >= 10**6, FAR, delist)
    new_market = np.searchsorted(np.array(MARKET_CODES), u.market)
    prime, standard, growth = (MARKET_CODES.index(c) for c in ("0111", "0112", "0113"))
    old_market = np.select(
        [new_market == prime, new_market == standard],
        [MARKET_CODES.index("0101"), np.where(u_old < 0.5, MARKET_CODES.index("0102"), MARKET_CODES.index("0106"))],
        np.where(u_old < 0.6, MARKET_CODES.index("0104"), MARKET_CODES.index("0107")),
    )
    reorg = int(np.searchsorted(sessions, np.datetime64(REORG_DATE)))
    change_off = max(reorg - s0, 0) + rng.integers(20, 800, n)
    change = np.where(u_chg < 0.06, at(change_off), FAR)
    changed_market = np.select([new_market == growth, new_market == standard], [standard, prime], standard)
    # Peers: mostly the same sector, never the stock itself.
    k = 4
    same = rng.random((n, k)) < 0.7
    order = np.argsort(u.sector, kind="stable")
    first = np.searchsorted(u.sector[order], u.sector)
    count = np.bincount(u.sector, minlength=int(u.sector.max()) + 1)[u.sector]
    in_sector = order[first[:, None] + (rng.random((n, k)) * count[:, None]).astype(int)]
    anywhere = rng.integers(0, n, (n, k))
    leaders = np.where(same, in_sector, anywhere)
    leaders = np.where(leaders == np.arange(n)[:, None], (leaders + 1) % n, leaders)
    log_cap = np.log(u.price0 * u.shares0)
    cap_z = (log_cap - log_cap.mean()) / max(log_cap.std(), 1e-12)
    long_frac = 0.015 * np.exp(0.5 * rng.standard_normal(n)) * np.where(u.market == "0113", 2.0, 1.0)
    short_frac = 0.25 * long_frac * np.exp(0.4 * rng.standard_normal(n)) * np.where(u.margin == "2", 1.0, 0.3)
    return Lifecycle(ipo=ipo, delist=delist, old_market=old_market, new_market=new_market, change=change,
                     changed_market=changed_market, leaders=leaders, cap_z=cap_z, long_frac=long_frac,
                     short_frac=short_frac)


@dataclass(frozen=True)
class Weeks:
    """The weekly grid from the week of `start`: record dates and publication dates (datetime64[D])."""

    first: np.ndarray  # first session of the week (trades_spec StartDate)
    record: np.ndarray  # last session of the week (weekly margin Date, trades_spec EndDate)
    margin_published: np.ndarray  # after the close of the 2nd business day after `record`
    flow_published: np.ndarray  # after the close of the 4th business day after `record`


def build_weeks(m: SimMarket) -> Weeks:
    sessions = all_sessions()
    monday0 = np.datetime64(m.start - dt.timedelta(days=m.start.weekday()))
    n_weeks = (m.end - m.start).days // 7 + 3
    mondays = monday0 + 7 * np.arange(n_weeks).astype("timedelta64[D]")
    lo = np.searchsorted(sessions, mondays)
    hi = np.searchsorted(sessions, mondays + np.timedelta64(5, "D")) - 1  # last session before Saturday
    has = (hi >= lo) & (hi < len(sessions) - FLOW_PUBLISH_LAG)
    lo, hi = lo[has], hi[has]
    return Weeks(first=sessions[lo], record=sessions[hi], margin_published=sessions[hi + MARGIN_PUBLISH_LAG],
                 flow_published=sessions[hi + FLOW_PUBLISH_LAG])


def ar1(innovations: np.ndarray, phi: float) -> np.ndarray:
    """Stationary unit-variance AR(1) along axis 0, started from its stationary law."""
    out = np.empty_like(innovations)
    out[0] = innovations[0]
    scale = math.sqrt(1 - phi**2)
    for w in range(1, len(innovations)):
        out[w] = phi * out[w - 1] + scale * innovations[w]
    return out


def weekly_latents(m: SimMarket) -> tuple[np.ndarray, np.ndarray]:
    """(margin imbalance x (W, N), foreign flow f (W, 4 slots)); drawn week-major from the start's week."""
    n_weeks = len(m.weeks.record)
    x = ar1(m._rng("margin").standard_normal((n_weeks, m.n_stocks)), PHI_MARGIN)
    f = ar1(m._rng("flow").standard_normal((n_weeks, len(SECTIONS_OLD))), PHI_FLOW)
    return x, f


def _usable_week(published: np.ndarray, days: np.ndarray) -> np.ndarray:
    """For each session, the latest week whose after-close publication is usable (-1 if none)."""
    usable_from = np.searchsorted(days, published, side="right")  # first session after the publication
    return np.searchsorted(usable_from, np.arange(len(days)), side="right") - 1


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


def _month_end(month_index: np.ndarray) -> np.ndarray:
    start = (np.asarray(month_index) + 1 - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]")
    return start - np.timedelta64(1, "D")


def build_statement_schedule(m: SimMarket) -> StatementSchedule:
    u, n = m.universe, m.n_stocks
    mi0 = m.start.year * 12 + m.start.month - 1 - 15
    n_months = m.end.year * 12 + m.end.month - 1 - mi0 + 1
    unif = m._rng("disclosure").random((n_months, n, 2))
    surprise_rows = m._rng("surprise").standard_normal((n_months, n))
    rev_unif = m._rng("revision").random((n_months, n, 5))
    first_k = (u.fy_end_month - 1 - mi0) % 3
    j = np.arange(int(((n_months - first_k + 2) // 3).max()))[:, None]
    cols = np.arange(n)[None, :]
    k = first_k[None, :] + 3 * j
    valid = k < n_months
    k = np.minimum(k, n_months - 1)
    pe_mi = mi0 + k
    period_end = _month_end(pe_mi)
    qtype = ((pe_mi % 12 + 1 - u.fy_end_month[None, :]) % 12) // 3
    qtype = np.where(qtype == 0, 4, qtype)
    fy_first = j - qtype + 1
    complete = valid & (fy_first >= 0)
    du = unif[k, cols]
    sessions = all_sessions()
    lag = np.where(qtype == 4, 40, 33) + np.floor(11 * du[..., 0]).astype(int)
    pos = np.minimum(np.searchsorted(sessions, period_end + lag.astype("timedelta64[D]")), len(sessions) - 2)
    disclosed = sessions[pos]
    after_change = disclosed >= np.datetime64(cal.CLOSE_CHANGE_DATE)
    at_close = np.where(after_change, "15:30:00", "15:00:00")
    other = np.where(after_change, "15:00:00", "15:30:00")  # before the new close / after the old one
    ut = du[..., 1]
    time = np.select(
        [ut < 0.45, ut < 0.58, ut < 0.66, ut < 0.74, ut < 0.86, ut < 0.93],
        [at_close, "16:00:00", "17:00:00", other, "13:00:00", "11:30:00"], "18:30:00")
    effective = _effective(sessions, pos, time)
    # Revisions: 3-40 sessions after the statement, always before the next one (disclosures lie at least
    # ~48 sessions apart), so a revision never depends on the grid's length (that is, on `end`).
    ru = rev_unif[k, cols]
    rev_pos = np.minimum(pos + 3 + np.floor(38 * ru[..., 1]).astype(int), len(sessions) - 2)
    rev_disclosed = sessions[rev_pos]
    rev_change = rev_disclosed >= np.datetime64(cal.CLOSE_CHANGE_DATE)
    rev_time = np.select([ru[..., 2] < 0.5, ru[..., 2] < 0.8], [np.where(rev_change, "15:30:00", "15:00:00"), "16:00:00"],
                         "13:00:00")
    rev_surprise = np.sqrt(-2 * np.log1p(-ru[..., 3])) * np.cos(2 * np.pi * ru[..., 4])  # Box-Muller
    return StatementSchedule(month0=mi0, k=k, qtype=qtype, fy_first=np.maximum(fy_first, 0), complete=complete,
                             period_end=period_end, disclosed=disclosed, time=time, effective=effective,
                             surprise=surprise_rows[k, cols], rev=complete & (ru[..., 0] < 0.2),
                             rev_disclosed=rev_disclosed, rev_time=rev_time,
                             rev_effective=_effective(sessions, rev_pos, rev_time), rev_surprise=rev_surprise)


def _effective(sessions: np.ndarray, pos: np.ndarray, time: np.ndarray) -> np.ndarray:
    """The disclosure's session if disclosed before its close, else the next session."""
    close = np.where(sessions[pos] >= np.datetime64(cal.CLOSE_CHANGE_DATE), "15:30:00", "15:00:00")
    return np.where(time >= close, sessions[pos + 1], sessions[pos])


def published_signals(m: SimMarket) -> dict[str, np.ndarray]:
    """(T, N) float32 terms of the published-information families at each session's close, and the
    announcement jumps (the surprise on each effective session, 0 elsewhere)."""
    days, n, t_len = m.days, m.n_stocks, len(m.days)
    sch, life = m._schedule, m.life
    listed = m._listed_mask
    # Earnings: the surprise lands on its effective session and decays from there.
    jump = np.zeros((t_len, n), np.float32)
    hit = np.zeros((t_len, n), bool)
    for has, effective, surprise in ((sch.complete, sch.effective, sch.surprise),
                                     (sch.rev, sch.rev_effective, sch.rev_surprise)):
        jj, ii = np.nonzero(has & (effective >= days[0]) & (effective <= days[-1]))
        t_idx = np.searchsorted(days, effective[jj, ii])
        live = listed[t_idx, ii]
        jump[t_idx[live], ii[live]] = surprise[jj, ii][live]
        hit[t_idx[live], ii[live]] = True
    last = np.maximum.accumulate(np.where(hit, np.arange(t_len)[:, None], -1), axis=0)
    cols = np.arange(n)[None, :]
    age = np.arange(t_len)[:, None] - last
    pead = np.where(last >= 0, jump[np.maximum(last, 0), cols] * np.exp(-age / PEAD_TAU), 0.0) / _PEAD_NORM
    # Weekly margin and flows: the latest week usable at each session.
    x, f = m._weekly
    wk = m.weeks
    wm = _usable_week(wk.margin_published, days)
    has_margin = m.universe.margin != "3"
    margin = np.where((wm[:, None] >= 0) & has_margin[None, :], -x[np.maximum(wm, 0)], 0.0)
    wf = _usable_week(wk.flow_published, days)
    slot = SLOT_OF_MARKET[life.market_at(days)]
    flow = np.where(wf[:, None] >= 0, f[np.maximum(wf, 0)[:, None], slot] * life.cap_z[None, :], 0.0)
    return {"pead": pead.astype(np.float32), "margin": margin.astype(np.float32), "flow": flow.astype(np.float32),
            "jump": jump}
