#!/usr/bin/env bash
# The benchmarks on one GPU in under 10 minutes (a 15-minute GPU window, start-up included).
#
#   bash benchmarks/gpu.sh [--out DIR] [--no-install]   # on the GPU machine, from the repo
#   bash benchmarks/gpu.sh --quick                       # CPU rehearsal: every step, tiny sizes
#   bash benchmarks/gpu.sh --dry-run                     # print the steps, run nothing
#
# Steps, each under `timeout` (seconds in brackets; together at most 600 s):
#   1. environment [60; + 420 if installing, which needs a network]: uses the Python that
#      already has JAX with a GPU and flax/optax/orbax (PYTHON, default python3); else runs
#      `pip install -e ".[benchmarks]" "jax[cuda13]==0.9.2"` (cuda12 where the driver is
#      older than CUDA 13; override with JAX_CUDA_EXTRA=cuda12).
#   2. training suite [210]: head to head (scan Trainer, per-step loop, torch on the GPU
#      and the CPU), the breakdown, Burda 2 epochs and Flax 2 epochs with the K=5000 NLL.
#   3. IWAE timing [150]: Burda's architecture on IWAE K=50 and on the ELBO, 2 timed epochs
#      each, a K=5000 test-NLL evaluation on the 10,000 test images; full-run projections.
#   4. kernel suite [150]: genmath against the jnp formula, float32, each workload at its
#      headline size only, 10 repetitions: the sweeps' float64 references on the host and
#      the peers' compilations would not fit (a partial results file survives the timeout).
#   5. report [30]: regenerates benchmarks/README.md when --out is benchmarks/results.
# Results: <out>/training-<device>.json, iwae-<device>.json, <device>.json and gpu.log,
# the device named in each file name and in the files. A failed step does not stop the
# later ones; the script exits 1 if any failed.
#
# MNIST: GENMATH_MNIST_DIR, else shared/data/mnist in or beside the checkout, else .mnist/
# (a folder of the four IDX .gz files; without tensorflow-datasets they are read with numpy).
# A GPU machine that gets only the checkout: `mkdir .mnist && cp ../shared/data/mnist/*.gz
# .mnist/`, `echo /.mnist/ >> .git/info/exclude`, and carry `.mnist`; then run
# `bash benchmarks/gpu.sh --out "$OUT"` (files under $OUT come back) and copy the JSON files
# into benchmarks/results before `python -m benchmarks.report`.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
DRY=0
INSTALL=1
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --dry-run) DRY=1 ;;
    --no-install) INSTALL=0 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

PY="${PYTHON:-python3}"
if [[ -z "$OUT" ]]; then
  if [[ $QUICK == 1 || $DRY == 1 ]]; then OUT="$(mktemp -d -t genmath-gpu-sh-XXXXXX)"; else OUT=benchmarks/results; fi
fi
mkdir -p "$OUT"
LOG="$OUT/gpu.log"
: > "$LOG"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 OMP_WAIT_POLICY=PASSIVE

say() { echo "[gpu.sh $(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

if [[ -z "${GENMATH_MNIST_DIR:-}" ]]; then
  for candidate in shared/data/mnist ../shared/data/mnist .mnist; do
    if [[ -f "$candidate/train-images-idx3-ubyte.gz" ]]; then
      GENMATH_MNIST_DIR="$(cd "$candidate" && pwd)"
      break
    fi
  done
fi
if [[ -z "${GENMATH_MNIST_DIR:-}" && $DRY == 0 ]]; then
  say "no MNIST: set GENMATH_MNIST_DIR to a folder of the four IDX .gz files"; exit 2
fi
export GENMATH_MNIST_DIR="${GENMATH_MNIST_DIR:-<unset>}"

FAILED=()
# step NAME SECONDS COMMAND...: runs COMMAND under `timeout`, its output also into the log;
# a failure or a timeout is recorded and the script goes on.
step() {
  local name="$1" limit="$2"
  shift 2
  say "step $name (timeout ${limit}s): $*"
  if [[ $DRY == 1 ]]; then return 0; fi
  local started=$SECONDS status=0
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG" || status=$?
  if [[ $status != 0 ]]; then
    FAILED+=("$name")
    say "step $name FAILED (exit $status$([[ $status == 124 ]] && echo ', timed out')) after $((SECONDS - started)) s"
  else
    say "step $name done in $((SECONDS - started)) s"
  fi
}

# 1. Environment.
check_env() {
  local want_gpu=$1
  timeout 60 "$PY" - "$want_gpu" <<'EOF'
import sys
import flax, optax, orbax.checkpoint, scipy, matplotlib, PIL, tqdm  # noqa: F401
import jax
print("jax", jax.__version__, jax.devices())
if sys.argv[1] == "1" and jax.default_backend() != "gpu":
    raise SystemExit(f"JAX runs on {jax.default_backend()}, not a GPU")
EOF
}
WANT_GPU=$(( QUICK == 0 ))
say "python: $PY; out: $OUT; MNIST: $GENMATH_MNIST_DIR; quick=$QUICK dry=$DRY"
if [[ $DRY == 0 ]] && ! check_env "$WANT_GPU" 2>&1 | tee -a "$LOG"; then
  if [[ $INSTALL == 0 || $QUICK == 1 ]]; then
    say "the environment lacks JAX on a GPU or the models' packages (see above); not installing"
    exit 2
  fi
  EXTRA="${JAX_CUDA_EXTRA:-}"
  if [[ -z "$EXTRA" ]]; then
    cuda_major=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: \([0-9]*\).*/\1/p' | head -1)
    if [[ "${cuda_major:-0}" -ge 13 ]]; then EXTRA=cuda13; else EXTRA=cuda12; fi
  fi
  step install 420 "$PY" -m pip install -q -e ".[benchmarks]" "jax[$EXTRA]==0.9.2"
  check_env 1 2>&1 | tee -a "$LOG" || { say "still no JAX on a GPU after installing"; exit 2; }
fi

# 2-4. The suites.
if [[ $QUICK == 1 ]]; then
  step training 420 "$PY" -m benchmarks.training --quick --skip-quality --train-examples 640 --out "$OUT"
  step iwae 300 "$PY" -m benchmarks.iwae --quick --out "$OUT"
  step kernels 300 "$PY" -m benchmarks.kernels --quick --workloads normal_kl_standard,vae_loss --out "$OUT"
else
  step training 210 "$PY" -m benchmarks.training --epochs 2 --burda-epochs 2 --flax-epochs 2 --out "$OUT" --no-report
  step iwae 150 "$PY" -m benchmarks.iwae --epochs 2 --objectives iwae:50,elbo:1 --eval-samples 5000 --eval-examples 10000 --out "$OUT"
  step kernels 150 "$PY" -m benchmarks.kernels --reps 10 --dtypes float32 --headline-only --peers genmath,jnp --no-report --out "$OUT"
fi

# 5. Report (only into the committed results folder).
if [[ "$(cd "$OUT" && pwd)" == "$(cd benchmarks/results && pwd)" ]]; then
  step report 30 "$PY" -m benchmarks.report
fi

if [[ $DRY == 1 ]]; then
  say "dry run: nothing was run"
  exit 0
fi
say "results in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
if [[ ${#FAILED[@]} -gt 0 ]]; then
  say "failed steps: ${FAILED[*]}"
  exit 1
fi
say "all steps passed"
