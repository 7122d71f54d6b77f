"""The training-suite section of ``benchmarks/README.md`` (and its stdout summary)."""

from __future__ import annotations

import math
import pathlib

from benchmarks._src.render import fmt_time, table

TARGET_VS_TORCH = 2.0
TARGET_VS_LOOP = 1.0

TITLE = "Training"

INTRO = f"""\
`python -m benchmarks.training` (`--quick`: a 5,000-image smoke run) measures what a
VAE epoch costs, where its time goes, and what a given training budget buys.

**Head to head.** A VAE 784-400-20 (relu, Bernoulli decoder), batch 128, Adam 1e-3,
dynamically binarised MNIST, trained three ways on the same images for the same number
of steps per epoch (the incomplete last batch dropped):

* **scan**: `models.training.Trainer.run_epoch`, an epoch being one jit-compiled
  `lax.scan` of `models.training.make_train_step` with on-device shuffling and
  binarisation (`mnist.bernoulli_pixels`) and one host read at its end;
* **jax-loop**: the usual per-step loop: numpy shuffling, batching and binarisation on
  the host, `jax.jit(make_train_step(...), donate_argnums=0)` (the same step, state
  donated) called once per minibatch from Python, losses read once per epoch;
* **torch-*n*t**: the same network in plain PyTorch on the CPU (a Python loop over a
  shuffled `DataLoader`, `torch.bernoulli` binarisation, `F.binary_cross_entropy(...,
  reduction="sum")` plus the analytic KL, `torch.optim.Adam` on that sum), PyTorch's
  default initialisation, `torch.set_num_threads(n)` with *n* the core count and *n* = 1:
  on a loaded machine OpenMP's barriers wait for descheduled threads and more threads
  can be much slower; on a GPU machine also **torch-cuda**, the same loop with the model on
  the GPU and each batch copied there. The fastest setting is the reference for the ratios.

Each runs one warm-up epoch, then the timed epochs; the contenders take turns epoch by
epoch in a rotating order, so that load drifting on a shared machine hits all alike.
**s/epoch** is the median timed epoch, **examples/s** the examples of an epoch over it,
**compile** the warm-up epoch's excess over the median (tracing and XLA compilation;
torch is eager), **data** the median time per epoch spent making batches on the host. The losses
(mean negative ELBO per image over each epoch, warm-up first) show that all three learn.
Targets: **scan ≥ {TARGET_VS_TORCH:.0f}× the PyTorch reference's examples/s** and **scan
at least as fast as jax-loop** (both in the same run).

**Breakdown.** In the same rotation, the parts of a scan epoch, each over the same number
of batches: the train step alone (a plain `lax.scan` of the step over pre-binarised
batches); the binarisation alone, old (`jax.random.bernoulli`, a 32-bit random word per
pixel) and new (`mnist.bernoulli_pixels`, two 16-bit thresholds per word; with threefry
keys as the Trainer draws them, and with `jax.random.key(seed, impl="rbg")` keys), each a
scan that gathers and binarises the epoch's shuffled batches, and the gather alone; a plain
`lax.scan` of gather + binarisation + step (state donated, only the mean loss read). The
**Trainer overhead** is the scan Trainer's epoch minus that plain scan (median over rounds
of the paired difference): its finite checks, metric means, placement and undonated
state. The **loop dispatch** is jax-loop's epoch minus its host batching minus the step
alone: per-step dispatch and host-to-device transfer.

**Quality for cost.** `examples.vae.train.train_and_evaluate` with `configs.burda()`
(Burda et al.'s 200-200-50 tanh network, batch 20, their Adam schedule) for a fixed number
of epochs, and with `configs.flax()` (784-500-20) for `--flax-epochs` (the table gives each
run's epochs): test negative ELBO and the
importance-sampled test NLL (IWAE bound with the example's K) on the fixed test
binarisation, with the wall time of the whole call (training, evaluation, probe, pictures).
"""


def _fmt_load(values) -> str:
    return "?" if not values else " / ".join(f"{v:.1f}" for v in values)


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return format(value, spec)


def _contender_rows(result: dict) -> list[list[str]]:
    h2h = result["head_to_head"]
    torch_eps = next(
        (c["examples_per_s"] for c in h2h["contenders"] if c["name"] == h2h.get("torch_reference")),
        None,
    )
    rows = []
    for c in h2h["contenders"]:
        if c["status"] != "ok":
            rows.append([c["name"], c["status"].split(":")[0], "", "", "", "", "", ""])
            continue
        vs_torch = f"{c['examples_per_s'] / torch_eps:.2f}×" if torch_eps else "—"
        losses = c["losses"]
        loss_text = f"{losses[0]:.1f} → {losses[-1]:.1f}"
        data = (
            fmt_time(c.get("data_loading_s_median"))
            if "data_loading_s_median" in c
            else "on device"
        )
        rows.append(
            [
                c["name"],
                fmt_time(c["median_epoch_s"]),
                f"{fmt_time(min(c['epoch_s']))}–{fmt_time(max(c['epoch_s']))} "
                f"({len(c['epoch_s'])})",
                f"{c['examples_per_s']:,.0f}",
                vs_torch,
                fmt_time(c["compile_s"]) if "compile_s" in c else "eager",
                data,
                loss_text,
            ]
        )
    return rows


