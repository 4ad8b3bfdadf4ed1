"""Real Hugging Face models end to end (issue 15): a bf16 transformers trainer pushes into the
same architecture as transformers' block-FP8 model, through a layout derived from the two
modules, and the FP8 model must generate exactly what an FP8 model built from the same trainer
weights by weightsync's reference converter generates.

For each architecture (a dense Qwen3, a Qwen3-MoE and DeepSeek-V3 with MLA; tiny random-
initialized configs of about 170-200 M parameters built in code, no network):

* the trainer is the transformers model in bf16 on GPU 0 (its own process), the inference side
  the same architecture converted to block FP8 the way transformers' FineGrainedFP8Config does
  (``weight_block_size`` 128x128: FP8Linear / FP8Experts, ``*_scale_inv`` fp32 scales, lm_head
  left bf16) on GPU 1 (another process);
* the layout is ``ws.derive_layout(trainer, fp8_model, rules="hf-fp8")`` — derived by the driver
  from the two modules on the meta device and published in the job spec; each side derives it
  again from its real module and checks the fingerprint;
* 3 versions are pushed, each after a real ``torch.optim.AdamW`` step on a language-modelling
  loss; after each, the inference rank checks (1) every byte it holds against
  ``ws.reference_tensors`` of the trainer's weights, (2) greedy generation of 32 tokens from a
  fixed prompt equals that of the reference FP8 model (the same module, loaded with the
  reference converter's tensors), (3) its logits on fixed tokens against the bf16 trainer's:
  max / mean absolute error and the relative RMS error, within FP8 tolerance.

FP8 matmuls: transformers 5.x loads its FP8 kernels (finegrained-fp8, DeepGEMM) from the
Hugging Face hub through the ``kernels`` package, which the offline GPU host lacks; then FP8Linear
and FP8Experts compute with the FP8 weights dequantized by their block scales (fp32 matmul, W8A16),
the same function for the inference and the reference model (``--fp8-matmul``: auto, dequant,
native). Experts run transformers' "eager" implementation (per-expert FP8 linears).

Writes ``--out`` (JSON: per architecture and version, every check and figure) and exits non-zero
when any check fails. ``--device cpu --scale tiny`` runs the same flow on the CPU (UCX between the
processes), as tests/python/test_derive_hf.py does.

    python3 tests/gpu/python/hf_models.py --out $OUT/hf_models.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

import torch

import weightsync as ws

ARCHS = ("qwen3", "qwen3_moe", "deepseek_v3")
BLOCK = 128
PROMPT_LEN, EVAL_LEN, NEW_TOKENS = 16, 64, 32
REL_RMS_TOLERANCE = 0.25  # FP8 e4m3 weights: ~3.6 % RMS error each; garbage would be ~100 %


# -- models ---------------------------------------------------------------------------------------

def tiny_config(arch: str, scale: str = "gpu") -> Any:
    """A random-initialisable config: every linear dimension a multiple of 128 (FP8 blocks).
    "gpu": ~170-200 M parameters; "tiny": a few M, for the CPU test."""
    import transformers as tf

    small = scale == "tiny"
    common = dict(vocab_size=1024 if small else 32768, hidden_size=256 if small else 1024,
                  tie_word_embeddings=False, max_position_embeddings=512, rms_norm_eps=1e-6,
                  bos_token_id=0, eos_token_id=1, pad_token_id=0)
    if arch == "qwen3":
        config = tf.Qwen3Config(num_hidden_layers=2 if small else 8,
                                num_attention_heads=2 if small else 8,
                                num_key_value_heads=1 if small else 4, head_dim=128,
                                intermediate_size=512 if small else 3072, **common)
        config.architectures = ["Qwen3ForCausalLM"]
    elif arch == "qwen3_moe":
        config = tf.Qwen3MoeConfig(num_hidden_layers=2 if small else 6,
                                   num_attention_heads=2 if small else 8,
                                   num_key_value_heads=1 if small else 4, head_dim=128,
                                   intermediate_size=512 if small else 3072,
                                   moe_intermediate_size=128 if small else 384,
                                   num_experts=8 if small else 16,
                                   num_experts_per_tok=2 if small else 4, norm_topk_prob=True,
                                   decoder_sparse_step=1, mlp_only_layers=[], **common)
        config.architectures = ["Qwen3MoeForCausalLM"]
    elif arch == "deepseek_v3":
        # kv_lora_rank and kv_lora_rank + qk_rope_head_dim both multiples of 128.
        config = tf.DeepseekV3Config(num_hidden_layers=2 if small else 6, first_k_dense_replace=1,
                                     num_attention_heads=2 if small else 8,
                                     num_key_value_heads=2 if small else 8,
                                     q_lora_rank=128 if small else 512, kv_lora_rank=128 if small
                                     else 256, qk_rope_head_dim=128, qk_nope_head_dim=128,
                                     v_head_dim=128, intermediate_size=512 if small else 2816,
                                     moe_intermediate_size=128 if small else 384,
                                     n_routed_experts=8 if small else 16, n_shared_experts=1,
                                     num_experts_per_tok=2 if small else 4, n_group=2 if small
                                     else 4, topk_group=1 if small else 2,
                                     routed_scaling_factor=1.0, **common)
        config.architectures = ["DeepseekV3ForCausalLM"]
    else:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})")
    return config


def fp8_config() -> Any:
    from transformers import FineGrainedFP8Config
    return FineGrainedFP8Config(weight_block_size=(BLOCK, BLOCK), activation_scheme="dynamic")


def fp8_config_dict(config: Any) -> dict:
    """config.json of the block-FP8 inference model: the architecture's config with the
    quantization_config transformers' FP8 loader reads."""
    out = config.to_dict()
    out["quantization_config"] = fp8_config().to_dict()
    out["torch_dtype"] = "bfloat16"
    return out


