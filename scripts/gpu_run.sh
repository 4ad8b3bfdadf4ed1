#!/usr/bin/env bash
# Everything GPU-side in one call on the lent GPU host: build (its own nvcc and cmake), run the
# GPU tests, run the benchmarks, print a short table last, and leave JSON + logs in $OUT.
#
# Carried with the call (nothing is installed from the network there):
#   .deps/debs/*.deb   Debian 12 -dev packages (fmt, spdlog, nlohmann-json, CLI11, xxhash, gtest,
#                      benchmark), unpacked under /tmp/deps; fetch with scripts/gpu_fetch_deps.sh
#   .whl/libucx_cu13-*.whl   PyPI's CUDA-enabled UCX
#   .whl/accelerate-*.whl    (hf mode) for transformers' FP8 loader, if the host has none
# Usage (device tool): bash scripts/gpu_run.sh
#   [full|pipe|check|python|write|probe|cross|hf|nccl|integrity|fsbench|cpu18]
#   full: everything; pipe: GPU tests, our benchmarks and the demos (no torch/NCCL baselines, no
#   CPU tests); check: GPU tests + demos; python: the PyTorch path only (CUDA-tensor Python
#   tests, the FSDP2 torchrun test, the Python push benchmark next to the demo); write: how
#   the push rate depends on size, streams, pieces and peers (the write-phase investigation);
#   probe / cross: where the demo's write phase loses to the Python push (issue 13;
#   scripts/gpu_probe_table.py);
#   hf: real transformers models (Qwen3, Qwen3-MoE, DeepSeek-V3) through derived layouts into
#   block-FP8 models, generation checked after every version (tests/gpu/python/hf_models.py;
#   uses the host's transformers 5.x), then the same with --transport filesystem: every version
#   also a checkpoint directory that transformers' from_pretrained loads onto the GPU (issue 16;
#   tiny models: trainer and receiver run on the CPU, as the filesystem transport moves host
#   memory).
#   nccl: the nccl transport (issue 16): its GPU tests, the GLM-5 demo over NCCL 1 -> 1 and
#   2 -> 2 beside CUDA-IPC, and raw NCCL send/recv (bench/gpu/nccl_sendrecv.py) of the same bytes;
#   scripts/gpu_nccl_table.py prints the comparison. Builds against the NCCL that PyTorch ships
#   (nvidia-nccl wheel) when there is one, so both sides of the comparison run one NCCL.
#   fsbench: issue 16 on this host's CPUs and disk (16 cores, nothing else running): the
#   filesystem transport's write phase against sequential writes of the same bytes, to the local
#   disk and to /dev/shm (bench_push_cpu --transport filesystem).
#   cpu18: issue 18 on this host's quiet CPUs: the checksum's rates (bench_quant_cpu),
#   bench_push_cpu --checksum-ab in WS_ROUNDS rounds (default 3; the CPU checksum overhead),
#   and the Python flip into CUDA tensors (tests/python/test_cuda.py -k flip).
#   integrity: issue 18: the checksum and probe kernels against their CPU references, the GPU
#   probe's own test, the GLM-5 update with and without checksums (overhead), and --flip (a swap
#   of the arenas) and --flip-copy against --staging (how long generation is parked, by the GPU
#   probe's gap, against the wire time); scripts/gpu_integrity_table.py prints the table,
#   integrity.json.
# WS_BUNDLE=1 packs everything but summary.{txt,json} into results.tgz (the device tool brings
# back only a few files).
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/weightsync-gpu-out}
mkdir -p "$OUT"
MODE=${1:-full}
LOG="$OUT/gpu_run.log"
: >"$LOG"
declare -A STATUS

step() {  # step NAME COMMAND...: runs, logs, records pass/fail, never aborts the script
    local name=$1
    shift
    echo "=== $name: $*" | tee -a "$LOG"
    local t0=$SECONDS
    if "$@" >>"$LOG" 2>&1; then STATUS[$name]="ok $((SECONDS - t0))s"; else STATUS[$name]="FAILED($?) $((SECONDS - t0))s"; fi
    echo "=== $name: ${STATUS[$name]}" | tee -a "$LOG"
}

nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv | tee "$OUT/gpus.csv"
NGPU=$(nvidia-smi -L | wc -l)

# Dependencies: Debian's headers/libs unpacked, PyPI's CUDA UCX unpacked.
mkdir -p /tmp/deps /tmp/ucxwheel
for d in .deps/debs/*.deb; do dpkg -x "$d" /tmp/deps; done
python3 -m zipfile -e .whl/libucx_cu13-*.whl /tmp/ucxwheel
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:/tmp/ucxwheel/libucx/lib:${LD_LIBRARY_PATH:-}
PY=$(command -v python3)
# NCCL for the nccl transport: PyTorch's (the nvidia-nccl wheel), else the CUDA toolkit's.
NCCL_ROOT=$($PY -c "import nvidia.nccl as n; print(list(n.__path__)[0])" 2>/dev/null || true)

step configure cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH=/tmp/deps/usr -DWEIGHTSYNC_UCX_ROOT=/tmp/ucxwheel/libucx \
    -DWEIGHTSYNC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DPython_EXECUTABLE="$PY" \
    -DPYBIND11_FINDPYTHON=ON -Dpybind11_DIR="$($PY -m pybind11 --cmakedir 2>/dev/null)" \
    -DWEIGHTSYNC_NCCL_ROOT="$NCCL_ROOT"
if [ "$MODE" = python ] || [ "$MODE" = hf ] || [ "$MODE" = cross ]; then  # CLI + Python only
    step build cmake --build build-gpu -j"$(nproc)" --target weightsync_cli weightsync_python
elif [ "$MODE" = nccl ]; then  # the CLI and the tests this mode runs (the GPU test exists only
    # where NCCL was found: its own step)
    step build cmake --build build-gpu -j"$(nproc)" --target weightsync_cli planner_test \
        cli_refusals_test
    step build_nccl_test cmake --build build-gpu -j"$(nproc)" --target nccl_gpu_test
elif [ "$MODE" = cpu18 ]; then
    step build cmake --build build-gpu -j"$(nproc)" --target weightsync_cli bench_push_cpu \
        bench_quant_cpu weightsync_python
elif [ "$MODE" = fsbench ]; then
    step build cmake --build build-gpu -j"$(nproc)" --target weightsync_cli bench_push_cpu
elif [ "$MODE" = integrity ]; then
    step build cmake --build build-gpu -j"$(nproc)" --target weightsync_cli kernels_gpu_test \
        cuda_ipc_gpu_test cuda_ipc_peer sim_gpu_test engine_gpu_test
else
    step build cmake --build build-gpu -j"$(nproc)"
fi
B=build-gpu
IG=$((NGPU >= 2 ? 1 : 0))
if [ "$MODE" = cross ]; then
    # Issue 13: the Python push (write phase at link rate) with one side swapped for the C++
    # agent the demo starts (write phase 20 % slower): which side carries the difference.
    for side in receiver trainer; do
        step "cross_$side" env PYTHONPATH=build-gpu/python "$PY" bench/python/bench_push_torch.py \
            --build build-gpu --layers 4 --versions 5 --no-pipeline --cpp-side "$side" \
            --json-out "$OUT/push_torch_cpp_$side.json"
    done
    $PY scripts/gpu_probe_table.py "$OUT" | tee "$OUT/probe.txt"
    MODE=$MODE $PY scripts/gpu_summary.py "$OUT" "${!STATUS[@]}" -- "${STATUS[@]}" >"$OUT/summary.txt"
    cat "$OUT/probe.txt" >>"$OUT/summary.txt"
    exit 0
fi
if [ "$MODE" = cpu18 ]; then
    step python_flip env PYTHONPATH=build-gpu/python "$PY" -m pytest -v -p no:cacheprovider \
        tests/python/test_cuda.py -k flip
    lscpu >"$OUT/lscpu.txt"
    # The host's checksum rates (from cache, from memory) and conversion, then the A/B.
    step checksum_rates "$B/bench/kernels/bench_quant_cpu" --benchmark_filter='Checksum|QuantBf16' \
        --benchmark_out="$OUT/quant_cpu_gpuhost.json" --benchmark_out_format=json
    step checksum_ab "$B/bench/e2e/bench_push_cpu" --bin "$B/weightsync" --steps 3 --checksum-ab \
        --rounds "${WS_ROUNDS:-3}" --json-out "$OUT/push_cpu_checksum_gpuhost.json"
    MODE=$MODE $PY scripts/gpu_summary.py "$OUT" "${!STATUS[@]}" -- "${STATUS[@]}" | tee "$OUT/summary.txt"
    exit 0
fi
if [ "$MODE" = fsbench ]; then
    mkdir -p /tmp/fsbench
    step fsbench "$B/bench/e2e/bench_push_cpu" --bin "$B/weightsync" --transport filesystem \
        --fs-root /tmp/fsbench --fs-root /dev/shm --steps 3 \
        --json-out "$OUT/push_cpu_filesystem_gpuhost.json"
    MODE=$MODE $PY scripts/gpu_summary.py "$OUT" "${!STATUS[@]}" -- "${STATUS[@]}" | tee "$OUT/summary.txt"
    exit 0
fi
if [ "$MODE" = hf ]; then
    # bf16 trainer process on GPU 0 -> block-FP8 transformers model in a process on GPU $IG.
    if [ -z "${WS_HF_FS_ONLY:-}" ]; then  # WS_HF_FS_ONLY=1: the filesystem checkpoints only
        step hf_models env PYTHONPATH=build-gpu/python "$PY" tests/gpu/python/hf_models.py \
            --trainer-gpu 0 --inference-gpu "$IG" --out "$OUT/hf_models.json"
    fi
    # transformers' FP8 loader imports accelerate: the carried wheel where the host has none.
    ACCEL=/tmp/accelerate
    if ! $PY -c "import accelerate" 2>/dev/null; then
        python3 -m zipfile -e .whl/accelerate-*.whl "$ACCEL"
    fi
    step hf_models_fs env PYTHONPATH="build-gpu/python:$ACCEL" "$PY" \
        tests/gpu/python/hf_models.py --trainer-gpu 0 --inference-gpu "$IG" \
        --archs qwen3,qwen3_moe --versions 2 --scale tiny --transport filesystem \
        --out "$OUT/hf_models_fs.json"
    MODE=$MODE $PY scripts/gpu_summary.py "$OUT" "${!STATUS[@]}" -- "${STATUS[@]}" | tee "$OUT/summary.txt"
    exit 0
fi
# The GLM-5 update at real dimensions (5 layers: 3 dense + 2 MoE, 30.2 GB per push), GPU0 ->
# GPU1: the phases one after the other (each measured alone), then pipelined; with 2 trainer
# processes on GPU0 (FSDP 2 x EP 2) and with 1. Each run's JSON line goes to demo_<name>.json.
# WS_GLM5_LAYERS overrides the 5 layers (e.g. 3 where one GPU holds every process).
GLM5=(--device cuda --trainer-gpus 0 --inference-gpus $IG --model glm5 --layers "${WS_GLM5_LAYERS:-5}"
    --inference-engines 1 --inference-ranks 2 --inference-ep 2 --steps 4 --json --timeout 600)
T2=(--trainer-ranks 2 --trainer-ep 2)
T1=(--trainer-ranks 1 --trainer-ep 1)
demo() {  # demo NAME ARGS...: one demo run, its JSON line kept
    local name=$1
    shift
    local before
    before=$(wc -l <"$LOG")
    step "demo_$name" "$B/weightsync" demo "$@" --log-dir "$OUT/demo_logs_$name"
    tail -n +$((before + 1)) "$LOG" | grep -h '^{"checked_bytes' | tail -1 >"$OUT/demo_$name.json" || true
}
if [ "$MODE" = nccl ]; then
    grep -h "weightsync: CUDA" "$LOG" | tail -1  # says whether NCCL was found
    # The receive order and the CLI refusals (CPU), then the GPU tests: 1 -> 1 and 2 -> 2
    # bit-exact, a trainer killed mid-version (skipped below 2 GPUs).
    step nccl_unit ctest --test-dir build-gpu -R 'Receives|CliRefusals.Nccl' --output-on-failure
    step nccl_gpu_tests ctest --test-dir build-gpu -L gpu -R NcclJob --output-on-failure \
        --timeout 300
    # GLM-5 at real dimensions, 5 layers, GPU 0 -> GPU $IG, every version verified: 1 -> 1 serial
    # (the write phase alone: its rate is compared with raw NCCL), 1 -> 1 and 2 -> 2 pipelined
    # (2 -> 2: both trainers on GPU 0, both inference ranks on GPU $IG), over NCCL and CUDA-IPC.
    # 3 versions each (the medians skip the first), so that the mode fits one 10-minute call.
    N1=(--device cuda --trainer-gpus 0 --inference-gpus $IG --model glm5 --layers 5
        --inference-engines 1 --inference-ranks 1 --inference-ep 1 --steps 3 --json
        --timeout 300 "${T1[@]}")
    N2=(--device cuda --trainer-gpus 0 --inference-gpus $IG --model glm5 --layers 5
        --inference-engines 1 --inference-ranks 2 --inference-ep 2 --steps 3 --json
        --timeout 300 "${T2[@]}")
    demo nccl_1to1_serial "${N1[@]}" --transport nccl --no-pipeline
    demo ipc_1to1_serial "${N1[@]}" --transport cuda_ipc --no-pipeline
    demo nccl_1to1 "${N1[@]}" --transport nccl
    demo ipc_1to1 "${N1[@]}" --transport cuda_ipc
    demo nccl_2to2 "${N2[@]}" --transport nccl
    demo ipc_2to2 "${N2[@]}" --transport cuda_ipc
    # Raw NCCL send/recv of one 1 -> 1 version's bytes: in 64 MiB pieces, and in pieces of the
    # demo's mean write.
    WIRE=$($PY -c "import json; d=json.load(open('$OUT/demo_nccl_1to1_serial.json')); s=d['per_step'][-1]; print(s['wire_bytes'], max(1, s['wire_bytes'] // max(1, s['writes'])))" 2>/dev/null || echo "32212254720 67108864")
    read -r TOTAL MEAN <<<"$WIRE"
    step nccl_raw "$PY" bench/gpu/nccl_sendrecv.py --total "$TOTAL" --piece 67108864 \
        --passes 3 --json-out "$OUT/nccl_raw.json"
    step nccl_raw_pieces "$PY" bench/gpu/nccl_sendrecv.py --total "$TOTAL" --piece "$MEAN" \
        --passes 3 --json-out "$OUT/nccl_raw_pieces.json"
    $PY scripts/gpu_nccl_table.py "$OUT" | tee "$OUT/nccl.txt"
    MODE=$MODE $PY scripts/gpu_summary.py "$OUT" "${!STATUS[@]}" -- "${STATUS[@]}" >"$OUT/summary.txt"
    cat "$OUT/nccl.txt" >>"$OUT/summary.txt"
    cat "$OUT/summary.txt"
    exit 0
fi
if [ "$MODE" = integrity ]; then
    # Issue 18. The checksum kernel bit for bit against the CPU reference. Then the GLM-5 update
    # (5 layers, FSDP 2 x EP 2 on GPU 0 -> 2 ranks on GPU $IG) without and with --checksum,
    # alternated twice in this run (overhead target <= 3 %); --staging against --flip (swap) and
    # --flip-copy (the gap the GPU probe saw, probe_gap_s, and the readers parked, paused_s,
    # against the wire time post + drain of the same version: target <= 0.2 x); and a verified
    # --flip --checksum run (bit-exact every version).
    step checksum_gpu_test "$B/tests/gpu/kernels/kernels_gpu_test" --gtest_filter='KernelsChecksumGpu.*:KernelsProbeGpu.*'
    step probe_gpu_test ctest --test-dir "$B" -R GpuProbe --output-on-failure
    # The trainer's checksums on the device (a range sent to both engines summed once).
    step trainer_checksums_gpu_test "$B/tests/gpu/engine/engine_gpu_test"
    # The receivers check each stage as the trainers' staged notices arrive: CUDA-IPC marks.
    step cuda_ipc_gpu_test "$B/tests/gpu/transport/cuda_ipc_gpu_test"
    for i in 1 2; do
        demo "i_plain_$i" "${GLM5[@]}" "${T2[@]}" --no-verify
        demo "i_checksum_$i" "${GLM5[@]}" "${T2[@]}" --no-verify --checksum
    done
    demo i_staging "${GLM5[@]}" "${T2[@]}" --no-verify --staging --checksum
    demo i_flip "${GLM5[@]}" "${T2[@]}" --no-verify --flip --checksum
    demo i_flip_copy "${GLM5[@]}" "${T2[@]}" --no-verify --flip-copy --checksum
    demo i_flip_verified "${GLM5[@]}" "${T2[@]}" --flip --checksum
    $PY scripts/gpu_integrity_table.py "$OUT" --json-out "$OUT/integrity.json" | tee "$OUT/integrity.txt"
    MODE=$MODE $PY scripts/gpu_summary.py "$OUT" "${!STATUS[@]}" -- "${STATUS[@]}" >"$OUT/summary.txt"
    cat "$OUT/integrity.txt" >>"$OUT/summary.txt"
    cat "$OUT/summary.txt"
    exit 0
fi
if [ "$MODE" = probe ]; then
    # Issue 13: the demo's write phase (1 -> 1, GLM-5 4 layers, 14.9 GB, serial) with and without
    # verification and UCX beside CUDA-IPC, and the Python push with its receiver's tensors one
    # allocation each (as PyTorch holds them) or carved from one arena (as the demo holds them).
    # (2026-11-30 full run: the Python push drains 14.9 GB in 0.028 s after a 0.010 s conversion,
    # the demo of the same shape in 0.042 s.)
    P1=(--device cuda --trainer-gpus 0 --inference-gpus $IG --model glm5 --layers 4
        --trainer-ranks 1 --trainer-ep 1 --inference-engines 1 --inference-ranks 1
        --inference-ep 1 --steps 4 --json --timeout 600)
    # The DeviceGuard fix (52f00d7): an inference rank on GPU 1 must not open a context on
    # GPU 0. Which processes hold a context on which GPU, sampled during one demo and one push.
    step guard_test ctest --test-dir build-gpu -R DeviceGuard --output-on-failure
    apps() { for _ in $(seq 1 48); do
        nvidia-smi --query-compute-apps=pid,process_name,gpu_bus_id,used_memory \
            --format=csv,noheader; sleep 0.25; done | sort | uniq -c >"$OUT/compute_apps_$1.txt"; }
    apps demo &
    demo p_auto "${P1[@]}" --no-pipeline
    wait
    demo p_auto_noverify "${P1[@]}" --no-pipeline --no-verify
    demo p_ipc "${P1[@]}" --no-pipeline --transport cuda_ipc
    demo p_ipc_noverify "${P1[@]}" --no-pipeline --transport cuda_ipc --no-verify
    apps torch &
    step torch_tensors env PYTHONPATH=build-gpu/python "$PY" bench/python/bench_push_torch.py \
        --build build-gpu --layers 4 --versions 5 --no-pipeline \
        --json-out "$OUT/push_torch_tensors.json"
    step torch_arena env PYTHONPATH=build-gpu/python "$PY" bench/python/bench_push_torch.py \
        --build build-gpu --layers 4 --versions 5 --no-pipeline --receiver-arena \
        --json-out "$OUT/push_torch_arena.json"
    wait
    for side in receiver trainer; do
        step "cross_$side" env PYTHONPATH=build-gpu/python "$PY" bench/python/bench_push_torch.py \
            --build build-gpu --layers 4 --versions 5 --no-pipeline --cpp-side "$side" \
            --json-out "$OUT/push_torch_cpp_$side.json"
    done
    $PY scripts/gpu_probe_table.py "$OUT" | tee "$OUT/probe.txt"
    MODE=$MODE $PY scripts/gpu_summary.py "$OUT" "${!STATUS[@]}" -- "${STATUS[@]}" >"$OUT/summary.txt"
    cat "$OUT/probe.txt" >>"$OUT/summary.txt"
    exit 0
fi
if [ "$MODE" = write ]; then
    # Why the engine's write phase (30.2 GB to 2 receivers) runs below the push benchmark: the
    # benchmark at growing sizes, with more streams, with bigger pieces; the demo with 1 peer.
    # (2026-11-28: uniform 64 MiB pieces run at 388 GB/s from 8 to 30 GiB, 395 with 256 MiB;
    # the demo's write phase at 310-312 GB/s with 1 or 2 receivers.) Now the plan's own writes.
    # (Same day: the plan's own 302 writes, 24.8 GB, posted by bench_push_gpu --plan glm5:5 run at
    # 382 GB/s, 389 with 256 MiB chunks: the pattern is not the cause; UCX registration on the
    # receivers and verification are not either.) Now the engine, 1 -> 1, serial, with more copy
    # streams and bigger chunks.
    ONE=(--device cuda --trainer-gpus 0 --inference-gpus $IG --model glm5 --layers 5
        --inference-engines 1 --inference-ranks 1 --inference-ep 1 --steps 3 --json
        --timeout 600 "${T1[@]}" --no-pipeline)
    demo w_s4 "${ONE[@]}"
    demo w_s8 "${ONE[@]}" --transport-options '{"cuda_ipc": {"streams": 8}}'
    demo w_s16 "${ONE[@]}" --transport-options '{"cuda_ipc": {"streams": 16}}'
    demo w_c256 "${ONE[@]}" --transport-options '{"cuda_ipc": {"chunk_bytes": 268435456}}'
    for n in w_s4 w_s8 w_s16 w_c256; do
        echo "$n: $($PY -c "import json,sys; d=json.load(open('$OUT/demo_$n.json')); print([(round(s['convert_s'],4), round(s['post_s'],4), round(s['drain_s'],4), round(s['pause_s'],4), round(s['total_s'],4)) for s in d['per_step']])")"
    done
    MODE=$MODE $PY scripts/gpu_summary.py "$OUT" "${!STATUS[@]}" -- "${STATUS[@]}"
    grep -h "avg_gbps\|GB/s" "$LOG" | tail -30
    exit 0
fi
step python_cuda env PYTHONPATH=build-gpu/python "$PY" -m pytest -v -p no:cacheprovider tests/python/test_cuda.py
# The PyTorch path at GLM-5's real dimensions (4 layers: 3 dense + 1 MoE, 26 GB of trainer
# tensors): a real FSDP2 trainer (torchrun, fully_shard, NCCL) into an engine on the same GPUs,
# bit-exact every version; then the Python push next to the demo of the same shapes (the FSDP2
# row reuses that run's timings).
if [ "$NGPU" -ge 2 ]; then
    step fsdp2 env PYTHONPATH=build-gpu/python "$PY" -m torch.distributed.run --nproc-per-node 2 \
        tests/python/fsdp2_push.py --layers 4 --versions 5 --json-out "$OUT/fsdp2.json"
    step bench_torch env PYTHONPATH=build-gpu/python "$PY" bench/python/bench_push_torch.py \
        --build build-gpu --layers 4 --versions 5 --fsdp2-result "$OUT/fsdp2.json" \
        --json-out "$OUT/push_torch.json"
fi
if [ "$MODE" = python ]; then
    MODE=$MODE $PY scripts/gpu_summary.py "$OUT" "${!STATUS[@]}" -- "${STATUS[@]}" | tee "$OUT/summary.txt"
    exit 0
fi
step gpu_tests ctest --test-dir build-gpu -L gpu --output-on-failure --timeout 300
if [ "$MODE" = full ]; then
    step all_tests ctest --test-dir build-gpu -LE gpu -j8 --timeout 300 --output-on-failure
fi

if [ "$MODE" != check ]; then
step overlap $B/bench/gpu/bench_overlap --json-out "$OUT/overlap.json"
step quant_ours $B/bench/kernels/bench_quant --json-out "$OUT/quant_ours.json"
step push_ipc $B/bench/gpu/bench_push_gpu --json-out "$OUT/push_ipc.json"
# The GLM-5 demo's own 302 writes (1 trainer -> 1 inference rank), then with 50 GiB of other
# memory on each GPU as the engine's processes hold (weights, reference).
step push_plan $B/bench/gpu/bench_push_gpu --plan glm5:5 --passes 3 --json-out "$OUT/push_plan.json"
step push_plan_ballast $B/bench/gpu/bench_push_gpu --plan glm5:5 --passes 3 \
    --ballast $((50 << 30)) --json-out "$OUT/push_plan_ballast.json"
if [ "$MODE" = full ]; then
    step quant_torch_compile $PY bench/kernels/quant_torch_compile.py --json-out "$OUT/quant_torch.json"
    if [ "$NGPU" -ge 2 ]; then
        step push_nccl $PY bench/gpu/nccl_sendrecv.py --json-out "$OUT/push_nccl.json"
    fi
fi
fi

demo serial "${GLM5[@]}" "${T2[@]}" --no-pipeline
demo pipelined "${GLM5[@]}" "${T2[@]}"
demo 1trainer_serial "${GLM5[@]}" "${T1[@]}" --no-pipeline
demo 1trainer_pipelined "${GLM5[@]}" "${T1[@]}"
demo ucx --device cuda --transport ucx --trainer-gpus 0 --inference-gpus $IG --model glm5 \
    --layers 4 --trainer-ranks 1 --trainer-ep 1 --inference-engines 1 --inference-ranks 1 \
    --inference-ep 1 --steps 2 --json --timeout 600
# The fixed cost of a version: a 1.1 MB model, 1 -> 1 across the two GPUs (issue 13, part 4).
step version_cost "$PY" bench/e2e/version_cost.py --build "$B" --device cuda --trainer-gpu 0 \
    --inference-gpu "$IG" --json-out "$OUT/version_cost.json"
# 1000 versions of glm5-tiny on the GPUs (4 trainer processes on GPU 0, 2 engines of 2 ranks on
# the last): every process's RSS, fds and GPU memory, and the store's keys (issue 14, part 5).
if [ "$MODE" = full ]; then
    step soak_gpu $B/bench/e2e/bench_soak --versions 1000 --sample 100 --device cuda \
        --gpus "$NGPU" --json-out "$OUT/soak_gpu.json"
fi

MODE=$MODE $PY scripts/gpu_summary.py "$OUT" "${!STATUS[@]}" -- "${STATUS[@]}" | tee "$OUT/summary.txt"
if [ "${WS_BUNDLE:-0}" = 1 ]; then
    tar -C "$OUT" -czf /tmp/results.tgz --exclude=summary.txt --exclude=summary.json .
    find "$OUT" -mindepth 1 -maxdepth 1 ! -name summary.txt ! -name summary.json -exec rm -rf {} +
    mv /tmp/results.tgz "$OUT/results.tgz"
fi
