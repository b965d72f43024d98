"""``--issues-dir`` stays inside its directory (issue #26, case 9)."""

from __future__ import annotations

from tests.cli_helpers import run
from tests.localizer.test_localize import CART_ISSUE


def test_issues_dir_skips_symlinks_that_lead_outside_it(sample_repo, index_dir, tmp_path):
    """A checkout could plant issues/x.md -> ~/.ssh/id_rsa, and its report would quote the file."""
    secret = tmp_path / "secret.md"
    secret.write_text("Deploy key leaked\n\nAWS_SECRET=hunter2\n")
    issues = tmp_path / "issues"
    issues.mkdir()
    (issues / "0001-cart.md").write_text(CART_ISSUE)
    (issues / "0002-secret.md").symlink_to(secret)
    (issues / "0003-alias.md").symlink_to("0001-cart.md")  # a link inside the directory is fine
    result = run("triage", "--repo", sample_repo, "--retriever", "bm25", "--index-dir", index_dir, "-q",
                 "--issues-dir", issues)
    assert result.exit_code == 0, result.stderr
    reports = sorted(p.name for p in (issues / "reports").iterdir())
    assert reports == ["0001-cart.triage.md", "0003-alias.triage.md"]
    warnings = [line for line in result.stderr.splitlines() if "0002-secret.md" in line]
    assert len(warnings) == 1 and "outside" in warnings[0] and "Traceback" not in result.stderr
    assert "hunter2" not in "".join(p.read_text() for p in (issues / "reports").iterdir())
