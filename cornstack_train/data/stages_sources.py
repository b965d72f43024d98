"""Click command ``download``: training code from package registries, ready for ``mine --sources-dir``.

Thin over :func:`cornstack_train.data.registry.download_packages`; registered by the
``cornstack-train`` group (cornstack_train/cli.py).
"""

from __future__ import annotations

import json

import click

from indexer.errors import LocalizerError
from localizer.progress import StageProgress

from cornstack_train.data.registry import RegistryConfig, download_packages, load_package_list
from cornstack_train.errors import StageCommand, fail


@click.command("download", cls=StageCommand)
@click.argument("package_list", type=click.Path(dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Sources directory: one unpacked release per package, plus manifest.json and stats.json.")
@click.option("--pypi-url", default=RegistryConfig.pypi_url, show_default=True,
              help="PyPI's simple index in its JSON form (PEP 691), or a mirror's.")
@click.option("--npm-url", default=RegistryConfig.npm_url, show_default=True, help="npm registry (or a mirror).")
@click.option("--debian-url", default=RegistryConfig.debian_url, show_default=True,
              help="Debian archive (or a mirror) whose pool/ holds the packages.")
@click.option("--debian-suite", default=RegistryConfig.debian_suite, show_default=True,
              help="Suite whose binary-all index lists the debian-binary packages.")
@click.option("--max-archive-mb", default=200, show_default=True, type=click.IntRange(1),
              help="Refuse archives larger than this.")
@click.option("--timeout", "timeout_s", default=60.0, show_default=True, type=click.FloatRange(1),
              help="Seconds before a stalled download fails.")
@click.option("--overwrite", is_flag=True, help="Download every package again, even the ones already unpacked.")
def download_command(package_list, out, pypi_url, npm_url, debian_url, debian_suite, max_archive_mb, timeout_s,
                     overwrite):
    """Download pinned releases from PyPI, npm and Debian into a sources directory.

    PACKAGE_LIST is a JSON array of {"registry", "name", "version", "language",
    optional "sha256" (pins the archive) and "project" (upstream owner/name)}.
    Registries: pypi (the sdist), npm (the tarball), debian (a source
    package's upstream tarball) and debian-binary (an architecture-independent
    .deb, for Go -dev, Ruby and PHP libraries, which install their source).
    docs/registry-sources.json is the list the shipped embedder is trained on. Each archive is checked against the digest its
    registry publishes, unpacked (regular files only) and renamed into place;
    a rerun skips packages already there. Names on the SWE-bench deny-list are
    never downloaded. Then: cornstack-train mine --sources-dir OUT ...
    """
    try:
        specs = load_package_list(package_list)
    except LocalizerError as exc:
        fail(exc)
    config = RegistryConfig(pypi_url=pypi_url, npm_url=npm_url, debian_url=debian_url, debian_suite=debian_suite,
                            max_archive_bytes=max_archive_mb * 2**20, timeout_s=timeout_s, overwrite=overwrite)
    bar = StageProgress("download", "package")
    try:
        report = download_packages(specs, out, config, progress=bar)
    except OSError as exc:
        fail(f"cannot write {out}: {exc}")
    finally:
        bar.close()
    summary = {"downloaded": len(report.downloaded), "already there": len(report.existing),
               "denied": report.denied, "failed": report.failed, "archive MB": round(report.archive_bytes / 2**20, 1),
               "files by language": report.files_by_language}
    if report.unlisted:
        summary["not in the list (mine would read them too)"] = report.unlisted
    click.echo(json.dumps(summary, indent=1), err=True)
    if report.failed:
        fail(f"{len(report.failed)} of {len(specs)} packages failed (listed above); "
             "rerun to retry them, the others are kept")
