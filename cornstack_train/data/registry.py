"""Training code from package registries: PyPI sdists, npm tarballs, Debian source and binary packages.

Why a second way to get code when ``mine`` already reads git repositories:
weights that ship inside this package must not be built from code that was
fetched from GitHub for this project, while the package registries (PyPI, npm,
Debian) are the sources its authors may download from. A registry release is
a plain source tree, so it gives docstring pairs only: there is no git history
to mine commit messages from.

``download_packages`` turns a pinned list of packages (registry, name, version)
into one unpacked directory per package plus the ``manifest.json`` that
``mine --sources-dir`` reads. Every archive is checked against the digest its
registry publishes (and against a pinned ``sha256`` when the list gives one),
unpacked into a hidden temp directory and renamed into place, so a directory
that exists is a complete, verified release; re-running skips those. The
SWE-bench deny-list applies to package names before anything is downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import lzma
import re
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable, Iterable

from indexer.storage.atomic import atomic_replace_dir, atomic_write_json

from cornstack_train.data.denylist import denied_by_name
from cornstack_train.errors import TrainingError

log = logging.getLogger(__name__)

REGISTRIES = ("pypi", "npm", "debian", "debian-binary")
LANGUAGES = ("python", "java", "javascript", "typescript", "go", "php", "ruby")
MANIFEST = "manifest.json"
PEP691_ACCEPT = "application/vnd.pypi.simple.v1+json, application/json;q=0.9, */*;q=0.1"
STATS = "stats.json"


class RegistryError(TrainingError):
    """A package list entry is malformed, or a release cannot be found, downloaded or verified."""


@dataclass(frozen=True)
class PackageSpec:
    """One pinned release. ``sha256`` pins the archive itself when given (reproducible lists do)."""

    registry: str
    name: str
    version: str
    language: str
    sha256: str | None = None
    project: str | None = None  # upstream owner/name, informational and checked by the deny-list

    @property
    def directory(self) -> str:
        """Where the release is unpacked: ``registry__name``, npm scopes flattened (``@a/b`` -> ``a-b``)."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", self.name.lstrip("@")).strip("-")
        return f"{self.registry}__{safe}"

    @property
    def repo(self) -> str:
        """The ``owner/name`` that mined pairs carry, so held-out splits and stats name the package."""
        return self.directory.replace("__", "/", 1)


@dataclass(frozen=True)
class Archive:
    """A downloadable file and the digest its registry publishes for it."""

    url: str
    filename: str
    algorithm: str  # a hashlib name: sha256 or sha512
    digest: str  # hex


@dataclass(frozen=True)
class RegistryConfig:
    """Where each registry lives (mirrors work the same way) and the limits of one download."""

    pypi_url: str = "https://pypi.org/simple"  # a PEP 691 (JSON) simple index
    npm_url: str = "https://registry.npmjs.org"
    debian_url: str = "http://deb.debian.org/debian"
    debian_suite: str = "bookworm"  # where debian-binary packages are looked up
    max_archive_bytes: int = 200 * 2**20
    # what one archive may unpack to, in all and per file: a few KB of zip can expand to terabytes
    max_unpacked_bytes: int = 2 * 2**30
    max_member_bytes: int = 256 * 2**20
    timeout_s: float = 60.0
    overwrite: bool = False


@dataclass
class DownloadReport:
    """What a run did, per package; the CLI prints it and ``stats.json`` keeps it."""

    downloaded: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    denied: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    archive_bytes: int = 0
    files_by_language: dict[str, int] = field(default_factory=dict)
    # directories in the output that the list does not name: ``mine --sources-dir`` would read them too
    unlisted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ package lists


