"""Running the ``localize`` CLI in-process, and the one-line error contract every command keeps."""

from click.testing import CliRunner

from localizer.cli.main import main


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def assert_one_line_error(result, needle):
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("localize: error:")]
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr
