"""The scaling-suite section of ``benchmarks/README.md``."""

from __future__ import annotations

import pathlib

from benchmarks._src.render import table

TITLE = "Scaling"

INTRO = """\
`python -m benchmarks.scaling` trains the same VAE epoch (one compiled `lax.scan`, global
batch fixed) data-parallel over 1, 2, 4, ... devices of a `jax.sharding.Mesh`, one
subprocess per device count, and reports throughput and how far each run's epoch-mean
losses drift from the 1-device run (float rounding only: the batches and random draws
are the same whatever the device count).
"""


def section(result: dict, results_dir: pathlib.Path) -> str:
    """Markdown for one scaling results file."""
    workload = result["workload"]
    rows = [
        [
            str(run["devices"]),
            f"{run['examples_per_second']:,.0f}",
            f"{run['epoch_seconds_median']:.2f} s",
            f"{run['throughput_vs_1_device']:.2f}×",
            f"{run['max_rel_loss_difference_vs_1_device']:.1e}",
            f"{run['host_load_average_1min']:.1f}",
        ]
        for run in result["runs"]
    ]
    headers = [
        "devices",
        "examples/s",
        "s/epoch",
        "vs 1 device",
        "max rel. loss diff.",
        "host load",
    ]
    device = result["device"]
    if not device.startswith(f"{result['backend']}:"):
        device = f"{result['backend']}: {device}"
    return "\n".join(
        [
            f"### {device}",
            "",
            f"Results file `results/{result['_file']}` ({result['date']}, "
            f"jax {result['jax_version']}): "
            f"{workload['model']}, {workload['optimizer']}, global batch "
            f"{workload['global_batch_size']}, {workload['train_examples']:,} examples per epoch, "
            f"{workload['timed_epochs_per_count']} timed epochs per device count.",
            "",
            table(headers, rows, markdown=True),
            "",
            f"Note: {result['note']}" if result.get("note") else "",
            "",
        ]
    )
