"""The simulated market's life cycle, publication schedules and the published-information signal families.

Everything here is drawn before (and independently of) the price paths, from its own random streams, so
that the planted signal of each family enters expected returns exactly from the session on which its
information is public under the as-of rule (docs/data.md). The parameters named below live in
`gogoku.sim.base`.

- **pead**: each quarterly statement carries a surprise s ~ N(0, 1) (it moves the quarter's operating
  margin by SURPRISE_MARGIN, so it is visible in the disclosed profits and forecasts), and so does each
  forecast revision (EarnForecastRevision, about one in five quarters: the forecasts move by 3% (sales) /
  10% (profits) per unit surprise). Its effective session E is the disclosure date when disclosed before
  that session's close (15:00, 15:30 from 2024-11-05), else the next session. The price reacts on E (a
  jump of PEAD_JUMP sigmas in E's return) and drifts after it: the family's term at the close of t >= E
  is s * exp(-(t - E) / PEAD_TAU).
- **margin**: a weekly AR(1) (PHI_MARGIN) long-vs-short margin imbalance x per stock, recorded as of the
  week's last session (the Friday) and published after the close of the second business day after it;
  usable from the third. High long-margin overhang predicts weak returns: the term is -x of the latest
  usable week.
- **flow**: a weekly AR(1) (PHI_FLOW) foreign net-buying balance per section, published in trades_spec
  after the close of the fourth business day of the following week (a Thursday), usable from the next
  session. The term is f[section] * (cross-sectional z of log market cap): foreign buying lifts large caps.

Reversal, momentum, quality and the lead-lag spillover depend on the price paths and live in
`gogoku.sim.market.SimMarket.paths`. The functions here read a market through `base.MarketState`.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from gogoku import calendar as cal
from gogoku.sim.base import (
    FAR,
    FLOW_PUBLISH_LAG,
    MARGIN_PUBLISH_LAG,
    MARKET_CODES,
    PEAD_TAU,
    PHI_FLOW,
    PHI_MARGIN,
    REORG_DATE,
    SECTIONS_OLD,
    SLOT_OF_MARKET,
    Lifecycle,
    MarketState,
    StatementSchedule,
    Weeks,
    all_sessions,
    month_end,
    usable_week,
)

# Scales the pead term to unit variance over a quarter (63 sessions) of decay.
PEAD_NORM = math.sqrt(float(np.mean(np.exp(-2 * np.arange(63) / PEAD_TAU))))


def build_lifecycle(m: MarketState) -> Lifecycle:
    """Listings, delistings, segment changes and the latent peer graph, drawn relative to `start`.

    About 6% of the codes list after the start (IPO within ~10 years), 4% delist within ~10 years and 6%
    move segment (within ~3 years after the reorg). Offsets count sessions of the offline calendar from
    `start`, so they do not depend on `end`.
    """
    u, n = m.universe, m.n_stocks
    rng = m.rng("lifecycle")
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


def build_weeks(m: MarketState) -> Weeks:
    """The weeks from the week of `start`, with their record and publication sessions."""
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


def weekly_latents(m: MarketState) -> tuple[np.ndarray, np.ndarray]:
    """(margin imbalance x (W, N), foreign flow f (W, 4 slots)); drawn week-major from the start's week."""
    n_weeks = len(m.weeks.record)
    x = ar1(m.rng("margin").standard_normal((n_weeks, m.n_stocks)), PHI_MARGIN)
    f = ar1(m.rng("flow").standard_normal((n_weeks, len(SECTIONS_OLD))), PHI_FLOW)
    return x, f


def build_statement_schedule(m: MarketState) -> StatementSchedule:
    """When each quarterly statement and forecast revision is disclosed, and its surprise.

    The grid runs month-major from 15 months before `start`; a stock's quarter ends are the months
    congruent to its fiscal-year-end month (mod 3). Statements are disclosed 33-50 days after the period
    end, during the session, at the close or in the evening.
    """
    u, n = m.universe, m.n_stocks
    mi0 = m.start.year * 12 + m.start.month - 1 - 15
    n_months = m.end.year * 12 + m.end.month - 1 - mi0 + 1
    unif = m.rng("disclosure").random((n_months, n, 2))
    surprise_rows = m.rng("surprise").standard_normal((n_months, n))
    rev_unif = m.rng("revision").random((n_months, n, 5))
    first_k = (u.fy_end_month - 1 - mi0) % 3
    j = np.arange(int(((n_months - first_k + 2) // 3).max()))[:, None]
    cols = np.arange(n)[None, :]
    k = first_k[None, :] + 3 * j
    valid = k < n_months
    k = np.minimum(k, n_months - 1)
    pe_mi = mi0 + k
    period_end = month_end(pe_mi)
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
    rev_time = np.select([ru[..., 2] < 0.5, ru[..., 2] < 0.8],
                         [np.where(rev_change, "15:30:00", "15:00:00"), "16:00:00"], "13:00:00")
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


def published_signals(m: MarketState) -> dict[str, np.ndarray]:
    """(T, N) float32 terms of the published-information families at each session's close, and the
    announcement jumps (the surprise on each effective session, 0 elsewhere)."""
    days, n, t_len = m.days, m.n_stocks, len(m.days)
    sch, life = m.schedule, m.life
    listed = m.listed_mask
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
    pead = np.where(last >= 0, jump[np.maximum(last, 0), cols] * np.exp(-age / PEAD_TAU), 0.0) / PEAD_NORM
    # Weekly margin and flows: the latest week usable at each session.
    x, f = m.weekly
    wk = m.weeks
    wm = usable_week(wk.margin_published, days)
    has_margin = m.universe.margin != "3"
    margin = np.where((wm[:, None] >= 0) & has_margin[None, :], -x[np.maximum(wm, 0)], 0.0)
    wf = usable_week(wk.flow_published, days)
    slot = SLOT_OF_MARKET[life.market_at(days)]
    flow = np.where(wf[:, None] >= 0, f[np.maximum(wf, 0)[:, None], slot] * life.cap_z[None, :], 0.0)
    return {"pead": pead.astype(np.float32), "margin": margin.astype(np.float32), "flow": flow.astype(np.float32),
            "jump": jump}
