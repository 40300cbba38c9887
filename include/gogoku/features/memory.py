"""The memory of the features: how far before a day D any feature of D may read.

Every feature of day D depends only on raw rows dated within [D - FEATURE_MEMORY_DAYS, D] (each
source's rows dated by the column the cache dates them by: gogoku.cache.sources.CACHED_SOURCES); the
windows over sessions read less, at most SESSION_MEMORY_DAYS. A build reads LOOKBACK_DAYS
(gogoku.contracts) > FEATURE_MEMORY_DAYS of history before its first day, so the row of D is the same whether it comes from a full build over years or from the incremental
build of D alone (`gogoku features daily`, tests/integration/test_point_in_time.py), the first day of
a full build included.

How each kind of feature is bounded:

- Windows over sessions (a stock's own priced sessions, TOPIX's, a sector's daily series) read at
  most MEMORY_SESSIONS sessions: the fewest JPX sessions in any SESSION_MEMORY_DAYS calendar days
  (tests/unit/test_feature_memory.py checks it on the whole offline calendar). The longest are the
  time-series z-scores of the market and sector groups (Z_WINDOW = 240 values of inputs that read at
  most 21 sessions: 260) and the 52-week windows (253 sessions for mom_12_1).
- Recursive smoothings (EMA, Wilder) have an infinite memory: those whose seed still weighs more
  than float tolerance MEMORY_SESSIONS sessions later are windowed EWMAs over EWMA_WINDOW sessions
  (`gogoku.features.technical.add_windowed_ewm`: EMA60 and EMA200 of the stocks and of TOPIX). The
  others keep TA-Lib's definition: after MEMORY_SESSIONS sessions their seed weighs (1 - alpha)^260,
  at most 4e-9 (Wilder 14, alpha 1/14; the EMA26 of the MACD 2e-9, EMA20 3e-12), below the 6e-8
  of the Float32 the dataset stores. That bounds the seed's weight against the whole sum; a ratio of
  Wilder averages of rare events can still carry more of it: the RSI of a stock that has almost only
  fallen (its average gain made of a few gains long ago) keeps a relative error of (13/14)^k, k the
  sessions from the seed to its last gain (a simulated stock with RSI 0.08 after 200 sessions without
  a gain: 2e-4 on the 0-100 scale between a full build and the build of its day). Windowed Wilder
  averages, as for EMA60/EMA200, would remove it at the cost of TA-Lib's values on a series' first
  EWMA_WINDOW rows.
- Event tables (statements, margin, daily margin, flow, short selling, earnings calendar) are attached
  as of the row's date with a staleness bound per source, compared with a previous publication only
  within a bound, and their rolling statistics take the publications of a bounded period only; each
  module's docstring lists its bounds and its `MEMORY_DAYS` (the sum of the bounds a row's features
  chain through, publication lags included) is at most FEATURE_MEMORY_DAYS (tested). The longest is
  the statements' year-over-year growth: this year's report may be two quarters old and last year's
  is a year before it, so FEATURE_MEMORY_DAYS is a year and two quarters and some slack; the other
  event tables stay within SESSION_MEMORY_DAYS.

Per-stock windows count the stock's own priced sessions: a stock that did not trade on some sessions
(suspended) reaches back further than MEMORY_SESSIONS exchange sessions by as many sessions as it
missed. The build drops rows without a close, so this is the one bound stated in trading sessions of
the stock rather than calendar days.
"""

from __future__ import annotations

# The most calendar days before D that a feature of D may read (20 days below LOOKBACK_DAYS = 620):
# the statements' YoY (gogoku.features.statements.YOY_MAX_AGE_DAYS).
FEATURE_MEMORY_DAYS = 600
# The most calendar days before D that a window over sessions may read, and the other event tables.
SESSION_MEMORY_DAYS = 400
# The fewest JPX sessions in any [D - SESSION_MEMORY_DAYS, D] on the offline calendar (2000-2027).
MEMORY_SESSIONS = 260
# Sessions of the windowed EWMAs (EMA60/EMA200): 250 sessions span at most 384 calendar days.
EWMA_WINDOW = 250
# Calendar days between a raw row's date and the first session that may use it, at most: a publication
# is usable 1 to 3 sessions after its date (`gogoku.features._asof.session_shift`), and 3 sessions after
# a day span at most 13 days on the offline calendar (2019's ten-day Golden Week; tested).
PUBLICATION_LAG_DAYS = 13
