#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/corpus/<target>/) and nothing else.

The seeds are small, valid examples of what each decoder reads, trimmed from what a real
`weightsync demo --model glm5-tiny` publishes in its store (spec, hello, memory record), plus a
few edge cases. Re-run after a format change: python3 fuzz/make_seeds.py
"""
import base64
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def b64(data):
    return base64.b64encode(data).decode()


def frame(msg):
    body = json.dumps(msg, separators=(",", ":")).encode()
    return struct.pack(">I", len(body)) + body


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


DESCRIPTOR = {"address": 139813198655488, "backend": "ucx", "device": -1,
              "generation": 14807412655874084147, "key": "FwAAAAAAAAAAAAAMFgADAABwCswofwAAAA==",
              "kind": "host", "length": 1754368, "v": 1}
CUDA_DESCRIPTOR = dict(DESCRIPTOR, backend="cuda_ipc", kind="cuda", device=1, key=b64(b"WSIPCK01" + bytes(64 + 24 + 16)))
HELLO = {"fingerprint": "be41c66bd1e839aa",
         "peer": {"engine": 0, "expert_parallel": True, "experts": [0, 1, 2, 3], "name": "e0r0",
                  "rank": 0, "tp": 1, "tp_rank": 0},
         "params": [{"bytes": 262144, "dtype": "bf16", "name": "model.embed_tokens.weight", "shape": [512, 256]},
                    {"bytes": 57344, "dtype": "fp8_e4m3", "name": "model.layers.0.self_attn.fused_qkv_a_proj.weight",
                     "shape": [224, 256]},
                    {"bytes": 16, "dtype": "fp32", "name": "model.layers.0.self_attn.fused_qkv_a_proj.weight_scale_inv",
                     "shape": [2, 2]}]}
MEMORY = {"endpoints": [{"address": b64(b"WSUCX1:" + bytes(range(40))), "backend": "ucx", "regions": [DESCRIPTOR]}],
          "generation": 626835103002, "copies": 1, "host": "vm/cbf7edf5-f903-414e-b1be-800b69ac5e9e",
          "tensors": [{"bytes": 262144, "chunks": [[0, 0, 262144]], "name": "model.embed_tokens.weight"},
                      {"bytes": 512, "chunks": [[0, 262144, 512]], "name": "model.layers.0.input_layernorm.weight"}]}
SPEC = {"device": "cpu", "engines": [{"ep": 2, "expert_maps": [], "ranks": 2, "tp": 1},
                                     {"ep": 2, "expert_maps": [], "ranks": 2, "tp": 1}],
        "gather_threshold_bytes": 2097152, "inference_gpus": [0], "init_timeout_ms": 60000,
        "mesh": {"ep": 2, "fsdp": 4, "replicas": 1}, "model": "glm5-tiny", "pipeline": True, "seed": 1,
        "stage_bytes": 268435456, "staging": False, "step_timeout_ms": 60000, "steps": 3,
        "trainer_gpus": [0], "transport": "auto", "transport_options": None, "verify": True}
LAYOUT = {"format": "weightsync-layout/1", "name": "seed", "num_layers": 2,
          "sources": [{"name": "model.layers.{i}.q.weight", "shape": [256, 128], "dtype": "bf16"},
                      {"name": "model.layers.{i}.k.weight", "shape": [128, 128], "dtype": "bf16"},
                      {"name": "model.layers.{i}.experts.w1", "shape": [4, 128, 128], "dtype": "bf16",
                       "expert_dim": 0, "layers": [1, 2]},
                      {"name": "norm.weight", "shape": [128], "dtype": "fp32", "fsdp_dim": -1}],
          "destinations": [{"name": "model.layers.{i}.qk.weight", "shape": [384, 128], "dtype": "fp8_e4m3"},
                           {"name": "model.layers.{i}.qk.weight_scale_inv", "shape": [3, 1], "dtype": "fp32"},
                           {"name": "model.layers.{i}.experts.w1", "shape": [4, 128, 128], "dtype": "bf16",
                            "layers": [1, 2]},
                           {"name": "norm.weight", "shape": [128], "dtype": "bf16"}],
          "rules": [{"dest": "model.layers.{i}.qk.weight",
                     "sources": ["model.layers.{i}.q.weight", "model.layers.{i}.k.weight"],
                     "kind": "quantize_fp8", "scale": "model.layers.{i}.qk.weight_scale_inv", "tp": "rows"},
                    {"dest": "model.layers.{i}.experts.w1", "sources": ["model.layers.{i}.experts.w1"],
                     "expert": True, "layers": [1, 2]},
                    {"dest": "norm.weight", "sources": ["norm.weight"], "kind": "copy", "tp": "replicated"}]}


def seeds():
    # regression_*: inputs that crashed a target once (docs/fuzzing.md), replayed on every run.
    yield "base64", {"empty": b"", "foobar": b"Zm9vYmFy", "pad1": b"Zm8=", "pad2": b"Zg==",
                     "key": DESCRIPTOR["key"].encode(), "bad_char": b"ab!c", "bad_pad": b"a=bc",
                     "regression_noncanonical": b"Ze=="}
    chunk = b"\x07"  # first byte: how the stream is cut into reads
    yield "store_request", {
        "hello": chunk + frame({"op": "hello", "id": 1, "version": 1}),
        "set_get": chunk + frame({"op": "set", "id": 1, "key": "job/spec", "value": b64(compact(SPEC))})
        + frame({"op": "get", "id": 2, "key": "job/spec"}),
        "wait": b"\x01" + frame({"op": "set", "id": 1, "key": "k", "value": b64(b"v")})
        + frame({"op": "wait", "id": 2, "key": "k", "timeout_ms": 1000})
        + frame({"op": "wait", "id": 3, "key": "absent", "timeout_ms": 4611686018427387904}),
        "watch": b"\x3f" + frame({"op": "set", "id": 1, "key": "step/1/landed/e0r0", "value": b64(b"1")})
        + frame({"op": "watch", "id": 2, "prefix": "step/1/", "after_revision": 0, "timeout_ms": 50})
        + frame({"op": "list", "id": 3, "prefix": "step/"}),
        "counters": chunk + frame({"op": "add", "id": 1, "key": "n", "delta": 5})
        + frame({"op": "add", "id": 2, "key": "n", "delta": -9223372036854775807})
        + frame({"op": "compare_set", "id": 3, "key": "n", "expected": None, "desired": b64(b"x")})
        + frame({"op": "compare_set", "id": 4, "key": "n", "expected": b64(b"-9223372036854775802"),
                 "desired": b64(b"0")})
        + frame({"op": "erase", "id": 5, "key": "n"}),
        "malformed": chunk + frame({"op": "set", "id": 1, "key": "k", "value": "not base64!"})
        + frame({"op": "nope", "id": [1, {"a": None}]}) + struct.pack(">I", 5) + b"[1,2]"
        + struct.pack(">I", 3) + b"{\"o",
    }
    entries = [{"key": "step/1/landed/e0r0", "value": b64(b"1"), "revision": 12}]
    yield "store_reply", {
        "hello": compact({"id": 7, "ok": True, "version": 1, "revision": 3}),
        "get": compact({"id": 7, "ok": True, "found": True, "value": b64(b"v")}),
        "entries": compact({"id": 7, "ok": True, "entries": entries}),
        "add": compact({"id": 7, "ok": True, "value": -4, "swapped": False}),
        "error": compact({"id": 7, "ok": False, "code": "timeout", "error": "wait for key 'k' timed out"}),
        "refused": compact({"id": None, "ok": False, "code": "peer lost", "error": "too many connections"}),
    }
    float_v = compact(DESCRIPTOR).replace(b'"v":1', b'"v":11e300')
    yield "descriptor", {"ucx": compact(DESCRIPTOR), "cuda": compact(CUDA_DESCRIPTOR),
                         "regression_float_v": float_v}
    yield "agent_messages", {"hello": compact(HELLO), "memory": compact(MEMORY)}
    # Step-protocol messages as participants publish them (src/engine/protocol/messages.cc).
    # Step-protocol messages as participants publish them (src/engine/protocol/messages.cc);
    # the first byte picks the message type (step_protocol_fuzz.cc).
    yield "step_protocol", {
        "request": b"\x00" + compact({"version": 2}),
        "paused": b"\x01" + compact({"version": 2, "held": 1, "target": 1}),
        "done": b"\x02" + compact({"version": 2, "bytes": 7000000, "writes": 236}),
        "landed": b"\x03" + compact({"version": 2}),
        "prepared": b"\x04" + compact({"version": 2, "wait_seconds": 0.01, "hook_seconds": 0.002}),
        "outcome_abort": b"\x05" + compact({"version": 2, "commit": False, "by": "inference-e0r1",
                                            "code": "peer lost", "reason": "trainer1 is gone"}),
        "resumed": b"\x06" + compact({"version": 2, "wait_seconds": 0.01, "hook_seconds": 0.0,
                                       "reads": 7}),
        "aborted": b"\x07" + compact({"version": 2, "held": 1, "intact": True, "serving": True,
                                       "mismatched_bytes_vs_held": 0, "error": "x"}),
        "verified": b"\x08" + compact({"version": 2, "verified": True, "checked_bytes": 100,
                                        "mismatched_bytes": 0, "verify_seconds": 0.5}),
        "metrics": b"\x09" + compact({"version": 2, "rank": 0, "generate_s": 0.0, "pause_s": 0.001,
                                       "convert_s": 0.01, "post_s": 0.001, "drain_s": 0.0,
                                       "finalize_s": 0.0, "barrier_s": 0.02, "total_s": 0.03, "wire_bytes": 7000000,
                                       "writes": 236}),
        "ranges": b"\x0a" + compact({"version": 2, "ranges": [[0, 8, 4096, "00000000deadbeef"]]}),
        "float_version": b"\x01" + compact({"version": 1e300, "held": -1}),
    }
    yield "job_spec", {
        "demo": compact(SPEC),
        "options": compact(dict(SPEC, transport="ucx", layers=2, transport_options={
            "transports": "posix,sysv,self", "max_inflight_bytes": 67108864, "wakeup": True,
            "config": {"RNDV_THRESH": "8192"}})),
        "cuda": compact(dict(SPEC, device="cuda", trainer_gpus=[0, 1], inference_gpus=[2],
                             transport="cuda_ipc", transport_options={"streams": 2, "chunk_bytes": 1048576},
                             engines=[{"ep": 1, "ranks": 2, "tp": 2, "expert_maps": [[0, 1, 2, 3], [0, 1, 2, 3]]}])),
    }
    yield "layout_json", {"templated": compact(LAYOUT),
                          "regression_huge_num_layers": compact(dict(LAYOUT, num_layers=24294967296))}
    key = b"WSIPCK01" + bytes(range(64)) + struct.pack("<QQq", 4096, 1 << 30, 4242) + bytes(range(16))
    address = b"WSCUDAIPC1:" + compact({"host": "vm/boot", "pid": 4242, "device": 0,
                                        "uuid": "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f",
                                        "uuid_bytes": list(range(16))})
    float_byte = address.replace(b",15]", b",1599999999999999999999]")  # a float: UB as an int
    yield "cuda_ipc", {"key": b"\x00" + key, "address": b"\x01" + address,
                       "regression_float_uuid_byte": b"\x01" + float_byte}


def main():
    for target, files in seeds():
        folder = os.path.join(HERE, "corpus", target)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for name, data in files.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
    print("seeds written under", os.path.join(HERE, "corpus"))


if __name__ == "__main__":
    main()
