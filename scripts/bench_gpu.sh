#!/usr/bin/env bash
# The GPU measurements in one script, for a machine with one CUDA GPU: the
# full update at the DMC-vision settings (batch 16 x 64, train ratio 512,
# action repeat 2) at size s and at the 2024 agent's 12m size under `auto`,
# the whole-update compile with and without CUDA graphs, each fast path alone
# against all off (what the CUDA column of dreamer/fast.py's AUTO rests on),
# and a real training run's frames per second.
#
#   bash scripts/bench_gpu.sh [STAGE ...]   # default: check auto train
#
# Stages, in the order given:
#   check     the GPU, torch, the RSSM and world-model tests on it, and tests/test_cuda.py
#             (updates and acting under the CUDA auto switches and with CUDA graphs)
#   auto      dreamer.bench under auto at size s and 12m (environment steps at size s)
#   train     train.py experiment=dmc_vision for TRAIN_S seconds; its logged frames/s
#   compiled  the slow test of the compiled update under CUDA graphs; then at size s:
#             cuda_graphs of the compiled RSSM steps, compile_update, then both
#   compiled12m  the same at 12m
#   compare   every model-side fast path alone against all off, at size s
#
# Results go to OUT (default runs/bench_gpu): one JSON per benchmark, each
# step's log, and a summary line per step on stdout (summary.txt too). Each
# step has its own time limit (STEP_S, default 300 s), so one long compile
# costs only its own step. A folder of wheels from scripts/offline_wheels.sh
# at WHEELS (default .offline/whl) is installed to /tmp/site first, for a
# machine without internet. DEVICE (default cuda), SIZE and LARGE (default s
# and 12m), BENCH_ARGS (appended to every benchmark's arguments, so they win)
# and TRAIN_ARGS (more train.py overrides) make a quick run elsewhere, e.g. on
# a CPU: DEVICE=cpu SIZE=tiny LARGE=tiny BENCH_ARGS="--batch 2 --length 8
# --repeats 1 --warmup 0 --env-steps 2 --workers 2" TRAIN_ARGS="model=tiny
# env.num_envs=2 algo.train_ratio=32" TRAIN_S=60 bash scripts/bench_gpu.sh check auto train.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/bench_gpu}
STEP_S=${STEP_S:-300}
TRAIN_S=${TRAIN_S:-240}
WHEELS=${WHEELS:-.offline/whl}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-s}
LARGE=${LARGE:-12m}
read -r -a BENCH_EXTRA <<<"${BENCH_ARGS:-}"
read -r -a TRAIN_EXTRA <<<"${TRAIN_ARGS:-}"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(check auto train)
for stage in "${stages[@]}"; do
  case $stage in
    check | auto | train | compare | compiled | compiled12m) ;;
    *) echo "unknown stage '$stage'; allowed: check auto train compiled compiled12m compare" >&2; exit 2 ;;
  esac
