#!/usr/bin/env bash
# The ablation table on a CPU-sized universe: the built-in simulator's market (STOCKS stocks, seed 42),
# a standard-plan dataset over START..END, then `gogoku ablate` (atft_tiny: full, no_gat, no_fan,
# tft_only, and LightGBM) on the same folds, seeds and test rows. On a GPU machine pass a bigger
# universe and the production model, e.g.
#   STOCKS=300 START=2021-07-01 MODEL=atft_gat_fan EXTRA='model.training.device=cuda' bench/ablation.sh DIR
# Usage: bench/ablation.sh DIR   (DIR: the data root; rerun to resume; the table is DIR/ablation/evaluation/report.md)
set -euo pipefail
ROOT=${1:?usage: bench/ablation.sh DATA_ROOT}
STOCKS=${STOCKS:-50}
START=${START:-2023-07-03}
END=${END:-2025-06-30}
MODEL=${MODEL:-atft_tiny}
# Two epochs per fold on a CPU: one without FAN/SAN and GAT, one with both (what each variant switches off).
PHASES=${PHASES:-'model.training.phases=[{name:baseline,epochs:1,adaptive_norm:false,gat:false},{name:gat,epochs:1,adaptive_norm:true,gat:true}]'}
SPLITS=${SPLITS:-'splits.n_splits=2 splits.min_train=200 splits.min_test=60'}
EXTRA=${EXTRA:-}
HERE=$(cd "$(dirname "$0")/.." && pwd)
GOGOKU=${GOGOKU:-$HERE/.venv/bin/gogoku}
SOURCES=trading_calendar,listed_info,daily_quotes,topix,statements,announcement,trades_spec,weekly_margin_interest,daily_margin_interest,short_selling,short_selling_positions,index_option

export GOGOKU_DATA_ROOT=$ROOT GOGOKU_SIM_STOCKS=$STOCKS JQUANTS_PLAN_TIER=standard
unset JQUANTS_API_URL
history=$(python3 -c "import datetime as d; print(d.date.fromisoformat('$START') - d.timedelta(days=620))")
t0=$(date +%s)
"$GOGOKU" cache refresh --sources "$SOURCES" --start "$history" --end "$END" > /dev/null
"$GOGOKU" dataset build --start "$START" --end "$END" --plan standard --offline > /dev/null
t1=$(date +%s)
# shellcheck disable=SC2086  # SPLITS and EXTRA are lists of overrides
"$GOGOKU" ablate --model "$MODEL" --out "$ROOT/ablation" $SPLITS "$PHASES" $EXTRA > "$ROOT/ablation.json"
t2=$(date +%s)
echo "{\"data_s\": $((t1 - t0)), \"ablation_s\": $((t2 - t1)), \"report\": \"$ROOT/ablation/evaluation/report.md\"}"
