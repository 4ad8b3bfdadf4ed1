#!/usr/bin/env bash
# Multi-GPU scaling run (issue 6) in one device call on a 4-GPU host: 2 trainer GPUs -> 2 inference
# GPUs next to 1 -> 1, each bit-exact every version, with NCCL send/recv pairs of the same bytes
# and the planner's prediction. Same carried dependencies as scripts/gpu_run.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/weightsync-gpu-out}
mkdir -p "$OUT" /tmp/deps /tmp/ucxwheel
nvidia-smi --query-gpu=index,name,memory.total --format=csv | tee "$OUT/gpus.csv"
nvidia-smi topo -m | tee "$OUT/topo.txt"
for d in .deps/debs/*.deb; do dpkg -x "$d" /tmp/deps; done
python3 -m zipfile -e .whl/libucx_cu13-*.whl /tmp/ucxwheel
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:/tmp/ucxwheel/libucx/lib:${LD_LIBRARY_PATH:-}
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=/tmp/deps/usr \
    -DWEIGHTSYNC_UCX_ROOT=/tmp/ucxwheel/libucx -DWEIGHTSYNC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DWEIGHTSYNC_BUILD_TESTS=OFF -DWEIGHTSYNC_BUILD_BENCH=OFF -DWEIGHTSYNC_BUILD_PYTHON=OFF >"$OUT/build.log" 2>&1
cmake --build build-gpu -j"$(nproc)" --target weightsync_cli >>"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
W=build-gpu/weightsync
COMMON="--device cuda --model glm5 --layers 5 --steps 3 --json --timeout 600"
$W plan --model glm5 --layers 5 --trainer-ranks 2 --trainer-ep 2 --inference-engines 1 --inference-ranks 2 --inference-ep 2 --json > "$OUT/plan_2to2.json"
$W demo $COMMON --trainer-ranks 1 --trainer-ep 1 --inference-engines 1 --inference-ranks 1 --inference-ep 1 \
    --trainer-gpus 0 --inference-gpus 1 2>&1 | tail -1 > "$OUT/demo_1to1.json"
$W demo $COMMON --trainer-ranks 2 --trainer-ep 2 --inference-engines 1 --inference-ranks 2 --inference-ep 2 \
    --trainer-gpus 0 1 --inference-gpus 2 3 2>&1 | tail -1 > "$OUT/demo_2to2.json"
python3 bench/gpu/nccl_pairs.py --pairs 1 --bytes $((15 << 30)) --json-out "$OUT/nccl_1pair.json"
python3 bench/gpu/nccl_pairs.py --pairs 2 --bytes $((15 << 30)) --json-out "$OUT/nccl_2pairs.json"
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
def load(n):
    try: return json.load(open(os.path.join(out, n)))
    except Exception as e: return {"error": str(e)}
for n in ("demo_1to1.json", "demo_2to2.json"):
    d = load(n)
    print(n, "verified", d.get("verified"), "mismatched", d.get("mismatched_bytes"), "error", d.get("error"))
    for s in d.get("per_step", []):
        w = s["wire_bytes"]
        print(f"  v{s['version']}: {w/1e9:.1f} GB total {s['total_s']:.3f}s convert {s['convert_s']:.3f}s "
              f"write {s['write_s']:.3f}s ({w/s['write_s']/1e9:.0f} GB/s) hook {s.get('hook_s',0):.3f}s")
p = load("plan_2to2.json")
print("plan 2->2: recv max", p.get("inference_recv_bytes_max"), "send max", p.get("trainer_send_bytes_max"),
      "predicted at 397 GB/s/link:", (max(p.get("trainer_send_bytes_max",0), p.get("inference_recv_bytes_max",0)))/397e9)
for n in ("nccl_1pair.json", "nccl_2pairs.json"):
    d = load(n); print(n, d.get("aggregate_gbps"), d.get("per_gpu_gbps"))
PY
