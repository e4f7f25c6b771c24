"""How close training gets to this CPU's limit.

    python -m benchmarks --only limit [--quick]

The limit is measured, not looked up: fp32 ``torch.mm`` of two 2048x2048 matrices on every core
(2 n^3 FLOPs per product) and a large tensor copy for memory bandwidth (bytes read + written).

FLOPs per training image are counted from the layers' shapes with forward hooks: a Linear or
Conv2d layer does MACs = output elements x inputs per output (in x out for a Linear: exactly its
weight count, hence "params in matmuls"), 2 FLOPs each. The backward pass does two products of
the same size (gradient for the weights, gradient for the input), so training costs
3 x 2 x MACs = 6 x MACs per image, minus 2 x MACs for the first layer, whose input (the image)
needs no gradient. Activations, the loss and Adam are left out (they are O(size), not O(size x
width)). Achieved FLOP/s = images/s of our training loop x FLOPs per image.

Models train as ``python -m cvae_core.train`` trains them (conv in channels-last layout).
For the conv model one training step is profiled with torch.profiler and split by operator
class, which gives the GFLOP/s its convolutions reach and the arithmetic intensity (FLOPs per
byte moved) of each conv layer against the machine balance (peak FLOP/s / bandwidth).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import torch
from torch import nn

from benchmarks.profiling import quiet_stderr
from benchmarks.throughput import training_layout
from cvae_core.catalogue import ModelEntry
from cvae_core.data import to_float
from cvae_core.models import CVAE, build_model, cvae_loss

MM_SIZE = 2048
COPY_BYTES = 256 * 1024 * 1024
BATCH = 128


def matmul_gflops(*, n: int = MM_SIZE, reps: int = 10) -> dict[str, float]:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        torch.mm(a, b)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    flops = 2 * n**3
    return {"n": n, "best_gflops": round(flops / min(times) / 1e9, 1),
            "median_gflops": round(flops / sorted(times)[len(times) // 2] / 1e9, 1)}


def memory_bandwidth(*, nbytes: int = COPY_BYTES, reps: int = 5) -> dict[str, float]:
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t0)
    return {"bytes": nbytes, "best_gb_per_s": round(2 * nbytes / min(times) / 1e9, 1)}  # read + write


def layer_macs(model: CVAE) -> list[dict[str, Any]]:
    """MACs per image of every Linear and Conv2d in one forward pass, in call order, with the bytes
    of its input, output and weights (fp32) for the arithmetic intensity."""
    rows: list[dict[str, Any]] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x = inputs[0]
        b = x.shape[0]
        if isinstance(module, nn.Linear):
            macs = module.in_features * module.out_features
        else:
            per_out = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            macs = output[0].numel() * per_out
        moved = 4 * (x[0].numel() + output[0].numel()) + 4 * module.weight.numel() / b
        rows.append({"layer": name_of[module], "kind": type(module).__name__, "macs": macs,
                     "flops_per_byte_fwd": round(2 * macs / moved, 2)})

    name_of = {m: n for n, m in model.named_modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.rand(BATCH, 1, 28, 28), torch.arange(BATCH) % model.config.num_classes)
    finally:
        for h in handles:
            h.remove()
    return rows


def training_flops_per_image(rows: list[dict[str, Any]]) -> int:
    """6 x MACs (forward, weight gradient, input gradient), less the first layer's input gradient."""
    total = sum(6 * r["macs"] for r in rows)
    return total - 2 * rows[0]["macs"]


