"""Markdown from ``benchmarks/results.json``: the speed and memory targets (``benchmarks.targets``)
checked, and one table per benchmark. Used for ``benchmarks/results.md`` and by ``benchmarks.report`` for the README."""

from __future__ import annotations

from typing import Any

from benchmarks.targets import TARGETS


def _get(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def target_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with its measured value(s), one row per model where it is per model."""
    s = results.get("sections", {})
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, where: str = "", note: str = "") -> None:
        if value is None:
            return
        op, bound, unit = TARGETS[name]
        met = value <= bound if op == "<=" else value >= bound
        rows.append({"target": name, "where": where, "value": value, "bound": f"{op} {bound:g} {unit}",
                     "unit": unit, "met": met, "note": note})

    for model, r in (_get(s, "latency", "models") or {}).items():
        add("draw pipeline p95", r["draw_pipeline"]["p95"], model)
        add("decode p95", r["decode"]["p95"], model)
        add("20x20 grid p95", r["grid_20x20"]["p95"], model)
    b = s.get("browser") or {}
    floor = b.get("floor") or {}
    if b.get("draw_p95_over_floor_ms") is not None:
        add("stroke -> digit p95 over the floor", b["draw_p95_over_floor_ms"], "app",
            f"app {b['app']['draw']['p95']:.0f} ms, floor {floor['draw']['p95']:.0f} ms")
    if b.get("slider_p95_over_floor_ms") is not None:
        add("slider -> image p95 over the floor", b["slider_p95_over_floor_ms"], "app",
            f"app {b['app']['slider']['p95']:.0f} ms, floor {floor['slider']['p95']:.0f} ms")
        add("slider -> image p95 (stretch)", b["app"]["slider"]["p95"], "app",
            "2-D model: images decoded ahead on the server, picked in the browser")
    cold = _get(b, "cold_start", "app", "canvas", "p95")
    add("cold start p95", cold, "app", f"floor {_get(b, 'cold_start', 'floor', 'canvas', 'p95')} s")
    add("resident memory", _get(b, "memory", "app", "rss_mb"), "app",
        f"peak {_get(b, 'memory', 'app', 'peak_rss_mb')} MB; floor app {_get(b, 'memory', 'floor', 'rss_mb')} MB")
    for model, r in (_get(s, "throughput", "models") or {}).items():
        add("training speed-up over the reference", r["speedup"], model,
            f"{r['ours_images_per_s']:.0f} vs {r['reference_images_per_s']:.0f} images/s")
    for model, r in (_get(s, "limit", "models") or {}).items():
        if r.get("arch") == "mlp" and r.get("pipeline"):
            add("MLP training FLOP/s / torch.mm peak", r["pipeline"]["percent_of_peak"], model,
                f"{r['pipeline']['gflops']} of {s['limit']['matmul']['best_gflops']} GFLOP/s")
    return rows


def targets_table(results: dict[str, Any]) -> str:
    lines = ["| target | where | measured | bound | met |", "|---|---|---|---|---|"]
    for r in target_rows(results):
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['target']} | {r['where']} | {_num(r['value'])} {r['unit']}{note} | {r['bound']} | "
                     f"{'yes' if r['met'] else '**no**'} |")
    return "\n".join(lines)


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2g}" if abs(v) < 1 else f"{v:.2f}"


def _pp(s: dict[str, float] | None) -> str:
    return "—" if not s else f"{_num(s['p50'])} / {_num(s['p95'])}"


def latency_table(section: dict[str, Any]) -> str:
    cols = ["preprocess", "preprocess_array", "classify", "read", "reconstruct", "decode", "grid_20x20",
            "draw_pipeline", "app_rerun"]
    names = {"preprocess": "preprocess (canvas PNG)", "preprocess_array": "preprocess (canvas array)",
             "read": "read (all of one model)"}
    head = ["model", "K", *[names.get(c, c.replace("_", " ")) for c in cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, r in section["models"].items():
        lines.append(f"| {model} | {section['k'][model]} | " + " | ".join(_pp(r.get(c)) for c in cols) + " |")
    notes = []
    for model, r in section["models"].items():
        w = r.get("what_if")
        if w:
            ks = ", ".join(f"K={k}: {v['p50']:.3g}" for k, v in w["classify_by_k"].items())
            note = (f"- {model}: classify p50 by K (ms): {ks}; with one torch thread: decode "
                    f"{_pp(w['one_thread']['decode'])}, draw pipeline {_pp(w['one_thread']['draw_pipeline'])}")
            if "channels_last" in w:
                note += (f"; channels-last: classify {_pp(w['channels_last']['classify'])}, 20x20 grid "
                         f"{_pp(w['channels_last']['grid_20x20'])}")
            notes.append(note + ".")
        v = r.get("variants") or {}
        parts = []
        if "draw_pipeline" in v:
            parts.append(f"draw pipeline through read {_pp(v['draw_pipeline'].get('read'))} vs the separate helpers "
                         f"{_pp(v['draw_pipeline'].get('separate_helpers'))}")
        for call, t in (v.get("threads") or {}).items():
            parts.append(f"{call.replace('_', ' ')} on all cores {_pp(t.get('all_cores'))} vs one thread "
                         f"{_pp(t.get('one_thread'))}")
        for call, t in (v.get("layout") or {}).items():
            parts.append(f"{call.replace('_', ' ')} NCHW {_pp(t.get('nchw'))} vs channels-last {_pp(t.get('channels_last'))}")
        if parts:
            notes.append(f"- {model}, variants alternated in one run (ms): " + "; ".join(parts) + ".")
        for case, ops in (r.get("profiles") or {}).items():
            top = ", ".join(f"{o['op']} {o['share_percent']:g} %" for o in ops[:4])
            notes.append(f"- {model} {case.replace('_', ' ')}, where the time goes (torch.profiler, self CPU): {top}.")
    text = "ms, p50 / p95:\n\n" + "\n".join(lines)
    pre = section.get("preprocess") or {}
    if pre:
        text += ("\n\nPreprocessing alone (ms, p50 / p95): the canvas as PNG " + _pp(pre.get("canvas_png"))
                 + ", as its RGBA array " + _pp(pre.get("canvas_array")) + ", a 3000 px JPEG photo "
                 + _pp(pre.get("photo_jpeg_3000")) + ", a 2000 px PNG " + _pp(pre.get("photo_png_2000")) + ".")
    if notes:
        text += "\n\nOver a target: candidate fixes (ms, p50 / p95) and profiles:\n\n" + "\n".join(notes)
    return text


def browser_table(b: dict[str, Any]) -> str:
    if "skipped" in b:
        return f"Not measured: {b['skipped']}."
    rows = [("stroke released -> digit shown", "draw", "ms"),
            ("slider key -> new image in the DOM", "slider_dom", "ms"),
            ("slider key -> new image decoded", "slider", "ms")]
    lines = ["| measure | app p50 / p95 | floor p50 / p95 |", "|---|---|---|"]
    for label, key, unit in rows:
        lines.append(f"| {label} ({unit}) | {_pp(_get(b, 'app', key))} | {_pp(_get(b, 'floor', key))} |")
    cs = b.get("cold_start") or {}
    lines.append(f"| cold start: spawn -> canvas visible (s) | {_pp(_get(cs, 'app', 'canvas'))} | "
                 f"{_pp(_get(cs, 'floor', 'canvas'))} |")
    lines.append(f"| cold start: spawn -> first drawn digit recognised (s) | {_pp(_get(cs, 'app', 'first_digit'))} | "
                 f"{_pp(_get(cs, 'floor', 'first_digit'))} |")
    lines.append(f"| cold start: spawn -> server healthy (s) | {_pp(_get(cs, 'app', 'healthy'))} | "
                 f"{_pp(_get(cs, 'floor', 'healthy'))} |")
    mem = b.get("memory") or {}
    lines.append(f"| resident memory, every page opened (MB) | {_get(mem, 'app', 'rss_mb')} "
                 f"(peak {_get(mem, 'app', 'peak_rss_mb')}) | {_get(mem, 'floor', 'rss_mb')} |")
    steps = b.get("memory_steps") or {}
    if steps:
        lines.append("")
        lines.append("App resident memory step by step (MB): " + ", ".join(
            f"{k} {v['rss_mb']}" for k, v in steps.items()) + ".")
    trials = f"{b.get('trials')} interaction trials and {b.get('cold_start_trials')} cold starts per app, alternated"
    fails = b.get("failures") or {}
    if any(fails.values()):
        trials += f"; failed trials: {fails}"
    return trials + ":\n\n" + "\n".join(lines)


def throughput_table(t: dict[str, Any]) -> str:
    lines = ["| model | ours (images/s) | reference (images/s) | speed-up | shipped training: time, epochs, images/s |",
             "|---|---|---|---|---|"]
    for model, r in t["models"].items():
        sh = t.get("shipped", {}).get(model, {})
        full = "—"
        if sh.get("training_seconds"):
            full = (f"{sh['training_seconds'] / 60:.1f} min, {sh['epochs']} epochs of {sh['train_size']:,}, "
                    f"{sh['train_images_per_s'] or 0:.0f}/s")
        lines.append(f"| {model} | {r['ours_images_per_s']:.0f} | {r['reference_images_per_s']:.0f} | "
                     f"{r['speedup']:.2f}x | {full} |")
    text = (f"One epoch of {t['images']:,} images, batch {t['batch_size']}, best of {t['repetitions']}:\n\n"
            + "\n".join(lines))
    d = t.get("data_only")
    if d:
        text += (f"\n\nThe data pipelines alone (batches made, no training): ours {d['ours_images_per_s']:,.0f} "
                 f"images/s, the reference {d['reference_images_per_s']:,.0f} images/s ({d['speedup']:g}x).")
    return text


def limit_table(lim: dict[str, Any]) -> str:
    head = (f"torch.mm {lim['matmul']['n']}x{lim['matmul']['n']} fp32: **{lim['matmul']['best_gflops']} GFLOP/s**; "
            f"copy bandwidth {lim['memory']['best_gb_per_s']} GB/s; machine balance "
            f"{lim['machine_balance_flops_per_byte']} FLOP/byte.\n\n")
    lines = ["| model | MFLOP per training image | our loop (GFLOP/s, % of mm) | bare step b128 (fused Adam, "
             "as trained) | b128, default per-tensor Adam | bare step b512 |", "|---|---|---|---|---|---|"]

    def cell(r: dict[str, Any] | None) -> str:
        return "—" if not r else f"{r['gflops']} ({r['percent_of_peak']} %)"

    for model, r in lim["models"].items():
        lines.append(f"| {model} | {r['training_mflop_per_image']} | {cell(r.get('pipeline'))} | "
                     f"{cell(r.get('step_b128'))} | {cell(r.get('step_b128_loop_adam'))} | {cell(r.get('step_b512'))} |")
    conv = [(m, r) for m, r in lim["models"].items() if r.get("step_ms_by_op")]
    tail = ""
    for model, r in conv:
        split = ", ".join(f"{k} {v:g} ms" for k, v in r["step_ms_by_op"].items())
        layers = ", ".join(f"{x['layer']} {x['flops_per_byte_fwd']}" for x in r["layers"] if x["kind"] == "Conv2d")
        tail += (f"\n\n{model}: one training step (batch 128) by operator: {split}; its convolutions run at "
                 f"{r['conv_gflops']} GFLOP/s. Forward FLOP/byte per conv layer: {layers}.")
    return head + "\n".join(lines) + tail


def scaling_lines(sc: dict[str, Any]) -> str:
    out = []
    for model, rows in sc.get("inference", {}).items():
        first, last = rows[0], rows[-1]
        out.append(f"- inference {model}: reconstruct costs {first['ms']:.2f} ms at batch {first['batch']} and "
                   f"{last['ms']:.0f} ms at {last['batch']}: {first['us_per_image']:.0f} -> "
                   f"{last['us_per_image']:.0f} us per image ({first['us_per_image'] / last['us_per_image']:.0f}x "
                   f"cheaper per image in bulk).")
    for model, t in sc.get("training", {}).items():
        out.append(f"- training {model}: one epoch takes {t['fixed_seconds']:.2f} s + {t['us_per_image']:.0f} us "
                   f"per image (linear, R^2 = {t['r2']}); a full 55k epoch ~ {t['full_epoch_seconds_predicted']:.0f} s.")
    return "\n".join(out)


def markdown(results: dict[str, Any], *, heading: str = "##") -> str:
    s = results.get("sections", {})
    m = results.get("machine", {})
    parts = [
        f"{heading} Benchmarks\n",
        f"{m.get('cpu')}, {m.get('cores')} cores, torch {m.get('torch')} ({m.get('torch_threads')} threads); "
        f"generated {results.get('generated')}{' (quick run)' if results.get('quick') else ''}. Load average "
        f"(1 min) during each section: " + ", ".join(
            f"{k} {v['load_average'][0]}-{v['load_average'][1]}" for k, v in s.items() if "load_average" in v) + ".\n",
        f"{heading}# Targets\n", targets_table(results),
    ]
    if "latency" in s:
        parts += [f"\n{heading}# Inference latency\n", latency_table(s["latency"])]
    if "browser" in s:
        parts += [f"\n{heading}# In the browser\n", browser_table(s["browser"])]
    for key in sorted(k for k in s if k.startswith("browser@")):
        tag = key.split("@", 1)[1]
        parts += [f"\n{heading}# In the browser, servers run by `{s[key].get('server_python')}` ({tag})\n",
                  browser_table(s[key])]
    if "throughput" in s:
        parts += [f"\n{heading}# Training throughput\n", throughput_table(s["throughput"])]
    if "limit" in s:
        parts += [f"\n{heading}# Against the limit\n", limit_table(s["limit"])]
    if "scaling" in s:
        parts += [f"\n{heading}# Scaling\n", scaling_lines(s["scaling"])]
    return "\n".join(parts) + "\n"

