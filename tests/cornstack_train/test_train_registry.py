"""Registry sources (cornstack_train/data/registry.py): resolve, verify, unpack and mine releases without a network.

A fake ``fetch`` serves registry metadata and archives built in memory, so
every check here runs offline and can fail: digests are really computed, the
archives are really unpacked, and ``mine`` really reads the result.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import lzma
import tarfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from cornstack_train.cli import main as cornstack_main
from cornstack_train.data.registry import (
    Archive,
    PackageSpec,
    RegistryConfig,
    RegistryError,
    debian_archive,
    debian_dsc_url,
    denied_package,
    download_packages,
    extract_archive,
    load_package_list,
    npm_archive,
    parse_package_list,
    pypi_archive,
    verify_archive,
)

PY_SOURCE = b'''def parse_duration(text):
    """Parse a human duration such as 3h20m into the total number of seconds it spans."""
    total = 0
    number = ""
    for ch in text:
        if ch.isdigit():
            number += ch
        else:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[ch]
            number = ""
    return total
'''
JS_SOURCE = b'''/**
 * Split an array into groups of the given size, the last group holding the rest.
 */
function chunkArray(items, size) {
  const groups = [];
  for (let i = 0; i < items.length; i += size) {
    groups.push(items.slice(i, i + size));
  }
  return groups;
}
module.exports = chunkArray;
'''
RB_SOURCE = b'''module Slugs
  # Turn a title into a lower-case, dash-separated slug that is safe inside a URL path.
  def self.slugify(title)
    words = title.downcase.scan(/[a-z0-9]+/)
    words.reject(&:empty?).join("-")
  end
end
'''
GO_SOURCE = b'''package mathx

// Clamp returns the value limited to the closed interval between low and high bounds.
func Clamp(value, low, high int) int {
\tif value < low {
\t\treturn low
\t}
\tif value > high {
\t\treturn high
\t}
\treturn value
}
'''


def tar_gz(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buffer.getvalue()


class FakeRegistry:
    """URL -> bytes, counting requests so tests can see what a rerun fetched."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []

    def __call__(self, url: str, limit: int) -> bytes:
        self.requests.append(url)
        if url not in self.files:
            raise RegistryError(f"{url}: HTTP 404 Not Found")
        data = self.files[url]
        if len(data) > limit:
            raise RegistryError(f"{url} is larger than {limit} bytes")
        return data

    def add_pypi(self, config: RegistryConfig, name: str, version: str, archive: bytes) -> None:
        url = f"https://files.example/{name}-{version}.tar.gz"
        self.files[url] = archive
        page = {"files": [{"filename": f"{name}-{version}-py3-none-any.whl", "url": "https://files.example/x.whl",
                           "hashes": {"sha256": "0" * 64}},
                          {"filename": f"{name}-{version}.tar.gz", "url": url,
                           "hashes": {"sha256": hashlib.sha256(archive).hexdigest()}}]}
        self.files[f"{config.pypi_url}/{name}/"] = json.dumps(page).encode()

    def add_npm(self, config: RegistryConfig, name: str, version: str, archive: bytes) -> None:
        url = f"{config.npm_url}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
        self.files[url] = archive
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(archive).digest()).decode()
        meta = {"dist": {"tarball": url, "integrity": integrity}}
        self.files[f"{config.npm_url}/{name.replace('/', '%2F')}/{version}"] = json.dumps(meta).encode()

    def add_debian(self, config: RegistryConfig, source: str, version: str, archive: bytes) -> None:
        upstream = version.split(":")[-1].rsplit("-", 1)[0]
        orig = f"{source}_{upstream}.orig.tar.gz"
        spec = PackageSpec("debian", source, version, "go")
        pool = debian_dsc_url(spec, config).rsplit("/", 1)[0]
        self.files[f"{pool}/{orig}"] = archive
        debian_tar = f"{source}_{version.split(':')[-1]}.debian.tar.xz"
        self.files[debian_dsc_url(spec, config)] = (
            f"Format: 3.0 (quilt)\nSource: {source}\nChecksums-Sha256:\n"
            f" {hashlib.sha256(archive).hexdigest()} {len(archive)} {orig}\n"
            f" {'1' * 64} 100 {debian_tar}\nFiles:\n x 1 y\n").encode()


    def add_debian_binary(self, config: RegistryConfig, package: str, version: str, data_tar: bytes) -> None:
        deb = ar_archive({"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.gz": data_tar})
        pool_file = f"pool/main/r/{package}/{package}_{version}_all.deb"
        self.files[f"{config.debian_url}/{pool_file}"] = deb
        index = (f"Package: other\nVersion: 1\nFilename: pool/x.deb\nSHA256: {'2' * 64}\n\n"
                 f"Package: {package}\nVersion: {version}\nArchitecture: all\nFilename: {pool_file}\n"
                 f"SHA256: {hashlib.sha256(deb).hexdigest()}\n")
        self.files[f"{config.debian_url}/dists/{config.debian_suite}/main/binary-all/Packages.xz"] = \
            lzma.compress(index.encode())