CONTENDER_HEADERS = [
    "contender",
    "s/epoch",
    "range (epochs)",
    "examples/s",
    "vs torch",
    "compile",
    "data",
    "loss (warm-up → last)",
]
QUALITY_HEADERS = [
    "configuration",
    "epochs",
    "train images",
    "test −ELBO",
    "test NLL (K)",
    "s/epoch",
    "wall time",
    "bar",
]


def _skip_notes(result: dict) -> list[str]:
    """Why contenders were skipped, each reason once."""
    reasons = {}
    for c in result["head_to_head"]["contenders"]:
        if c["status"] != "ok":
            reasons.setdefault(c["status"].split(":", 1)[-1].strip(), []).append(c["name"])
    return [f"{', '.join(names)}: skipped, {reason}." for reason, names in reasons.items()]


def _verdict(result: dict) -> str:
    h2h = result["head_to_head"]
    ratios = h2h["throughput_ratios"]
    ratio = ratios.get("scan/torch")
    if ratio is None:
        text = "scan against torch: not measured (no torch reference in this run)"
    else:
        mark = "✓" if ratio >= TARGET_VS_TORCH else "✗"
        text = (
            f"scan against the fastest torch setting ({h2h['torch_reference']}): {ratio:.2f}× "
            f"its examples/s (target ≥ {TARGET_VS_TORCH:.0f}×) {mark}"
        )
    loop = ratios.get("scan/jax-loop")
    if loop is not None:
        mark = "✓" if loop >= TARGET_VS_LOOP else "✗"
        text += f"; scan against jax-loop: {loop:.2f}× (target ≥ {TARGET_VS_LOOP:.0f}×) {mark}"
    return text


def _signed_time(seconds) -> str:
    if seconds is None:
        return "—"
    return f"−{fmt_time(-seconds)}" if seconds < 0 else fmt_time(seconds)


BREAKDOWN_HEADERS = ["part", "what", "s/epoch", "per step", "of the scan epoch"]
_BREAKDOWN_ROWS = (
    ("step alone", "step-only", "step_compute_s"),
    ("binarise, old", "binarize-bernoulli", "binarize_bernoulli_s"),
    ("binarise, new", "binarize-pixels", "binarize_pixels_s"),
    ("binarise, new, rbg keys", "binarize-pixels-rbg", "binarize_pixels_rbg_s"),
    ("gather alone", "gather", "gather_s"),
    ("step + new binarisation", "step alone + binarise, new", "step_plus_binarize_s"),
    ("plain scan", "plain-scan", "plain_scan_s"),
    (
        "Trainer overhead",
        "scan Trainer − plain scan, median of the paired differences",
        "trainer_overhead_s",
    ),
    ("scan Trainer", "Trainer.run_epoch (the scan contender)", "scan_trainer_s"),
    ("jax-loop", "the per-step loop contender", "jax_loop_s"),
    ("loop dispatch", "jax-loop − its host batching − step alone", "loop_dispatch_s"),
)


def _breakdown_rows(breakdown: dict) -> list[list[str]]:
    steps = breakdown["steps_per_epoch"]
    scan = breakdown.get("scan_trainer_s")
    components = breakdown.get("components", {})
    rows = []
    for title, what, key in _BREAKDOWN_ROWS:
        seconds = breakdown.get(key)
        if seconds is None:
            continue
        if what in components:
            what = components[what]["label"]
        share = f"{100 * seconds / scan:.0f} %".replace("-", "−") if scan else "—"
        rows.append([title, what, _signed_time(seconds), _signed_time(seconds / steps), share])
    return rows


def _breakdown_note(breakdown: dict) -> str:
    parts = []
    speedup = breakdown.get("binarize_speedup")
    if speedup is not None:
        parts.append(
            f"`mnist.bernoulli_pixels` binarises an epoch {speedup:.2f}× as fast as "
            "`jax.random.bernoulli`"
        )
    components = breakdown.get("components", {})
    pixels = {name: c["mean_pixel"] for name, c in components.items() if "mean_pixel" in c}
    if pixels:
        parts.append(
            "mean pixel of the last epoch: "
            + ", ".join(f"{name} {value:.4f}" for name, value in pixels.items())
        )
    return "; ".join(parts)