def _step_fn(model: CVAE, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer):
    def step() -> None:
        logits, mean, logvar = model(x, y)
        loss = cvae_loss(logits, x, mean, logvar)["loss"].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def images_per_s(model: CVAE, images: torch.Tensor, labels: torch.Tensor, *, batch: int, steps: int,
                 fused: bool = False) -> float:
    """Training images/s of the bare step at ``batch`` (no data pipeline), best of 3 timings."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    x, y = to_float(images[:batch]), labels[:batch]
    step = _step_fn(model, x, y, opt)
    for _ in range(3):
        step()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, time.perf_counter() - t0)
    return batch * steps / best


OP_CLASSES = {  # profiler operator -> what it is, for the split of a conv training step
    "conv": ("convolution", "conv2d"),
    "pool / upsample": ("pool", "upsample"),
    "linear": ("addmm", "mm", "linear"),
    "elementwise": ("relu", "clamp", "threshold", "sigmoid", "binary_cross", "mul", "add", "exp", "sub",
                    "softplus", "pow", "neg", "sum", "mean", "div", "fill", "copy", "cat", "zero"),
    "optimizer": ("adam", "sqrt", "lerp", "addcmul", "addcdiv", "_foreach"),
}


def profile_step(model: CVAE, images: torch.Tensor, labels: torch.Tensor, *, steps: int) -> dict[str, float]:
    """Share of one training step's self CPU time per operator class (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # as cvae_core.train.make_optimizer
    step = _step_fn(model, to_float(images[:BATCH]), labels[:BATCH], opt)
    step()
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    split: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        name = e.key.lower()
        cls = next((c for c, keys in OP_CLASSES.items() if any(k in name for k in keys)), "other")
        split[cls] += e.self_cpu_time_total / steps / 1e3  # ms per step
    return {k: round(v, 2) for k, v in sorted(split.items(), key=lambda kv: -kv[1])}


def run(models: list[ModelEntry], *, quick: bool = False, throughput: dict[str, Any] | None = None,
        data: Any = None) -> dict[str, Any]:
    from cvae_core.data import load_mnist

    data = data or load_mnist(checksums=False)
    images, labels = data.train_images[:1024], data.train_labels[:1024]
    peak = matmul_gflops(reps=3 if quick else 10)
    bandwidth = memory_bandwidth(reps=2 if quick else 5)
    out: dict[str, Any] = {"matmul": peak, "memory": bandwidth,
                           "machine_balance_flops_per_byte": round(peak["best_gflops"] / bandwidth["best_gb_per_s"], 1),
                           "models": {}}
    steps = 3 if quick else 20
    for m in models:
        config = m.ckpt.config
        rows = layer_macs(build_model(config))
        per_image = training_flops_per_image(rows)
        entry: dict[str, Any] = {"arch": m.arch, "training_mflop_per_image": round(per_image / 1e6, 2),
                                 "layers": rows}
        measured = ((throughput or {}).get("models") or {}).get(m.name, {}).get("ours_images_per_s")
        if measured:
            gflops = measured * per_image / 1e9
            entry["pipeline"] = {"images_per_s": measured, "gflops": round(gflops, 1),
                                 "percent_of_peak": round(100 * gflops / peak["best_gflops"], 1)}
        # The bare training step (no data pipeline) at the training batch with the fused Adam training
        # uses, with PyTorch's default per-tensor Adam, and at a larger batch: what the model itself
        # can reach on this CPU.
        for label, batch, fused in (("step_b128", BATCH, True), ("step_b128_loop_adam", BATCH, False),
                                    ("step_b512", 512, True)):
            torch.manual_seed(0)
            ips = images_per_s(training_layout(build_model(config)), images, labels, batch=batch,
                               steps=max(1, steps * BATCH // batch), fused=fused)
            gflops = ips * per_image / 1e9
            entry[label] = {"images_per_s": round(ips, 1), "gflops": round(gflops, 1),
                            "percent_of_peak": round(100 * gflops / peak["best_gflops"], 1)}
        if m.arch == "conv":
            torch.manual_seed(0)
            split = profile_step(training_layout(build_model(config)), images, labels, steps=steps)
            conv_flops = sum(6 * r["macs"] for r in rows if r["kind"] == "Conv2d") - 2 * rows[0]["macs"]
            entry["step_ms_by_op"] = split
            entry["conv_gflops"] = round(conv_flops * BATCH / (split.get("conv", 0) / 1e3) / 1e9, 1) if split.get("conv") else None
        out["models"][m.name] = entry
        print(f"  limit {m.name}: {entry['training_mflop_per_image']} MFLOP/image, bare step "
              f"{entry['step_b128']['gflops']} GFLOP/s = {entry['step_b128']['percent_of_peak']} % of "
              f"{peak['best_gflops']} GFLOP/s", flush=True)
    return out
