"""The J-Quants market simulator: a deterministic simulated Tokyo market served over a J-Quants-compatible API.

Layers, each importing only those above it: `base` (reference data, parameters, helpers, state types and
the `MarketState` protocol); the generators `signal`, `statements`, `tables`, `derivatives` and `oracle`
(they read a market through `MarketState`); `market` (`SimMarket`, the orchestrator); `query` and
`server` (the HTTP API); `local` (the built-in simulator of a process, from Settings).
"""