def parse_package_list(entries: Iterable[dict[str, Any]]) -> list[PackageSpec]:
    """Validate a package list (a JSON array of objects); every problem names its entry."""
    specs: list[PackageSpec] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries):
        where = f"package list entry {n}"
        if not isinstance(entry, dict):
            raise RegistryError(f"{where}: expected an object, got {type(entry).__name__}")
        missing = [k for k in ("registry", "name", "version", "language") if not entry.get(k)]
        if missing:
            raise RegistryError(f"{where}: missing {', '.join(missing)}")
        unknown = set(entry) - {"registry", "name", "version", "language", "sha256", "project"}
        if unknown:
            raise RegistryError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        if entry["registry"] not in REGISTRIES:
            raise RegistryError(f"{where}: registry must be one of {', '.join(REGISTRIES)}, got {entry['registry']!r}")
        if entry["language"] not in LANGUAGES:
            raise RegistryError(f"{where}: language must be one of {', '.join(LANGUAGES)}, got {entry['language']!r}")
        sha = entry.get("sha256")
        if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise RegistryError(f"{where}: sha256 must be 64 lower-case hex digits")
        if not all(isinstance(entry[k], str) for k in entry if entry[k] is not None):
            raise RegistryError(f"{where}: every value must be a string (write versions in quotes)")
        spec = PackageSpec(**{k: entry[k] for k in entry})
        if spec.directory in seen:
            raise RegistryError(f"{where}: {spec.registry} package {spec.name} is listed twice")
        seen.add(spec.directory)
        specs.append(spec)
    return specs


