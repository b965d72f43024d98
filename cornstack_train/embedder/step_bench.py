"""Seconds per training step for a grid of settings, to size a real run before starting it.

Each setting trains a few steps with the `train` stage itself (no export) and
reports the mean step time without the first step (which pays for lazy
initialization), as wall time and as process CPU time: on a shared machine
the wall time depends on the neighbours, the CPU time much less (with one
thread, CPU time is what the step takes on an idle core). One process runs the whole grid, so imports are paid once.

    nice python -m cornstack_train.embedder.step_bench --data /work/train-data/negatives --out /tmp/step-bench \\
        --setting b32-k3 --setting b32-k3-nocache --setting b32-k3-bf16 --setting b64-k7
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import click

SETTING = re.compile(r"^b(?P<batch>\d+)-k(?P<k>\d+)(?P<flags>(-(nocache|bf16|t\d+|mb\d+|l\d+))*)$")


def parse_setting(spec: str) -> dict:
    """``b32-k3[-nocache][-bf16][-t1][-mb16][-l128]`` -> TrainConfig overrides (l: max_seq_length)."""
    match = SETTING.match(spec)
    if not match:
        raise click.BadParameter(f"{spec!r}: expected b<batch>-k<negatives>[-nocache][-bf16][-t<threads>][-mb<mini>][-l<len>]")
    values: dict = {"batch_size": int(match["batch"]), "hard_negatives": int(match["k"])}
    for flag in filter(None, match["flags"].split("-")):
        if flag == "nocache":
            values["cached"] = False
        elif flag == "bf16":
            values["bf16"] = True
        elif flag.startswith("t"):
            values["threads"] = int(flag[1:])
        elif flag.startswith("mb"):
            values["mini_batch_size"] = int(flag[2:])
        elif flag.startswith("l"):
            values["max_seq_length"] = int(flag[1:])
    return values


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--setting", "settings", multiple=True, required=True,
              help="e.g. b32-k3, b64-k7-nocache, b32-k3-bf16-t1, b32-k3-l128 (max_seq_length 128)")
@click.option("--steps", type=click.IntRange(2), default=3, show_default=True)
@click.option("--model", default=None)
@click.option("--negatives", default="random", show_default=True,
              help="random works on any stage; the sampler's cost is negligible next to the encoder")
def main(data, out, settings, steps, model, negatives) -> None:
    """Measure seconds per optimizer step for each --setting; writes OUT/step_times.json."""
    from cornstack_train.embedder.training import TrainConfig, train

    base = TrainConfig(data=data, out=out / "run", model=model, negatives=negatives, max_steps=steps, save_steps=10**6,
                       logging_steps=1, export=False, overwrite=True, device="cpu", threads=None, mini_batch_size=16)
    results = []
    for spec in settings:
        config = replace(base, **parse_setting(spec))
        shutil.rmtree(out / "run", ignore_errors=True)
        started = time.perf_counter()
        stats = train(config)
        run = stats["run"]
        cpu = run["step_cpu_seconds"][1:] or run["step_cpu_seconds"]
        results.append({"setting": spec, "step_seconds_mean": run["step_seconds_mean"], "step_seconds": run["step_seconds"],
                        "step_cpu_seconds_mean": round(sum(cpu) / len(cpu), 3), "step_cpu_seconds": run["step_cpu_seconds"],
                        "wall_seconds": round(time.perf_counter() - started, 1)})
        click.echo(json.dumps(results[-1]), err=True)
        (out / "step_times.json").write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(out / "run", ignore_errors=True)
    for row in results:
        click.echo(f"{row['setting']:<24} {row['step_seconds_mean']:>8.2f} s/step wall {row['step_cpu_seconds_mean']:>8.2f} s CPU")


if __name__ == "__main__":
    main()