def from_checkpoint(step_dir: str, device: str, want: dict[str, torch.Tensor]) -> dict:
    """Loads a filesystem-transport step directory with transformers' from_pretrained (its
    FineGrainedFP8 loader) and compares every tensor with the reference conversion `want`:
    names, dtypes and shapes, and bytes. On a GPU the FP8 weights and their scales load as they
    are (native); without one transformers dequantizes them to bf16, which is compared with the
    FP8 values times their block scales, rounded to bf16."""
    from transformers import AutoModelForCausalLM

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        step_dir, dtype=torch.bfloat16, device_map=device if device.startswith("cuda") else None)
    load_s = time.perf_counter() - t0
    got = {n: t.detach() for n, t in weights_of(model).items()}
    native = mismatched = dequantized = 0
    worst = 0.0
    missing = []
    for name, tensor in want.items():
        if name.endswith("_scale_inv") and name not in got:
            continue  # dequantized away: checked with its weight below
        if name not in got:
            missing.append(name)
            continue
        g = got[name].cpu()
        if g.dtype == tensor.dtype and g.shape == tensor.shape:
            native += 1
            mismatched += int((g.view(torch.uint8) != tensor.view(torch.uint8)).sum())
            continue
        scale = want.get(name + "_scale_inv") if not name.endswith("_scale_inv") else None
        if scale is None or g.shape != tensor.shape:
            missing.append(f"{name} ({g.dtype} {tuple(g.shape)})")
            continue
        dequantized += 1
        ref = dequantize(tensor, scale).to(torch.bfloat16).float()
        err = (g.float() - ref).abs().max().item()
        worst = max(worst, err / max(ref.abs().max().item(), 1e-30))
    return {"load_s": round(load_s, 3), "tensors_native": native, "tensors_dequantized": dequantized,
            "native_mismatched_bytes": mismatched, "dequantized_max_rel_err": worst,
            "unmatched": missing[:8],
            "ok": not missing and mismatched == 0 and worst <= 2.0 ** -7 and native > 0}


def build_model(config: Any, device: str, fp8: bool, seed: int = 0) -> torch.nn.Module:
    """The transformers model in bf16 on `device` ("meta" for shapes only); with fp8, converted
    to block FP8 as FineGrainedFP8Config's quantizer converts it before loading weights (its
    FP8Linear / FP8Experts, modules_to_not_convert from the model), the FP8 tensors allocated
    on `device` (zeroed weights, unit scales: weightsync fills them)."""
    from transformers import AutoModelForCausalLM
    from transformers.integrations.finegrained_fp8 import FP8Experts, FP8Linear
    from transformers.quantizers.quantizer_finegrained_fp8 import FineGrainedFP8HfQuantizer

    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16,
                                                 attn_implementation="eager",
                                                 experts_implementation="eager")
    keep_fp32(model)
    if fp8:
        quantizer = FineGrainedFP8HfQuantizer(fp8_config(), pre_quantized=False)
        quantizer._process_model_before_weight_loading(model)
        for module in model.modules():
            if isinstance(module, (FP8Linear, FP8Experts)):
                module.to_empty(device=device, recurse=False)
                if device == "meta":
                    continue
                with torch.no_grad():
                    for name, p in module.named_parameters(recurse=False):
                        if p.element_size() == 1:
                            p.view(torch.uint8).zero_()
                        else:
                            p.fill_(1.0 if name.endswith("_scale_inv") else 0.0)
    return model


def keep_fp32(model: torch.nn.Module) -> None:
    """Tensors the model keeps in fp32 when loaded from a checkpoint (_keep_in_fp32_modules_strict,
    e.g. DeepSeek's e_score_correction_bias), which from_config(dtype=bf16) builds in bf16."""
    keep = list(getattr(model, "_keep_in_fp32_modules_strict", None) or [])
    for name, buf in list(model.named_buffers()):
        if any(k in name for k in keep) and buf.is_floating_point() and buf.dtype != torch.float32:
            owner, _, leaf = name.rpartition(".")
            model.get_submodule(owner).register_buffer(leaf, buf.float())


def derive(trainer: Any, inference: Any, arch: str) -> ws.Layout:
    return ws.derive_layout(trainer, inference, rules="hf-fp8", name=f"hf-{arch}")


# -- FP8 matmuls ----------------------------------------------------------------------------------

def dequantize(weight: torch.Tensor, scale_inv: torch.Tensor) -> torch.Tensor:
    """fp32 values of a block-FP8 weight [.., R, C] with scales [.., ceil(R/128), ceil(C/128)]."""
    rows, cols = weight.shape[-2:]
    s = scale_inv.to(torch.float32)
    s = s.repeat_interleave(BLOCK, dim=-2)[..., :rows, :].repeat_interleave(BLOCK, dim=-1)
    return weight.to(torch.float32) * s[..., :cols]


def dequant_fp8_linear(input: torch.Tensor, weight: torch.Tensor, weight_scale_inv: torch.Tensor,
                       block_size: Any = None, bias: Optional[torch.Tensor] = None,
                       activation_scale: Any = None, allow_deepgemm: bool = True) -> torch.Tensor:
    """transformers' fp8_linear signature: W8A16 with fp32 accumulation."""
    if block_size is not None and tuple(block_size) != (BLOCK, BLOCK):
        raise ValueError(f"block size {block_size}: only 128x128 blocks are supported here")
    out = torch.nn.functional.linear(input.to(torch.float32), dequantize(weight, weight_scale_inv),
                                     None if bias is None else bias.to(torch.float32))
    return out.to(input.dtype)


def install_fp8_matmul(mode: str) -> str:
    """Routes transformers' FP8Linear / FP8Experts matmuls; returns what they use."""
    import transformers.integrations.finegrained_fp8 as fg

    if mode in ("auto", "native"):
        try:
            fg.load_finegrained_fp8_kernel()
            return "native (transformers finegrained-fp8 kernel)"
        except Exception as e:  # ImportError without the `kernels` package or the hub
            if mode == "native":
                raise RuntimeError(f"--fp8-matmul native: {e}") from e
    fg.fp8_linear = dequant_fp8_linear
    return "dequant (W8A16, fp32 matmul)"


# -- what both sides compute ----------------------------------------------------------------------

def token_batches(config: Any, seed: int, version: int, batch: int = 4,
                  length: int = 128) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1000 + version)
    return torch.randint(2, config.vocab_size, (batch, length), generator=g)


def fixed_tokens(config: Any, seed: int, length: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 7)
    return torch.randint(2, config.vocab_size, (1, length), generator=g)


@torch.no_grad()
def greedy(model: torch.nn.Module, prompt: torch.Tensor) -> list[int]:
    device = next(model.parameters()).device
    out = model.generate(input_ids=prompt.to(device), attention_mask=torch.ones_like(prompt).to(
        device), max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
        pad_token_id=0)
    return out[0, prompt.shape[1]:].tolist()


@torch.no_grad()
def logits_of(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    device = next(model.parameters()).device
    return model(input_ids=ids.to(device)).logits.float().cpu()


def weights_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


# -- the two roles (one process each) -------------------------------------------------------------

def say(*words: Any) -> None:
    print(*words, flush=True)


def trainer_role(cfg: dict) -> dict:
    device = cfg["device"]
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    config = tiny_config(cfg["arch"], cfg["scale"])
    model = build_model(config, device, fp8=False, seed=cfg["seed"])
    layout = derive(model, build_model(config, "meta", fp8=True), cfg["arch"])
    sender = ws.WeightSender(cfg["coordinator"], cfg["job"], 0, device=device)
    assert layout.fingerprint == sender.layout.fingerprint, "the trainer derives another layout"
    sender.register(model)
    sender.connect()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    prompt, eval_ids = fixed_tokens(config, cfg["seed"], PROMPT_LEN), fixed_tokens(
        config, cfg["seed"] + 1, EVAL_LEN)
    out = {"parameters": sum(p.numel() for p in model.parameters()), "versions": []}
    for version in range(1, cfg["versions"] + 1):
        model.train()
        batch = token_batches(config, cfg["seed"], version).to(device)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()  # in place: the registered tensors now hold the new weights
        optimizer.zero_grad(set_to_none=True)
        metrics = sender.push(version)
        model.eval()
        held = weights_of(model)
        state = {s.name: held[s.name].detach().cpu().contiguous() for s in sender.layout.sources}
        path = os.path.join(cfg["tmp"], f"{cfg['arch']}-v{version}.pt")
        torch.save({"state": state, "logits": logits_of(model, eval_ids),
                    "tokens": greedy(model, prompt)}, path)
        out["versions"].append({"version": version, "loss": loss.item(),
                                "push_s": metrics["total_s"], "wire_bytes": metrics["wire_bytes"]})
        say("PUSHED", version, path)
    sender.close()
    return out


def inference_role(cfg: dict) -> dict:
    device = cfg["device"]
    torch.use_deterministic_algorithms(True, warn_only=True)  # the two FP8 models compute alike
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    matmul = install_fp8_matmul(cfg["fp8_matmul"])
    config = tiny_config(cfg["arch"], cfg["scale"])
    model = build_model(config, device, fp8=True).eval()
    reference = build_model(config, device, fp8=True).eval()
    layout = derive(build_model(config, "meta", fp8=False), model, cfg["arch"])
    receiver = ws.WeightReceiver(cfg["coordinator"], cfg["job"], engine=0, rank=0)
    assert layout.fingerprint == receiver.layout.fingerprint, "the engine derives another layout"
    receiver.register(model)
    say("READY")
    receiver.connect()
    prompt, eval_ids = fixed_tokens(config, cfg["seed"], PROMPT_LEN), fixed_tokens(
        config, cfg["seed"] + 1, EVAL_LEN)
    out = {"fp8_matmul": matmul, "fp8_parameters": sum(
        p.numel() for p in model.parameters() if p.element_size() == 1), "versions": []}
    previous = None
    for version in range(1, cfg["versions"] + 1):
        result = receiver.update()
        line = sys.stdin.readline().split()
        if line[:2] != ["CHECK", str(version)]:
            raise RuntimeError(f"expected CHECK {version}, got {line}")
        pushed = torch.load(line[2])
        want = ws.reference_tensors(receiver.layout, receiver.peer, pushed["state"])
        held, ref = weights_of(model), weights_of(reference)
        mismatched, checked = 0, 0
        with torch.no_grad():
            for name, tensor in want.items():
                got = held[name].detach().cpu()
                mismatched += int((got.view(torch.uint8) != tensor.view(torch.uint8)).sum())
                checked += tensor.numel() * tensor.element_size()
                ref[name].copy_(tensor.to(ref[name].device))
        tokens, ref_tokens = greedy(model, prompt), greedy(reference, prompt)
        logits, ref_logits = logits_of(model, eval_ids), logits_of(reference, eval_ids)
        bf16 = pushed["logits"]
        err = (logits - bf16).abs()
        rel_rms = float((logits - bf16).pow(2).mean().sqrt() / bf16.pow(2).mean().sqrt())
        fp8_sum = sum(float(t.float().abs().sum()) for n, t in want.items()
                      if t.element_size() == 1)
        row = {"version": result["version"], "committed": result["committed"],
               "checked_bytes": checked, "mismatched_bytes": mismatched,
               "tokens": tokens, "reference_tokens": ref_tokens,
               "generation_equal": tokens == ref_tokens,
               "trainer_bf16_tokens_agree": sum(a == b for a, b in zip(tokens, pushed["tokens"])),
               "logits_equal_reference": bool(torch.equal(logits, ref_logits)),
               "logits_vs_reference_max_abs": float((logits - ref_logits).abs().max()),
               "logits_max_abs_err": float(err.max()), "logits_mean_abs_err": float(err.mean()),
               "logits_rel_rms_err": rel_rms, "bf16_logits_mean_abs": float(bf16.abs().mean()),
               "within_fp8_tolerance": rel_rms <= REL_RMS_TOLERANCE,
               "weights_changed": previous is None or fp8_sum != previous}
        previous = fp8_sum
        if cfg.get("fs_root"):
            row["checkpoint"] = from_checkpoint(
                os.path.join(cfg["fs_root"], f"step_{result['version']}"), cfg["load_device"],
                want)
        # Equal bytes and one forward function give equal logits too (logits_equal_reference),
        # unless a kernel is not deterministic: reported, not required.
        row["ok"] = (row["committed"] and mismatched == 0 and row["generation_equal"]
                     and row["within_fp8_tolerance"] and row["weights_changed"]
                     and row.get("checkpoint", {}).get("ok", True))
        out["versions"].append(row)
        say("CHECKED", version, json.dumps({k: row[k] for k in (
            "mismatched_bytes", "generation_equal", "logits_max_abs_err", "logits_rel_rms_err")}))
    receiver.close()
    return out


# -- the driver -----------------------------------------------------------------------------------

def spawn(role: str, cfg: dict, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", role,
                             json.dumps(cfg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)


def read_line(proc: subprocess.Popen, word: str, who: str) -> list[str]:
    while True:
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=60)
            raise RuntimeError(f"{who} exited ({proc.returncode}) before saying {word}")
        if line.startswith(word):
            return line.split()


def result_of(proc: subprocess.Popen, who: str, timeout: float) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{who} failed (exit {proc.returncode}):\n{out}")
    return json.loads(lines[-1])


def run_arch(arch: str, args: argparse.Namespace, coordinator: ws.Coordinator,
             tmp: str) -> dict:
    config = tiny_config(arch, args.scale)
    t0 = time.perf_counter()
    layout = derive(build_model(config, "meta", fp8=False), build_model(config, "meta", fp8=True),
                    arch)
    derive_s = time.perf_counter() - t0
    job = f"hf-{arch}-{os.getpid()}"
    files = {}
    if args.transport == "filesystem":
        # Each version a checkpoint with the FP8 model's config.json: transformers opens it.
        files = dict(transport="filesystem", fs_root=os.path.join(tmp, f"ckpt-{arch}"),
                     fs_keep=1, fs_config=fp8_config_dict(config))
    ws.publish_job(coordinator, job, ws.job_spec(
        model=layout, trainer_ranks=1, engines=1, engine_ranks=1, init_timeout=300.0,
        step_timeout=300.0, **files))
    cfg = {"arch": arch, "scale": args.scale, "coordinator": coordinator.address, "job": job,
           "versions": args.versions, "seed": args.seed, "lr": args.lr, "tmp": tmp,
           "fp8_matmul": args.fp8_matmul, "fs_root": files.get("fs_root"),
           "load_device": args.load_device}
    # No hub: an installed `kernels` package must fail at once, not wait on the network.
    env = dict(os.environ, PYTHONUNBUFFERED="1", CUBLAS_WORKSPACE_CONFIG=":4096:8")
    env.setdefault("HF_HUB_OFFLINE", "1")
    inference = spawn("inference", {**cfg, "device": args.inference_device}, env)
    trainer = None
    try:
        read_line(inference, "READY", "the inference process")
        trainer = spawn("trainer", {**cfg, "device": args.trainer_device}, env)
        for version in range(1, args.versions + 1):
            _, v, path = read_line(trainer, "PUSHED", "the trainer process")
            inference.stdin.write(f"CHECK {v} {path}\n")
            inference.stdin.flush()
            print(f"{arch}: version {v}:", " ".join(read_line(inference, "CHECKED",
                                                             "the inference process")[2:]),
                  flush=True)
        t = result_of(trainer, "the trainer process", 600)
        r = result_of(inference, "the inference process", 600)
    finally:
        for p in (trainer, inference):
            if p is not None and p.poll() is None:
                p.kill()
    versions = [{**tv, **rv} for tv, rv in zip(t["versions"], r["versions"])]
    return {"architecture": config.architectures[0], "parameters": t["parameters"],
            "fp8_parameters": r["fp8_parameters"], "fp8_matmul": r["fp8_matmul"],
            "layout": {"name": layout.name, "fingerprint": layout.fingerprint,
                       "sources": len(layout.sources), "destinations": len(layout.dests),
                       "source_bytes": layout.source_bytes, "dest_bytes": layout.dest_bytes,
                       "derive_s": round(derive_s, 3)},
            "versions": versions,
            "ok": len(versions) == args.versions and all(v["ok"] for v in versions)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=("trainer", "inference"), help=argparse.SUPPRESS)
    p.add_argument("config", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("--archs", default=",".join(ARCHS), help="comma-separated: " + ", ".join(ARCHS))
    p.add_argument("--versions", type=int, default=3)
    p.add_argument("--scale", choices=("gpu", "tiny"), default="gpu")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda: trainer on --trainer-gpu, inference on --inference-gpu")
    p.add_argument("--trainer-gpu", type=int, default=0)
    p.add_argument("--inference-gpu", type=int, default=1)
    p.add_argument("--fp8-matmul", choices=("auto", "dequant", "native"), default="auto")
    p.add_argument("--transport", choices=("auto", "filesystem"), default="auto",
                   help="filesystem: every version also a checkpoint directory, which "
                        "transformers' from_pretrained must load with the same FP8 bytes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", help="write the results here (JSON)")
    args = p.parse_args()
    if args.role:
        fn = trainer_role if args.role == "trainer" else inference_role
        print(json.dumps(fn(json.loads(args.config))), flush=True)
        return 0

    if args.device == "cuda":
        args.trainer_device, args.inference_device = (f"cuda:{args.trainer_gpu}",
                                                      f"cuda:{args.inference_gpu}")
    else:
        args.trainer_device = args.inference_device = "cpu"
    # The filesystem transport moves host memory: both roles on the CPU; transformers then loads
    # each step directory onto the inference GPU (its native FP8 loader) where there is one.
    args.load_device = args.inference_device
    if args.transport == "filesystem":
        args.trainer_device = args.inference_device = "cpu"
    import transformers
    results = {"command": " ".join([os.path.basename(sys.executable), *sys.argv]),
               "torch": torch.__version__, "transformers": transformers.__version__,
               "weightsync": ws.__version__, "device": args.device,
               "rel_rms_tolerance": REL_RMS_TOLERANCE, "archs": {}}
    coordinator = ws.Coordinator("127.0.0.1", 0)
    try:
        with tempfile.TemporaryDirectory(prefix="ws-hf-") as tmp:
            for arch in args.archs.split(","):
                try:
                    results["archs"][arch] = run_arch(arch, args, coordinator, tmp)
                except Exception as e:  # one architecture's failure is reported, the rest run
                    results["archs"][arch] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    finally:
        coordinator.stop()
    results["ok"] = bool(results["archs"]) and all(a["ok"] for a in results["archs"].values())
    print(f"{'arch':<12} {'params':>8} {'version':>7} {'bytes ok':>8} {'gen =':>5} "
          f"{'max|dlogit|':>11} {'mean|dlogit|':>12} {'rel rms':>8} {'loss':>7}")
    for arch, r in results["archs"].items():
        if "error" in r:
            print(f"{arch:<12} FAILED: {r['error']}")
            continue
        for v in r["versions"]:
            print(f"{arch:<12} {r['parameters'] / 1e6:>7.1f}M {v['version']:>7} "
                  f"{str(v['mismatched_bytes'] == 0):>8} {str(v['generation_equal']):>5} "
                  f"{v['logits_max_abs_err']:>11.4f} {v['logits_mean_abs_err']:>12.5f} "
                  f"{v['logits_rel_rms_err']:>8.4f} {v['loss']:>7.3f}")
    print("ok" if results["ok"] else "FAILED")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