def _quality_rows(result: dict) -> list[list[str]]:
    rows = []
    for name, q in result.get("quality", {}).items():
        bar = q.get("neg_elbo_bar_nats")
        bar_text = (
            ""
            if bar is None
            else (f"−ELBO ≤ {bar:.0f}: {'✓' if q['test_neg_elbo_nats'] <= bar else '✗'}")
        )
        nll_bar = q.get("nll_bar_nats")
        if nll_bar is not None:
            met = q["test_nll_nats"] <= nll_bar
            bar_text = (
                f"NLL ≤ {nll_bar:.2f} (after {q['bar_epochs']} epochs): "
                f"{'✓' if met else '✗'} after {q['epochs']}"
            )
        rows.append(
            [
                f"{name} (batch {q['batch_size']})",
                str(q["epochs"]),
                f"{q['train_examples']:,}",
                _fmt(q["test_neg_elbo_nats"], ".2f"),
                f"{_fmt(q['test_nll_nats'], '.2f')} (K={q['eval_samples']})",
                fmt_time(q.get("train_seconds_per_epoch")),
                fmt_time(q["wall_s"]),
                bar_text,
            ]
        )
    return rows


def _run_line(result: dict) -> str:
    torch_text = f"torch {result['torch']}" if "torch" in result else "no torch"
    return (
        f"{'quick' if result['quick'] else 'full'} run on {result['date']}, "
        f"jax {result['jax']}, {torch_text}, {result['wall_s']:.0f} s. "
        f"Load average (1/5/15 min) before {_fmt_load(result['load_average_before'])}, "
        f"after {_fmt_load(result['load_average_after'])} on {result['host_cores']} cores."
        + (
            f" MNIST from {result['data_source']}."
            if "numpy" in result.get("data_source", "")
            else ""
        )
    )


def summary_text(result: dict) -> str:
    """Aligned text for stdout at the end of a run."""
    lines = [
        f"Summary — {result['backend']}: {result['device']}",
        _run_line(result),
        "",
        table(CONTENDER_HEADERS, _contender_rows(result)),
        *_skip_notes(result),
        _verdict(result),
    ]
    breakdown = result["head_to_head"].get("breakdown")
    if breakdown:
        lines += [
            "",
            table(BREAKDOWN_HEADERS, _breakdown_rows(breakdown)),
            _breakdown_note(breakdown),
        ]
    if result.get("quality"):
        lines += ["", table(QUALITY_HEADERS, _quality_rows(result))]
    return "\n".join(lines)


def section(result: dict, results_dir: pathlib.Path) -> str:
    """Markdown for one training results file."""
    h2h = result["head_to_head"]
    old_torch = result.get("schema", 1) < 2 and len(result.get("torch_threads", [])) > 1
    lines = [
        f"### {result['backend']}: {result['device']}",
        "",
        f"Results file `results/{result['_file']}`: {_run_line(result)}",
        "",
        *(
            [
                "Note: in this results file (schema 1) `torch.set_num_threads` was called once "
                "per contender at construction, so every torch contender ran with the "
                "thread count of the last one built (1); from schema 2 on, each contender "
                "sets its own at the start of every epoch.",
                "",
            ]
            if old_torch
            else []
        ),
        f"#### Head to head: {h2h['model']}, batch {h2h['batch_size']}",
        "",
        f"{h2h['train_examples']:,} training images, {h2h['steps_per_epoch']} steps "
        f"({h2h['examples_per_epoch']:,} examples) per epoch, 1 warm-up and "
        f"{h2h['timed_epochs']} timed epochs per contender (fewer for one whose epochs "
        f"passed {h2h['contender_budget_s']:.0f} s in all).",
        "",
        table(CONTENDER_HEADERS, _contender_rows(result), markdown=True),
        "",
        *(note + "\n" for note in _skip_notes(result)),
        f"**{_verdict(result)}**.",
        "",
    ]
    breakdown = h2h.get("breakdown")
    if breakdown:
        lines += [
            f"#### Breakdown of an epoch ({breakdown['steps_per_epoch']} steps)",
            "",
            table(BREAKDOWN_HEADERS, _breakdown_rows(breakdown), markdown=True),
            "",
        ]
        note = _breakdown_note(breakdown)
        if note:
            lines += [note + ".", ""]
    if result.get("quality"):
        lines += [
            "#### Quality for cost",
            "",
            table(QUALITY_HEADERS, _quality_rows(result), markdown=True),
            "",
            "Evaluation sets: "
            + "; ".join(f"{name}: {q['evaluation_set']}" for name, q in result["quality"].items())
            + ". s/epoch is the example's mean over its epochs, compilation and "
            "checkpointing included, the per-epoch test evaluation excluded.",
            "",
        ]
    return "\n".join(lines)
