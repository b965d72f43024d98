"""What training shares with the runtime: stage progress (localizer.progress.StageProgress), the device
rule (localizer.device), the error root and the one-line error edge of the stage commands."""

from __future__ import annotations

import io

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from indexer.errors import LocalizerError
from localizer.progress import StageProgress

from cornstack_train.data.records import StageError
from cornstack_train.errors import StageCommand, StageGroup, TrainingError, one_line


def test_without_a_terminal_it_writes_a_line_a_minute_and_one_at_the_end():
    out = io.StringIO()
    now = [0.0]
    bar = StageProgress("filter: encode", "text", console=Console(file=out, force_terminal=False, width=200),
                        clock=lambda: now[0])
    assert not bar.is_bar
    now[0] = 10.0
    bar(10, 100)  # under a minute: nothing
    now[0] = 61.0
    bar(61, 100, "org/[repo]")
    now[0] = 70.0
    bar(70, 100)
    now[0] = 80.0
    bar(100, 100)  # done: always a line
    bar.close()
    assert out.getvalue().splitlines() == [
        "filter: encode: 61/100 texts (1.0/s, at org/[repo])",
        "filter: encode: 100/100 texts (1.2/s)",
    ]


def test_on_a_terminal_it_draws_a_bar_with_the_current_item():
    out = io.StringIO()
    with StageProgress("mine", "source", console=Console(file=out, force_terminal=True, width=120)) as bar:
        assert bar.is_bar
        bar(1, 4, "acme/[calc]")
        bar._bars.refresh()
        drawn = out.getvalue()
    assert "mine" in drawn and "1/4" in drawn and "acme/[calc]" in drawn


def test_no_project_code_imports_tqdm():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for package in ("indexer", "localizer", "cornstack_train", "benchmarks"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(name.split(".")[0] == "tqdm" for name in names):
                    offenders.append(str(path.relative_to(root)))
    assert not offenders


def test_training_errors_share_the_runtime_root():
    from cornstack_train.data.mining import MiningError
    from cornstack_train.data.registry import RegistryError
    from localizer.embedding.shipped import CompactError

    for error in (StageError, MiningError, RegistryError, CompactError, TrainingError):
        assert issubclass(error, LocalizerError) and not issubclass(error, RuntimeError)
    assert one_line(StageError("first\n  second\n")) == "first second"


def test_a_localizer_error_leaving_a_command_is_one_line_and_exit_1():
    @click.command(cls=StageCommand)
    def broken():
        raise StageError("data/x is not a finished stage\n(no stats.json)")

    @click.group(cls=StageGroup)
    def group():
        pass

    @group.command("plain")
    def plain():
        raise TrainingError("the harness failed")

    result = CliRunner().invoke(broken, [])
    assert result.exit_code == 1
    assert result.output == "cornstack-train: error: data/x is not a finished stage (no stats.json)\n"
    result = CliRunner().invoke(group, ["plain"])
    assert result.exit_code == 1 and result.output == "cornstack-train: error: the harness failed\n"


@pytest.mark.parametrize("argv", [["filter", "nowhere", "-o", "out"], ["eval", "nowhere", "-o", "out"]])
def test_the_cli_reports_a_missing_stage_in_one_line(tmp_path, argv):
    from cornstack_train.cli import main

    argv = [str(tmp_path / a) if a in ("nowhere", "out") else a for a in argv]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("cornstack-train: error: ") and "does not exist" in result.output
    assert result.output.count("\n") == 1


def test_training_resolves_devices_with_the_runtime_rule():
    from cornstack_train.data import filtering, negatives
    from cornstack_train.embedder import evaluation, training
    from localizer import device

    assert training.resolve_device is evaluation.resolve_device is device.resolve_device
    assert filtering.resolve_device is negatives.resolve_device is device.resolve_device


def test_progress_lines_spell_their_units_plural():
    from localizer.progress import plural

    assert [plural(u) for u in ("query", "window", "text", "key", "package")] == [
        "queries", "windows", "texts", "keys", "packages"]