def ar_archive(members: dict[str, bytes]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members.items():
        out.append(f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode())
        out.append(data + (b"\n" if len(data) % 2 else b""))
    return b"".join(out)


@pytest.fixture
def registry() -> tuple[FakeRegistry, RegistryConfig]:
    config = RegistryConfig()
    fake = FakeRegistry()
    fake.add_pypi(config, "durations", "1.0", tar_gz({"durations-1.0/durations/core.py": PY_SOURCE,
                                                     "durations-1.0/PKG-INFO": b"Name: durations\n"}))
    fake.add_npm(config, "@acme/chunk", "2.1.0", tar_gz({"package/index.js": JS_SOURCE}))
    fake.add_debian(config, "golang-mathx", "1:0.3-2", tar_gz({"mathx-0.3/clamp.go": GO_SOURCE}))
    fake.add_debian_binary(config, "ruby-slugs", "0.4-1", tar_gz({"./usr/lib/ruby/vendor_ruby/slugs.rb": RB_SOURCE,
                                                                  "./usr/share/doc/ruby-slugs/copyright": b"MIT"}))
    return fake, config


SPECS = [
    {"registry": "pypi", "name": "durations", "version": "1.0", "language": "python"},
    {"registry": "npm", "name": "@acme/chunk", "version": "2.1.0", "language": "javascript"},
    {"registry": "debian", "name": "golang-mathx", "version": "1:0.3-2", "language": "go", "project": "acme/mathx"},
    {"registry": "debian-binary", "name": "ruby-slugs", "version": "0.4-1", "language": "ruby"},
]


def test_package_list_errors_name_the_entry(tmp_path):
    with pytest.raises(RegistryError, match="entry 1: missing version"):
        parse_package_list([SPECS[0], {"registry": "pypi", "name": "x", "language": "python"}])
    with pytest.raises(RegistryError, match="registry must be one of"):
        parse_package_list([{**SPECS[0], "registry": "rubygems"}])
    with pytest.raises(RegistryError, match="unknown keys homepage"):
        parse_package_list([{**SPECS[0], "homepage": "x"}])
    with pytest.raises(RegistryError, match="listed twice"):
        parse_package_list([SPECS[0], SPECS[0]])
    with pytest.raises(RegistryError, match="must be a string"):
        parse_package_list([{**SPECS[0], "version": 1.0}])
    with pytest.raises(RegistryError, match="sha256 must be"):
        parse_package_list([{**SPECS[0], "sha256": "abc"}])
    bad = tmp_path / "list.json"
    bad.write_text("{not json")
    with pytest.raises(RegistryError, match="is not JSON"):
        load_package_list(bad)
    with pytest.raises(RegistryError, match="cannot read"):
        load_package_list(tmp_path / "missing.json")


def test_directory_and_repo_names_are_filesystem_safe():
    spec = parse_package_list([SPECS[1]])[0]
    assert spec.directory == "npm__acme-chunk"
    assert spec.repo == "npm/acme-chunk"


def test_deny_list_applies_to_package_names_and_projects():
    def spec(name, project=None):
        return PackageSpec("pypi", name, "1", "python", project=project)

    assert denied_package(spec("requests")) == "fork"
    assert denied_package(spec("Django")) is not None
    assert denied_package(spec("flask-login")) == "name"
    assert denied_package(PackageSpec("debian", "python-django", "1", "python")) == "name"
    assert denied_package(spec("renamed", project="sympy/sympy")) == "benchmark"
    assert denied_package(spec("attrs", project="python-attrs/attrs")) is None


def test_registry_metadata_pick_the_source_archive_and_its_digest():
    config = RegistryConfig()
    spec = PackageSpec("pypi", "p", "1", "python")
    page = {"files": [{"filename": "My_Pkg-1.tar.gz", "url": "u", "hashes": {"sha256": "ab" * 32}},
                      {"filename": "my_pkg-10.tar.gz", "url": "v", "hashes": {"sha256": "cd" * 32}}]}
    archive = pypi_archive(page, PackageSpec("pypi", "my-pkg", "1", "python"))
    assert (archive.url, archive.algorithm, archive.digest) == ("u", "sha256", "ab" * 32)
    with pytest.raises(RegistryError, match="no sdist"):
        pypi_archive({"files": [{"filename": "p-1-py3-none-any.whl", "url": "w", "hashes": {"sha256": "0" * 64}}]},
                     spec)
    npm = npm_archive({"dist": {"tarball": "https://r/p/-/p-1.tgz",
                                "integrity": "sha512-" + base64.b64encode(b"\x01" * 64).decode()}}, spec)
    assert (npm.algorithm, npm.digest, npm.filename) == ("sha512", "01" * 64, "p-1.tgz")
    dsc = ("Checksums-Sha256:\n " + "a" * 64 + " 10 src_1.0.orig.tar.xz\n " + "b" * 64 + " 5 src_1.0.orig-doc.tar.xz\n "
           + "c" * 64 + " 3 src_1.0-1.debian.tar.xz\n")
    deb = debian_archive(dsc, PackageSpec("debian", "src", "1.0-1", "go"), config)
    assert deb.filename == "src_1.0.orig.tar.xz" and deb.digest == "a" * 64
    assert deb.url == "http://deb.debian.org/debian/pool/main/s/src/src_1.0.orig.tar.xz"
    native = "Checksums-Sha256:\n " + "d" * 64 + " 9 libfoo-java_2.0.tar.gz\n"
    assert debian_archive(native, PackageSpec("debian", "libfoo-java", "2.0", "java"), config).url.endswith(
        "/pool/main/libf/libfoo-java/libfoo-java_2.0.tar.gz")
    with pytest.raises(RegistryError, match="expected one source tarball"):
        debian_archive("Checksums-Sha256:\n " + "c" * 64 + " 3 src_1.0-1.debian.tar.xz\n",
                       PackageSpec("debian", "src", "1.0-1", "go"), config)


def test_verify_rejects_a_changed_archive_and_a_wrong_pin():
    data = b"release"
    archive = Archive("u", "f.tar.gz", "sha256", hashlib.sha256(data).hexdigest())
    assert verify_archive(data, archive) == hashlib.sha256(data).hexdigest()
    with pytest.raises(RegistryError, match="does not match the registry"):
        verify_archive(data + b"!", archive)
    with pytest.raises(RegistryError, match="does not match the pinned"):
        verify_archive(data, archive, pinned_sha256="0" * 64)


def test_extraction_keeps_regular_files_inside_the_destination(tmp_path):
    data = tar_gz({"pkg-1/src/a.py": b"a", "pkg-1/../../escape.py": b"x", "/abs.py": b"y"},
                  links={"pkg-1/link.py": "/etc/passwd"})
    count = extract_archive(data, "pkg-1.tar.gz", tmp_path / "out")
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["out/src/a.py"] and count == 1  # the unsafe members are dropped, the top dir stripped
    assert not (tmp_path / "escape.py").exists()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("pkg-2/mod/b.py", b"b")
        zf.writestr("pkg-2/../evil.py", b"e")
    assert extract_archive(buffer.getvalue(), "pkg-2.zip", tmp_path / "zip") == 1
    assert (tmp_path / "zip" / "mod" / "b.py").read_bytes() == b"b"
    with pytest.raises(RegistryError, match="not a readable archive"):
        extract_archive(b"not an archive", "x.tar.gz", tmp_path / "bad")


def test_download_unpacks_verifies_and_resumes(tmp_path, registry):
    fake, config = registry
    specs = parse_package_list(SPECS + [{"registry": "pypi", "name": "flask-extras", "version": "1",
                                         "language": "python"}])
    report = download_packages(specs, tmp_path / "src", config, fetch=fake)
    assert report.downloaded == ["pypi__durations", "npm__acme-chunk", "debian__golang-mathx",
                                 "debian-binary__ruby-slugs"]
    assert report.denied == {"pypi__flask-extras": "name"} and not report.failed
    assert not any("flask" in url for url in fake.requests)
    assert (tmp_path / "src/pypi__durations/durations/core.py").read_bytes() == PY_SOURCE
    assert (tmp_path / "src/npm__acme-chunk/index.js").read_bytes() == JS_SOURCE
    assert (tmp_path / "src/debian__golang-mathx/clamp.go").read_bytes() == GO_SOURCE
    assert (tmp_path / "src/debian-binary__ruby-slugs/lib/ruby/vendor_ruby/slugs.rb").read_bytes() == RB_SOURCE
    manifest = json.loads((tmp_path / "src/manifest.json").read_text())
    assert [e["repo"] for e in manifest] == ["pypi/durations", "npm/acme-chunk", "debian/golang-mathx",
                                             "debian-binary/ruby-slugs"]
    assert all(len(e["sha256"]) == 64 for e in manifest)
    stats = json.loads((tmp_path / "src/stats.json").read_text())
    assert stats["files_by_language"] == {"python": 1, "javascript": 1, "go": 1, "ruby": 1}

    fake.requests.clear()
    again = download_packages(specs, tmp_path / "src", config, fetch=fake)
    assert fake.requests == [] and len(again.existing) == 4


def test_a_failed_package_leaves_the_others_and_no_partial_directory(tmp_path, registry):
    fake, config = registry
    pinned = [{**SPECS[0], "sha256": "0" * 64}, SPECS[1], {**SPECS[2], "version": "1:9.9-1"},
              {**SPECS[3], "version": "0.5-1"}]
    report = download_packages(parse_package_list(pinned), tmp_path / "src", config, fetch=fake)
    assert report.downloaded == ["npm__acme-chunk"]
    assert "pinned" in report.failed["pypi__durations"] and "404" in report.failed["debian__golang-mathx"]
    assert "the suite has 0.4-1" in report.failed["debian-binary__ruby-slugs"]
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == ["manifest.json", "npm__acme-chunk", "stats.json"]


def test_cli_downloads_then_mine_reads_the_sources(tmp_path, registry, monkeypatch):
    fake, _config = registry
    monkeypatch.setattr("cornstack_train.data.registry.http_fetch", lambda timeout_s: fake)
    listing = tmp_path / "packages.json"
    listing.write_text(json.dumps(SPECS))
    runner = CliRunner()
    result = runner.invoke(cornstack_main, ["download", str(listing), "-o", str(tmp_path / "src")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cornstack_main, ["mine", "--sources-dir", str(tmp_path / "src"), "--no-commits",
                                            "--near-dup-threshold", "1", "-o", str(tmp_path / "mined")])
    assert result.exit_code == 0, result.output
    from cornstack_train.data.records import load_stage

    rows = load_stage(tmp_path / "mined")
    assert sorted((r["repo"], r["language"]) for r in rows) == [
        ("debian-binary/ruby-slugs", "ruby"), ("debian/golang-mathx", "go"), ("npm/acme-chunk", "javascript"),
        ("pypi/durations", "python")]


def test_cli_reports_failures_with_a_nonzero_exit(tmp_path, registry, monkeypatch):
    fake, _config = registry
    monkeypatch.setattr("cornstack_train.data.registry.http_fetch", lambda timeout_s: fake)
    listing = tmp_path / "packages.json"
    listing.write_text(json.dumps([{**SPECS[0], "version": "9"}]))
    result = CliRunner().invoke(cornstack_main, ["download", str(listing), "-o", str(tmp_path / "src")])
    assert result.exit_code == 1 and "1 of 1 packages failed" in result.output
    listing.write_text("[1]")
    result = CliRunner().invoke(cornstack_main, ["download", str(listing), "-o", str(tmp_path / "src")])
    assert result.exit_code == 1 and "expected an object" in result.output


def test_a_deb_without_its_data_member_is_an_error(tmp_path):
    with pytest.raises(RegistryError, match="no ar header"):
        extract_archive(b"PK\x03\x04", "x_1_all.deb", tmp_path)
    with pytest.raises(RegistryError, match="has no data.tar"):
        extract_archive(ar_archive({"debian-binary": b"2.0\n", "control.tar.xz": b"abc"}), "x_1_all.deb", tmp_path)
    with pytest.raises(RegistryError, match="zstd"):
        extract_archive(ar_archive({"data.tar.zst": b"z"}), "x_1_all.deb", tmp_path)
    deb = ar_archive({"debian-binary": b"2.0\n", "data.tar.gz": tar_gz({"./usr/share/gocode/src/m/m.go": GO_SOURCE})})
    assert extract_archive(deb, "golang-m-dev_1_all.deb", tmp_path / "out") == 1
    assert (tmp_path / "out/share/gocode/src/m/m.go").read_bytes() == GO_SOURCE


# --------------------------------------------------------------------------- hardening (issue #26, case 9)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_a_decompression_bomb_is_refused_before_it_is_written(tmp_path):
    from cornstack_train.data.registry import UnpackLimits

    limits = UnpackLimits(total_bytes=2 * 2**20, member_bytes=2**20)
    bomb = _zip({"pkg-1/zeros.py": b"\0" * (4 * 2**20)})
    assert len(bomb) < 10_000
    with pytest.raises(RegistryError, match="decompression bomb"):
        extract_archive(bomb, "pkg-1.zip", tmp_path / "zip", limits)
    many = tar_gz({f"pkg-1/m{i}.py": b"x" * (2**19) for i in range(5)})  # each file fits, together they do not
    with pytest.raises(RegistryError, match="unpacks to more than"):
        extract_archive(many, "pkg-1.tar.gz", tmp_path / "tar", limits)
    assert not any(p.is_file() and p.stat().st_size > 2**20 for p in tmp_path.rglob("*"))
    assert extract_archive(tar_gz({"pkg-1/a.py": b"a" * 2**19}), "pkg-1.tar.gz", tmp_path / "ok", limits) == 1


def test_an_over_cap_or_unwritable_package_is_skipped_and_the_run_goes_on(tmp_path, registry):
    """An archive over the cap, or one whose files cannot be written (a name too long for the file
    system), used to abort the whole download; now each is recorded and the others are unpacked."""
    fake, _ = registry
    config = RegistryConfig(max_unpacked_bytes=2**20)
    fake.add_pypi(config, "bomb", "1.0", tar_gz({"bomb-1.0/zeros.py": b"\0" * (2 * 2**20)}))
    fake.add_pypi(config, "longname", "1.0", tar_gz({"longname-1.0/" + "a" * 300 + ".py": PY_SOURCE}))
    specs = parse_package_list([{"registry": "pypi", "name": "bomb", "version": "1.0", "language": "python"},
                                {"registry": "pypi", "name": "longname", "version": "1.0", "language": "python"},
                                SPECS[0]])
    report = download_packages(specs, tmp_path / "src", config, fetch=fake)
    assert report.downloaded == ["pypi__durations"]
    assert "decompression bomb" in report.failed["pypi__bomb"]
    assert "cannot unpack" in report.failed["pypi__longname"]
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == ["manifest.json", "pypi__durations", "stats.json"]
