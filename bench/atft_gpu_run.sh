#!/usr/bin/env bash
# ATFT-GAT-FAN on the simulator's default universe, the way the README's GPU figures were made:
#   1. the `make run` dataset (standard plan, RUN_START..RUN_END, lookback 420 days) from the
#      built-in simulator, unless it is already in $GOGOKU_DATA_ROOT/datasets;
#   2. one `gogoku train --fold k` process per walk-forward fold, all at once (one GPU holds them;
#      each fold is trained, checkpointed and predicted on its own);
#   3. `gogoku train` without --fold on the same folder: loads the finished folds and writes
#      metrics.json / predictions.parquet, which `gogoku evaluate` compares with other runs.
#
#   bench/atft_gpu_run.sh RESULTS_DIR [hydra overrides ...]
#   RUN_MODEL=atft_tiny FOLDS=2 bench/atft_gpu_run.sh /tmp/r splits.n_splits=2     # a CPU smoke run
#
# RESULTS_DIR receives metrics.json, predictions.parquet, config.yaml, dataset.json and train.log.
set -euo pipefail

RESULTS=${1:?usage: bench/atft_gpu_run.sh RESULTS_DIR [hydra overrides ...]}
shift
export GOGOKU_DATA_ROOT=${GOGOKU_DATA_ROOT:-/tmp/gogoku-gpu-run}
START=${RUN_START:-2021-07-01}
END=${RUN_END:-2025-06-30}
MODEL=${RUN_MODEL:-atft_gat_fan}
FOLDS=${FOLDS:-5}
FOLD_TIMEOUT=${FOLD_TIMEOUT:-}   # seconds; a fold process still running then is stopped (and the run fails)
PYTHON=${PYTHON:-python3}
# Share the host's cores between the fold processes.
CORES=$(nproc)
THREADS=$(( CORES / FOLDS > 1 ? CORES / FOLDS : 1 ))
export GOGOKU_TORCH_THREADS=${GOGOKU_TORCH_THREADS:-$THREADS}
export POLARS_MAX_THREADS=${POLARS_MAX_THREADS:-$THREADS}
mkdir -p "$RESULTS"
stamp() { date -u +%H:%M:%S; }

DATASET=$GOGOKU_DATA_ROOT/datasets/ml_dataset_standard_${START//-/}_${END//-/}.parquet
if [[ ! -f $DATASET ]]; then
  echo "$(stamp) building the dataset $START .. $END"
  POLARS_MAX_THREADS=$CORES $PYTHON -m gogoku.cli dataset build --start "$START" --end "$END" --plan standard \
    --lookback-days 420 2>"$RESULTS/dataset.err" | tail -1 >"$RESULTS/dataset.json"
fi
# The dataset's content hash, to check it is the one other runs (e.g. the LightGBM baseline) used.
$PYTHON -c "import polars as pl, sys; df = pl.read_parquet(sys.argv[1]); print(df.shape, df.hash_rows(seed=0).sum())" \
  "$DATASET" | tee -a "$RESULTS/dataset.json"

RUN=$GOGOKU_DATA_ROOT/models/${MODEL}_$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"
echo "$(stamp) training $MODEL, $FOLDS fold processes ($GOGOKU_TORCH_THREADS threads each) -> $RUN"
pids=()
for ((k = 0; k < FOLDS; k++)); do
  ${FOLD_TIMEOUT:+timeout "$FOLD_TIMEOUT"} $PYTHON -m gogoku.cli train --dataset "$DATASET" --model "$MODEL" \
    --out "$RUN" --fold "$k" "$@" \
    >"$RUN/fold$k.log" 2>&1 &
  pids+=($!)
done
failed=0
for k in "${!pids[@]}"; do
  if wait "${pids[$k]}"; then echo "$(stamp) fold $k done"; else echo "$(stamp) fold $k FAILED"; failed=1; fi
done
cat "$RUN"/fold*.log >"$RESULTS/train.log"
if ((failed)); then tail -30 "$RESULTS/train.log"; exit 1; fi
echo "$(stamp) assembling the folds"
$PYTHON -m gogoku.cli train --dataset "$DATASET" --model "$MODEL" --out "$RUN" "$@" >>"$RESULTS/train.log" 2>&1
cp "$RUN/metrics.json" "$RUN/predictions.parquet" "$RUN/config.yaml" "$RESULTS/"
grep -hE "parameters|samples/s" "$RESULTS/train.log" | tail -12 || true
echo "$(stamp) done: $RESULTS"
