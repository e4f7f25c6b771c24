"""Speed and memory benchmarks of the CVAE Digit Explorer, against its targets (``benchmarks.targets``); run on
demand, never in tests.

    python -m benchmarks [--quick] [--only latency browser ...]   # writes results.json + results.md
    python -m benchmarks.report                                  # README "Results" section + figures

Modules: ``latency`` (inference calls as the app makes them), ``browser`` (Playwright + Chromium
against ``streamlit run``, beside the trivial ``floor_app``), ``throughput`` (training images/s
against a torchvision DataLoader reference), ``limit`` (against this CPU's matrix-multiply peak),
``scaling`` (batch size and data set size), ``tables`` (Markdown from the results) and ``report``.
"""
