"""How large a conv CVAE recogniser can be trained in about 90 minutes on this machine.

    python -m benchmarks.capacity              # the candidates below; a minute or two
    python -m benchmarks.capacity --quick      # fewer steps, to check that it runs

For each candidate size it times training steps exactly as ``cvae_core.train`` takes them for a
recogniser (a batch of digits plus a quarter as many non-digits, the negative ELBO, and the hybrid
class-posterior term on a quarter of the batch, which decodes it under all eleven conditions), with
channels-last weights and fused Adam, and prints images per second and the minutes an epoch of the
55,000 training digits would take. Random images stand in for the data: the cost of a step does not
depend on what the pixels are. Run it on a quiet machine (the load average is printed beside the
figures); the figures go into ``benchmarks/results.json`` under ``capacity``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import torch

from benchmarks.machine import load_average, machine
from benchmarks.paths import RESULTS_JSON
from cvae_core.checkpoints import now_iso
from cvae_core.config import ModelConfig, TrainConfig
from cvae_core.models import build_model, count_parameters, cvae_loss, to_channels_last
from cvae_core.train import class_posterior_loss, make_optimizer

# (channels, kernel, dense): the paper's model, then wider ones up to DeepBayes' GFZ (64, 5x5, 500).
CANDIDATES = (
    ((16, 8), 3, 0),
    ((32, 32), 3, 500),
    ((32, 64), 3, 500),
    ((64, 64), 3, 500),
    ((32, 64), 5, 500),
    ((64, 64), 5, 500),
)
TRAIN_IMAGES = 55000
BUDGET_MINUTES = 90


def images_per_second(config: ModelConfig, cfg: TrainConfig, *, steps: int) -> float:
    """Training throughput (digits per second) of one recogniser step, timed after two warm-up steps."""
    model = to_channels_last(build_model(config))
    optimizer = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(0)
    n = cfg.batch_size + round(cfg.background_fraction * cfg.batch_size)  # digits + non-digits
    x = torch.rand((n, 1, config.image_size, config.image_size), generator=gen)
    y = torch.randint(0, config.num_conditions, (n,), generator=gen)

    def step() -> None:
        logits, mean, logvar = model(x, y)
        objective = cvae_loss(logits, x, mean, logvar)["loss"].mean()
        pick = torch.randperm(n, generator=gen)[: round(cfg.disc_fraction * n)]
        objective = objective + cfg.disc_weight * class_posterior_loss(model, x[pick], y[pick],
                                                                      temperature=cfg.disc_temperature)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return cfg.batch_size * steps / (time.perf_counter() - t0)


def run(*, quick: bool = False, epochs: int = 20) -> dict[str, Any]:
    cfg = TrainConfig(disc_weight=100, disc_fraction=0.25, disc_temperature=10)
    rows = []
    for channels, kernel, dense in CANDIDATES:
        config = ModelConfig(arch="conv", latent_dim=16, channels=channels, kernel=kernel, dense=dense, background=True)
        ips = images_per_second(config, cfg, steps=2 if quick else 8)
        epoch_min = TRAIN_IMAGES / ips / 60
        rows.append({"channels": list(channels), "kernel": kernel, "dense": dense,
                     "parameters": count_parameters(build_model(config)), "images_per_s": round(ips, 1),
                     "epoch_minutes": round(epoch_min, 2), "epochs_in_budget": int(BUDGET_MINUTES // epoch_min)})
        r = rows[-1]
        print(f"channels {channels} kernel {kernel} dense {dense}: {r['parameters']:,} parameters, "
              f"{ips:.0f} images/s, {epoch_min:.1f} min per epoch, {r['epochs_in_budget']} epochs in "
              f"{BUDGET_MINUTES} min", flush=True)
    return {"rows": rows, "epochs_wanted": epochs, "budget_minutes": BUDGET_MINUTES, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="two timed steps per size")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    before = load_average()
    out = run(quick=args.quick)
    out.update(generated=now_iso(), machine=machine(), load_before=before, load_after=load_average(), quick=args.quick)
    print(f"load average before {before}, after {out['load_after']}")
    if not args.no_write:
        results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
        results.setdefault("sections", {})["capacity"] = out
        RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
