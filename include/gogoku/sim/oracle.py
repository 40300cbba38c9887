"""The simulated market's ground truth, for evaluation only: the planted expected returns and their parts,
the latent lead-lag graph and each signal family's strength.

Nothing here is served by the simulator's API; `SimMarket.truth`, `peers` and `signal_strengths` (and
`gogoku sim truth`) expose it. The functions read a market through `base.MarketState`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from gogoku.sim.base import (
    FAMILIES,
    HORIZONS,
    KAPPA,
    LEAD_DECAY,
    MOM_DAYS,
    NORM,
    PEAD_TAU,
    PHI_FLOW,
    PHI_MARGIN,
    PHI_QUALITY,
    REV_DAYS,
    WEIGHTS,
    MarketState,
    date_series,
)


def decay_weights(h: int) -> dict[str, float]:
    """Sum over the next h days of each family's remaining weight (see `build_truth`)."""
    k = np.arange(h)
    return {
        "reversal": float(np.clip(1 - k / REV_DAYS, 0, None).sum()),
        "momentum": float(np.clip(1 - k / MOM_DAYS, 0, None).sum()),
        "quality": float((PHI_QUALITY**k).sum()),
        "leadlag": float((LEAD_DECAY**k).sum()),
        "pead": float(np.exp(-k / PEAD_TAU).sum()),
        "margin": float((PHI_MARGIN ** (k / 5)).sum()),
        "flow": float((PHI_FLOW ** (k / 5)).sum()),
    }


def contribution(m: MarketState, family: str) -> np.ndarray:
    """(T, N) float32: the family's part of mu for the next session, fixed at each session's close."""
    p = m.paths
    z = {"reversal": p.z_rev, "momentum": p.z_mom, "quality": p.z_qual, "leadlag": p.z_lead}.get(family)
    if z is None:
        z = m.published[family]
    return (KAPPA * WEIGHTS[family] / NORM) * p.sigma_next * z


def build_truth(m: MarketState) -> pl.DataFrame:
    """The planted expected returns per listed (Code, Date), sorted (Code, Date).

    exp_ret_1d at (Code, Date) is mu for the next session, fixed at Date's close from information
    public by then; contrib_{family}_1d are its parts (they sum to it). exp_ret_{h}d is the sum of
    the next h daily expectations holding the volatility state and cross-sectional scales fixed: the
    reversal term fades linearly over 5 sessions as its window rolls off, momentum over 60, quality,
    lead-lag and post-earnings drift decay at their rates, and the weekly margin and flow terms at
    their weekly AR(1) persistence.
    """
    n, t_len = m.n_stocks, len(m.days)
    listed = m.listed_mask.T.ravel()
    contrib = {f: contribution(m, f) for f in FAMILIES}
    cols: dict[str, np.ndarray] = {}
    for h in HORIZONS:
        decay = decay_weights(h)
        total = sum(decay[f] * contrib[f].astype(float) for f in FAMILIES)
        cols[f"exp_ret_{h}d"] = total.T.ravel()[listed]
    for f in FAMILIES:
        cols[f"contrib_{f}_1d"] = contrib[f].T.ravel()[listed]
    return pl.DataFrame({
        "Code": pl.Series(m.universe.codes, dtype=pl.Utf8).gather(np.repeat(np.arange(n), t_len)).filter(listed),
        "Date": date_series(m.days, "Date").gather(np.tile(np.arange(t_len), n)).filter(listed),
        **cols,
    })


def peers(m: MarketState) -> pl.DataFrame:
    """The latent lead-lag graph: each Code follows the past returns of its PeerCodes."""
    leaders = m.life.leaders
    codes = m.universe.codes
    return pl.DataFrame({"Code": np.repeat(codes, leaders.shape[1]), "PeerCode": codes[leaders.ravel()]})


def signal_strengths(m: MarketState) -> pl.DataFrame:
    """Per planted family: its weight, its share of the 1d signal variance, and the oracle mean daily
    RankIC at 1d of its contribution alone against the realized next-session return (days with >= 20
    listed names); a last row `total` holds exp_ret_1d."""
    p = m.paths
    nxt = np.full(p.close.shape, np.nan)
    nxt[:-1] = p.close[1:] / (p.close[:-1] * p.factor[1:]) - 1
    listed_mask = m.listed_mask
    valid = listed_mask & np.vstack([listed_mask[1:], np.zeros((1, m.n_stocks), bool)])
    contrib = {f: contribution(m, f) for f in FAMILIES}
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
    den = np.sqrt((a * a).sum(axis=1, dtype=np.float64)
                  * (realized_ranks * realized_ranks).sum(axis=1, dtype=np.float64))
    return float(np.divide(num, den, out=np.zeros_like(num), where=den > 0).mean())