def load_package_list(path: str | Path) -> list[PackageSpec]:
    try:
        entries = json.loads(Path(path).read_text())
    except OSError as exc:
        raise RegistryError(f"cannot read package list {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise RegistryError(f"package list {path} is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise RegistryError(f"package list {path} must be a JSON array of packages")
    return parse_package_list(entries)


def denied_package(spec: PackageSpec) -> str | None:
    """The deny-list's reason for a package, checked on its name, its directory and its upstream project."""
    for name in (spec.repo, spec.name.split("/")[-1], spec.project or ""):
        if name:
            reason = denied_by_name(name)
            if reason:
                return reason
    return None


# ------------------------------------------------------------------ registry metadata (pure)


def normalize_pypi_name(name: str) -> str:
    """PEP 503 normalization: the simple index and sdist file names use it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pypi_metadata_url(spec: PackageSpec, config: RegistryConfig) -> str:
    return f"{config.pypi_url.rstrip('/')}/{normalize_pypi_name(spec.name)}/"


def pypi_archive(metadata: dict[str, Any], spec: PackageSpec) -> Archive:
    """The release's sdist, from a PEP 691 project page: wheels may omit sources and tests.

    An sdist is named ``{name}-{version}.tar.gz`` (or ``.zip``) with the name
    normalized by PEP 503 or, since PEP 625, with underscores; both are accepted.
    """
    wanted = normalize_pypi_name(spec.name)
    for file in metadata.get("files", []):
        match = re.fullmatch(r"(.+)-([^-]+)\.(tar\.gz|zip)", file.get("filename", ""))
        sha256 = (file.get("hashes") or {}).get("sha256")
        if match and normalize_pypi_name(match.group(1)) == wanted and match.group(2) == spec.version and sha256:
            return Archive(file["url"], file["filename"], "sha256", sha256)
    raise RegistryError(f"pypi {spec.name} {spec.version} has no sdist")


def npm_metadata_url(spec: PackageSpec, config: RegistryConfig) -> str:
    return f"{config.npm_url.rstrip('/')}/{spec.name.replace('/', '%2F')}/{spec.version}"


def npm_archive(metadata: dict[str, Any], spec: PackageSpec) -> Archive:
    dist = metadata.get("dist") or {}
    url = dist.get("tarball")
    integrity = dist.get("integrity", "")
    if not url:
        raise RegistryError(f"npm {spec.name} {spec.version} has no tarball")
    if integrity.startswith("sha512-"):
        digest = base64.b64decode(integrity[len("sha512-"):]).hex()
        return Archive(url, url.rsplit("/", 1)[-1], "sha512", digest)
    if dist.get("shasum"):  # very old releases publish only sha1
        return Archive(url, url.rsplit("/", 1)[-1], "sha1", dist["shasum"])
    raise RegistryError(f"npm {spec.name} {spec.version} publishes no digest for its tarball")


def debian_pool_dir(source: str, config: RegistryConfig) -> str:
    """Debian's pool layout: ``lib`` packages are filed under four letters, the rest under one."""
    prefix = source[:4] if source.startswith("lib") else source[0]
    return f"{config.debian_url.rstrip('/')}/pool/main/{prefix}/{source}"


def debian_dsc_url(spec: PackageSpec, config: RegistryConfig) -> str:
    version = spec.version.split(":", 1)[-1]  # the epoch is not part of file names
    return f"{debian_pool_dir(spec.name, config)}/{spec.name}_{version}.dsc"


def parse_dsc_checksums(text: str) -> list[tuple[str, int, str]]:
    """(sha256, size, filename) of every file a ``.dsc`` lists under Checksums-Sha256."""
    files: list[tuple[str, int, str]] = []
    in_section = False
    for line in text.splitlines():
        if line.startswith("Checksums-Sha256:"):
            in_section = True
            continue
        if in_section:
            if not line.startswith(" "):
                break
            parts = line.split()
            if len(parts) == 3:
                files.append((parts[0], int(parts[1]), parts[2]))
    return files


def debian_archive(dsc_text: str, spec: PackageSpec, config: RegistryConfig) -> Archive:
    """The upstream tarball (``.orig.tar.*``), or the only tarball of a native package.

    Debian's own ``.debian.tar.*`` (packaging scripts and patches) and the extra
    ``.orig-component.tar.*`` tarballs are left out: they are not the project's code.
    """
    files = parse_dsc_checksums(dsc_text)
    if not files:
        raise RegistryError(f"debian {spec.name} {spec.version}: the .dsc lists no Checksums-Sha256")
    orig = [f for f in files if re.search(r"\.orig\.tar\.(gz|xz|bz2)$", f[2])]
    native = [f for f in files if re.search(r"\.tar\.(gz|xz|bz2)$", f[2]) and ".debian.tar." not in f[2]
              and ".orig-" not in f[2]]
    chosen = orig or native
    if len(chosen) != 1:
        raise RegistryError(f"debian {spec.name} {spec.version}: expected one source tarball, found "
                            f"{', '.join(f[2] for f in chosen) or 'none'}")
    digest, _size, filename = chosen[0]
    return Archive(f"{debian_pool_dir(spec.name, config)}/{filename}", filename, "sha256", digest)


def debian_packages_url(config: RegistryConfig) -> str:
    """The suite's index of architecture-independent binary packages (Go -dev, Ruby and PHP libraries)."""
    return f"{config.debian_url.rstrip('/')}/dists/{config.debian_suite}/main/binary-all/Packages.xz"


def parse_packages_index(text: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(package, version) -> (pool file name, sha256) from a Debian ``Packages`` index."""
    index: dict[tuple[str, str], tuple[str, str]] = {}
    for stanza in text.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z0-9-]+): (.*)$", stanza, re.M))
        if {"Package", "Version", "Filename", "SHA256"} <= fields.keys():
            index[(fields["Package"], fields["Version"])] = (fields["Filename"], fields["SHA256"])
    return index


def debian_binary_archive(index: dict[tuple[str, str], tuple[str, str]], spec: PackageSpec,
                          config: RegistryConfig) -> Archive:
    """A binary package's ``.deb``, for libraries whose Debian package installs their source.

    Debian's Go ``-dev`` packages, and its Ruby and PHP libraries, install the
    project's source files, so the ``.deb`` is a source archive in all but
    name; it is the fallback where a mirror does not serve the source package.
    """
    found = index.get((spec.name, spec.version))
    if found is None:
        versions = sorted(v for (name, v) in index if name == spec.name)
        hint = f" (the suite has {', '.join(versions)})" if versions else " (not in the suite's binary-all index)"
        raise RegistryError(f"debian-binary {spec.name} {spec.version} not found{hint}")
    filename, sha256 = found
    return Archive(f"{config.debian_url.rstrip('/')}/{filename}", filename.rsplit("/", 1)[-1], "sha256", sha256)


# ------------------------------------------------------------------ archives (pure)


def verify_archive(data: bytes, archive: Archive, pinned_sha256: str | None = None) -> str:
    """The archive's sha256, after checking the registry's digest and the list's pin."""
    actual = hashlib.new(archive.algorithm, data).hexdigest()
    if actual != archive.digest.lower():
        raise RegistryError(f"{archive.filename}: {archive.algorithm} {actual} does not match the registry's "
                            f"{archive.digest}")
    sha256 = hashlib.sha256(data).hexdigest()
    if pinned_sha256 and sha256 != pinned_sha256:
        raise RegistryError(f"{archive.filename}: sha256 {sha256} does not match the pinned {pinned_sha256}")
    return sha256


def _safe_relative(name: str) -> PurePosixPath | None:
    """A member path that stays inside the destination, or None for one that would not."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path


def _strip_top(paths: list[PurePosixPath]) -> int:
    """1 when every member sits under one top directory (``attrs-23.2.0/``, ``package/``), else 0."""
    tops = {p.parts[0] for p in paths}
    return 1 if len(tops) == 1 and all(len(p.parts) > 1 for p in paths) else 0


@dataclass(frozen=True)
class UnpackLimits:
    """How much one archive may unpack to, in all and per file (a zip bomb is refused, not unpacked)."""

    total_bytes: int = RegistryConfig.max_unpacked_bytes
    member_bytes: int = RegistryConfig.max_member_bytes


class _Declared:
    """The sizes an archive's headers declare, checked member by member: a tar bomb is refused at
    its first oversized header, before its data is decompressed to find the next one."""

    def __init__(self, filename: str, limits: UnpackLimits) -> None:
        self.filename, self.limits, self.total = filename, limits, 0

    def add(self, size: int) -> None:
        self.total += size
        if size > self.limits.member_bytes or self.total > self.limits.total_bytes:
            raise _too_large(self.filename, self.limits)


Member = tuple[PurePosixPath, Callable[[], IO[bytes]]]


def extract_archive(data: bytes, filename: str, dest: Path, limits: UnpackLimits = UnpackLimits()) -> int:
    """Unpack regular files only (no links, devices or paths outside ``dest``); returns the file count.

    Links are skipped rather than followed: mining wants source files, and a
    link is the usual way an archive writes outside its directory. An archive
    that unpacks to more than ``limits`` allow is refused (RegistryError).
    """
    if filename.endswith(".deb"):
        inner_name, inner = deb_data_member(data, filename)
        return extract_archive(inner, inner_name, dest, limits)
    members: list[Member] = []
    declared = _Declared(filename, limits)
    if filename.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                path = _safe_relative(info.filename)
                mode = (info.external_attr >> 16) & 0o170000
                if path is None or info.is_dir() or mode not in (0, 0o100000):
                    continue
                declared.add(info.file_size)
                members.append((path, lambda info=info, zf=zf: zf.open(info)))
            return _write_members(members, dest, filename, limits)
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except tarfile.TarError as exc:
        raise RegistryError(f"{filename} is not a readable archive: {exc}") from None
    with tf:
        for info in tf:
            path = _safe_relative(info.name)
            if path is None or not info.isreg():
                continue
            declared.add(info.size)
            members.append((path, lambda info=info, tf=tf: tf.extractfile(info)))
        return _write_members(members, dest, filename, limits)


def deb_data_member(data: bytes, filename: str) -> tuple[str, bytes]:
    """The ``data.tar.*`` inside a ``.deb`` (an ``ar`` archive): the files the package installs."""
    if not data.startswith(b"!<arch>\n"):
        raise RegistryError(f"{filename} is not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(data):
        header = data[offset:offset + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise RegistryError(f"{filename}: malformed ar member header") from None
        body = data[offset + 60:offset + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise RegistryError(f"{filename}: zstd-compressed data.tar is not supported")
            return name, body
        offset += 60 + size + (size % 2)
    raise RegistryError(f"{filename} has no data.tar member")


def _write_members(members: list[Member], dest: Path, filename: str, limits: UnpackLimits) -> int:
    """Write the members, streamed (nothing is held in memory whole), counting the bytes that really
    come out against ``limits``: headers can lie."""
    strip = _strip_top([p for p, _ in members]) if members else 0
    budget = limits.total_bytes
    for path, open_member in members:
        target = dest.joinpath(*path.parts[strip:])
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_member() as source, open(target, "wb") as sink:
            budget -= _copy_capped(source, sink, min(limits.member_bytes, budget), filename, limits)
    return len(members)


def _copy_capped(source: IO[bytes], sink: IO[bytes], cap: int, filename: str, limits: UnpackLimits) -> int:
    written = 0
    while chunk := source.read(1 << 20):
        written += len(chunk)
        if written > cap:
            raise _too_large(filename, limits)
        sink.write(chunk)
    return written


def _too_large(filename: str, limits: UnpackLimits) -> RegistryError:
    return RegistryError(f"{filename} unpacks to more than {limits.total_bytes} bytes, or has a file over "
                         f"{limits.member_bytes} bytes: skipped (a decompression bomb?)")


# ------------------------------------------------------------------ network edge


Fetch = Callable[[str, int], bytes]


def http_fetch(timeout_s: float) -> Fetch:
    """GET a URL into memory, refusing bodies over ``limit`` bytes; errors become RegistryError."""

    def fetch(url: str, limit: int) -> bytes:
        # the Accept header asks PyPI's simple index for its JSON form (PEP 691); other URLs ignore it
        request = urllib.request.Request(url, headers={"User-Agent": "localizer-cornstack-train",
                                                       "Accept": PEP691_ACCEPT})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                chunks, size = [], 0
                while chunk := response.read(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        raise RegistryError(f"{url} is larger than {limit} bytes (--max-archive-mb)")
                    chunks.append(chunk)
                return b"".join(chunks)
        except urllib.error.HTTPError as exc:
            raise RegistryError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(f"{url}: {reason}") from None

    return fetch


def resolve_archive(spec: PackageSpec, config: RegistryConfig, fetch: Fetch,
                    cache: dict[str, Any] | None = None) -> Archive:
    """Ask the registry which file the release is and which digest it must have.

    ``cache`` keeps indexes shared by many packages (Debian's Packages file) for one run.
    """
    metadata_limit = 64 * 2**20
    cache = {} if cache is None else cache
    if spec.registry == "debian-binary":
        url = debian_packages_url(config)
        if url not in cache:
            try:
                text = lzma.decompress(fetch(url, metadata_limit)).decode("utf-8", "replace")
            except lzma.LZMAError:
                raise RegistryError(f"{url} is not an xz-compressed Packages index") from None
            cache[url] = parse_packages_index(text)
        return debian_binary_archive(cache[url], spec, config)
    if spec.registry == "pypi":
        return pypi_archive(_json(fetch(pypi_metadata_url(spec, config), metadata_limit), spec), spec)
    if spec.registry == "npm":
        return npm_archive(_json(fetch(npm_metadata_url(spec, config), metadata_limit), spec), spec)
    dsc = fetch(debian_dsc_url(spec, config), metadata_limit).decode("utf-8", "replace")
    return debian_archive(dsc, spec, config)


def _json(data: bytes, spec: PackageSpec) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise RegistryError(f"{spec.registry} {spec.name} {spec.version}: the registry did not answer JSON") from None
    if not isinstance(value, dict):
        raise RegistryError(f"{spec.registry} {spec.name} {spec.version}: unexpected registry answer")
    return value


# ------------------------------------------------------------------ the stage


def _count_languages(root: Path) -> dict[str, int]:
    from indexer.chunking.languages import language_for_path

    counts: dict[str, int] = {}
    for file in root.rglob("*"):
        if file.is_file():
            language = language_for_path(str(file))
            if language:
                counts[language] = counts.get(language, 0) + 1
    return counts


def download_packages(specs: list[PackageSpec], out: str | Path, config: RegistryConfig | None = None,
                      fetch: Fetch | None = None,
                      progress: Callable[[int, int, str], None] | None = None) -> DownloadReport:
    """Download, verify and unpack ``specs`` into ``out``; write its mining manifest and stats.

    One package failing (gone from the registry, digest mismatch) is recorded
    and the others go on; nothing half-written is left for ``mine`` to read.
    The manifest is rewritten after every package, so an interrupted run
    resumes where it stopped.
    """
    config = config or RegistryConfig()
    fetch = fetch or http_fetch(config.timeout_s)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = _read_manifest(out)
    report = DownloadReport()
    indexes: dict[str, Any] = {}
    for n, spec in enumerate(specs):
        if progress:
            progress(n, len(specs), spec.directory)
        reason = denied_package(spec)
        if reason:
            report.denied[spec.directory] = reason
            continue
        target = out / spec.directory
        entry = entries.get(spec.directory)
        if (target.is_dir() and entry and entry.get("version") == spec.version and not config.overwrite
                and spec.sha256 in (None, entry.get("sha256"))):
            report.existing.append(spec.directory)
            continue
        try:
            archive = resolve_archive(spec, config, fetch, indexes)
            data = fetch(archive.url, config.max_archive_bytes)
            sha256 = verify_archive(data, archive, spec.sha256)
            counter: dict[str, int] = {}

            limits = UnpackLimits(config.max_unpacked_bytes, config.max_member_bytes)

            def unpack(tmp: Path, data: bytes = data, archive: Archive = archive) -> None:
                counter["files"] = extract_archive(data, archive.filename, tmp, limits)

            atomic_replace_dir(target, unpack)
        except RegistryError as exc:
            report.failed[spec.directory] = str(exc)
            log.warning("%s", exc)
            continue
        except OSError as exc:  # this package's files cannot be written (a name too long, a full disk): the next may
            report.failed[spec.directory] = f"cannot unpack into {target}: {exc}"
            log.warning("%s: cannot unpack into %s: %s", spec.directory, target, exc)
            continue
        report.downloaded.append(spec.directory)
        report.archive_bytes += len(data)
        entries[spec.directory] = {
            "repo": spec.repo, "language": spec.language, "registry": spec.registry, "name": spec.name,
            "version": spec.version, "url": archive.url, "sha256": sha256, "bytes": len(data),
            "files": counter.get("files", 0), "project": spec.project,
        }
        atomic_write_json(out / MANIFEST, list(entries.values()))
    if progress:
        progress(len(specs), len(specs), "")
    # a failed update keeps the release already on disk, and its manifest entry says which one that is
    present = [entries[s.directory] for s in specs if s.directory in entries and (out / s.directory).is_dir()
               and s.directory not in report.denied]
    for entry in present:
        for language, count in _count_languages(out / entry["repo"].replace("/", "__", 1)).items():
            report.files_by_language[language] = report.files_by_language.get(language, 0) + count
    atomic_write_json(out / MANIFEST, present)
    report.unlisted = sorted(child.name for child in out.iterdir() if child.is_dir()
                             and not child.name.startswith(".") and child.name not in {s.directory for s in specs})
    stats = report.as_dict()
    stats.update({"packages": len(specs), "registries": {r: sum(s.registry == r for s in specs) for r in REGISTRIES},
                  "manifest_sha256": hashlib.sha256((out / MANIFEST).read_bytes()).hexdigest()})
    atomic_write_json(out / STATS, stats)
    return report


def _read_manifest(out: Path) -> dict[str, dict[str, Any]]:
    try:
        entries = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return {e["repo"].replace("/", "__", 1): e for e in entries if isinstance(e, dict) and "repo" in e}