done
failed=0  # any failed step makes the script exit 1, after every stage has run
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MUJOCO_GL=${MUJOCO_GL:-egl}
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    || { echo "installing the wheels in $WHEELS failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

summary() { echo "$*" | tee -a "$OUT/summary.txt"; }

# bench NAME ARGS...: one dreamer.bench run under STEP_S; its JSON to OUT/NAME.json, a summary line.
# Sequences of 65 steps: the 2024 preset's first step only sets the state, so 16 x 64 steps train, as in training.
bench() {
  local name=$1; shift
  local start=$SECONDS
  timeout "$STEP_S" "$PYTHON" -m dreamer.bench --device "$DEVICE" --batch 16 --length 65 "$@" "${BENCH_EXTRA[@]}" >"$OUT/$name.json" 2>"$OUT/$name.log"
  local rc=$?
  if [ $rc -ne 0 ]; then
    summary "$name: failed (exit $rc after $((SECONDS - start)) s; 124: over STEP_S=$STEP_S s): $(tail -n 1 "$OUT/$name.log")"
    failed=1
    return
  fi
  "$PYTHON" - "$OUT/$name.json" "$name" "$((SECONDS - start))" <<'EOF' | tee -a "$OUT/summary.txt"
import json, sys
out, name, wall = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
if "plain" in out:  # --compare
    print(f"{name}: " + ", ".join(f"{k} {v['agent_update_s'] * 1e3:.1f} ms ({v['speedup']:.2f}x)" for k, v in out.items()))
    sys.exit()
ms = lambda rate: f"{1e3 / rate:.1f} ms" if rate else "-"
if "env_steps_per_s_workers" in out:
    env = f"env {out['env_steps_per_s_workers']:.0f} steps/s ({out['workers']} workers)"
else:
    env = f"env failed: {out['env_error']}" if "env_error" in out else "env not timed"
print(
    f"{name}: size {out['size']}, full update {out['agent_update_s'] * 1e3:.1f} ms "
    f"(world model {ms(out['world_model_updates_per_s'])}, behaviour {ms(out.get('behavior_updates_per_s'))}), "
    f"{out['train_frames_per_s_update_bound']:.0f} frames/s bound, {out['ops_per_update']} ops, "
    f"policy step {out['policy_step_ms']:.1f} ms, {env}, "
    f"peak {out['peak_cuda_mb'] or out['peak_rss_mb']:.0f} MiB, warm-up {sum(out['warmup_s'].values()):.0f} s, wall {wall} s"
)
EOF
}

stage_check() {
  nvidia-smi -L 2>&1 | tee "$OUT/nvidia-smi.txt"
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')" \
    2>&1 | tee -a "$OUT/summary.txt"
  timeout "$STEP_S" "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_rssm.py tests/test_world_model.py \
    tests/test_cuda.py >"$OUT/tests.log" 2>&1 || failed=1
  summary "tests on the GPU (exit $failed: 1 is a failure): $(tail -n 1 "$OUT/tests.log")"
}

stage_auto() {
  bench auto_s --size "$SIZE" --repeats 20 --warmup 3 --env-steps 100 --workers 16 --profile 15
  bench auto_12m --size "$LARGE" --repeats 20 --warmup 3 --env-steps 0 --profile 15
}

stage_train() {
  local dir=$OUT/train start=$SECONDS
  rm -rf "$dir"
  timeout --signal=INT --kill-after=60 "$TRAIN_S" "$PYTHON" train.py experiment=dmc_vision env.task=walker_walk \
    seed=0 device="$DEVICE" eval_every=0 log_every=2000 report_every=0 progress=false hydra.run.dir="$dir" \
    "${TRAIN_EXTRA[@]}" >"$OUT/train.log" 2>&1
  local rc=$?
  "$PYTHON" - "$dir/metrics.jsonl" "$rc" "$((SECONDS - start))" <<'EOF' | tee -a "$OUT/summary.txt"
import json, sys
path, rc, wall = sys.argv[1:]
try:
    rows = [json.loads(line) for line in open(path)]
except OSError:
    sys.exit(print(f"train: no metrics (exit {rc} after {wall} s); see train.log"))
fps = [r["fps"] for r in rows if r.get("fps") is not None]
updates = max((r.get("train/updates") or 0 for r in rows), default=0)
later = fps[1:] or fps  # the first window holds start-up and compiling
print(f"train: dmc_vision walker_walk, {max((r['step'] for r in rows), default=0)} frames and {updates:.0f} updates "
      f"in {wall} s (exit {rc}; 124: stopped at TRAIN_S), frames/s per 2k-frame window {[round(f) for f in fps]}, "
      f"after the first {sum(later) / max(len(later), 1):.0f}")
EOF
  cp "$dir/metrics.jsonl" "$OUT/train_metrics.jsonl" 2>/dev/null
}

stage_compiled() {  # NAME SIZE
  if [ "$1" = s ]; then  # the whole compiled update under CUDA graphs trains and acts (tiny agent)
    timeout "$STEP_S" "$PYTHON" -m pytest -q -p no:cacheprovider -m slow tests/test_cuda.py >"$OUT/tests_compiled.log" 2>&1 \
      || failed=1
    summary "compiled-update test on the GPU (exit $failed: 1 is a failure): $(tail -n 1 "$OUT/tests_compiled.log")"
  fi
  # The RSSM steps compiled (auto on CUDA) and captured as CUDA graphs: one step compiles, not the unrolled loop, so first.
  bench "step_graphs_$1" --size "$2" --repeats 20 --warmup 3 --env-steps 0 --profile 15 fast.cuda_graphs=true
  bench "compiled_$1" --size "$2" --repeats 20 --warmup 3 --env-steps 0 --profile 15 fast.compile_update=true
  bench "graphs_$1" --size "$2" --repeats 20 --warmup 3 --env-steps 0 --profile 15 \
    fast.compile_update=true fast.cuda_graphs=true
}

stage_compare() {
  bench compare_s --size "$SIZE" --repeats 10 --warmup 3 --compare compile,bf16,channels_last,fused_optim,keep_memory,compile_behavior
}

for stage in "${stages[@]}"; do
  case $stage in
    check | auto | train | compare) "stage_$stage" ;;
    compiled) stage_compiled s "$SIZE" ;;
    compiled12m) stage_compiled 12m "$LARGE" ;;
  esac
done
exit "$failed"
