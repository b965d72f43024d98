"""The licence gate: permissive at the pinned commit, by the list and by the file, or refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cornstack_train.data.licenses import (
    PERMISSIVE,
    RepoEntry,
    classify_license,
    gate,
    is_permissive,
    read_license,
)
from cornstack_train.data.records import load_stage, load_stats
from cornstack_train.data.stages import mine_command

from tests.conftest import commit_all, git, make_git_repo

MIT = """MIT License

Copyright (c) 2020 Someone

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, subject to the following conditions:
"""
BSD3 = """Copyright (c) 2020, Someone. All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
1. Redistributions of source code must retain the above copyright notice.
2. Redistributions in binary form must reproduce the above copyright notice.
3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from this software.
"""
BSD2 = BSD3.split("3. Neither")[0]
APACHE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/
"""
ISC = """Copyright (c) 2020 Someone

Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above
copyright notice and this permission notice appear in all copies.
"""
GPL3 = """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
 ... the GNU Affero General Public License ...
"""
LGPL21 = """                  GNU LESSER GENERAL PUBLIC LICENSE
                       Version 2.1, February 1999

 Copyright (C) 1991, 1999 Free Software Foundation, Inc.
 ... the ordinary GNU General Public License ...
"""
MPL2 = """Mozilla Public License Version 2.0
==================================
1.12. "Secondary License"
    means either the GNU General Public License, Version 2.0, the GNU Lesser
    General Public License, Version 2.1, the GNU Affero General Public
    License, Version 3.0, or any later versions of those licenses.
"""
TQDM = """`tqdm` is a product of collaborative work.
* files: *
  MPL-2.0 2015-2026 (c) Casper da Costa-Luis

Mozilla Public Licence (MPL) v. 2.0 - Exhibit A
-----------------------------------------------
This Source Code Form is subject to the terms of the
Mozilla Public License, v. 2.0.

MIT License (MIT)
-----------------
""" + MIT.split("\n", 2)[2]
CODE = {"pkg/util.py": 'def parse_range(text):\n    """Parse a range like 3-7 into a pair of integers."""\n'
                       '    start, _, end = text.partition("-")\n    return int(start), int(end)\n'}


@pytest.mark.parametrize("text,spdx", [
    (MIT, "MIT"), (BSD3, "BSD-3-Clause"), (BSD2, "BSD-2-Clause"), (APACHE, "Apache-2.0"), (ISC, "ISC"),
    (GPL3, "GPL-3.0"), (LGPL21, "LGPL-2.1"), (MPL2, "MPL-2.0"), (TQDM, "MIT AND MPL-2.0"),
    ("This project is shared with friends only.", None),
])
def test_licence_texts_are_classified_by_key_phrases(text, spdx):
    assert classify_license(text) == spdx
    assert is_permissive(spdx) == (spdx in PERMISSIVE)


def test_listed_expressions():
    assert is_permissive("MIT") and is_permissive("Apache-2.0 OR MIT")
    assert not is_permissive("MPL-2.0 AND MIT") and not is_permissive("LGPL-2.1") and not is_permissive(None)


def repo_with(root: Path, name: str, files: dict[str, str]) -> tuple[Path, str]:
    repo = make_git_repo(root / name, {**CODE, **files})
    return repo, git(repo, "rev-parse", "HEAD").strip()


def test_read_license_judges_the_pinned_commit_even_on_a_bare_clone(tmp_path):
    repo, pin = repo_with(tmp_path, "o__relicensed", {"LICENSE": MIT})
    (repo / "LICENSE").write_text(GPL3)
    later = commit_all(repo, "Relicense under the GPL")
    bare = tmp_path / "bare" / "o__relicensed"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    for where in (repo, bare):
        assert (read_license(where, pin).spdx, read_license(where, pin).file) == ("MIT", "LICENSE")
        assert read_license(where, later).spdx == "GPL-3.0"

    entry = RepoEntry("o/relicensed", pin, "python", "MIT", "LICENSE")
    result = gate([entry], tmp_path / "bare")
    assert [g.entry.repo for g in result.kept] == ["o/relicensed"] and not result.refused
    assert result.kept[0].verdict.commit == pin and result.kept[0].verdict.spdx == "MIT"
    moved = gate([RepoEntry("o/relicensed", later, "python", "MIT")], tmp_path / "bare")
    assert not moved.kept and "GPL-3.0, not permissive" in moved.refused[0].reason


def test_the_gate_refuses_non_permissive_and_unlicensed_repositories(tmp_path):
    repos = tmp_path / "repos"
    cases = {
        "o__mit": ({"LICENSE": MIT}, "MIT"),
        "o__bsd": ({"LICENSE.txt": BSD3}, "BSD-3-Clause"),
        "o__apache": ({"LICENSE": APACHE, "NOTICE": "Someone"}, "Apache-2.0"),
        "o__lgpl": ({"COPYING.LESSER": LGPL21}, "LGPL-2.1"),
        "o__gpl": ({"COPYING": GPL3}, "MIT"),  # listed as MIT by mistake: the file decides
        "o__mpl": ({"LICENCE": TQDM}, "MPL-2.0 AND MIT"),
        "o__none": ({"README.md": "# none\n"}, "MIT"),
        "o__listed-gpl": ({"LICENSE": MIT}, "GPL-3.0"),  # the list says otherwise: refused too
    }
    entries = []
    for name, (files, listed) in cases.items():
        _, pin = repo_with(repos, name, files)
        entries.append({"repo": name.replace("__", "/"), "head": pin, "language": "python", "license": listed})
    entries.append({"repo": "o/missing", "head": "0" * 40, "language": "python", "license": "MIT"})
    entries.append({"repo": "o/mit", "head": "1" * 40, "language": "python", "license": "MIT"})  # pin absent

    result = gate(entries, repos)
    assert sorted((g.entry.repo, g.verdict.spdx) for g in result.kept) == [
        ("o/apache", "Apache-2.0"), ("o/bsd", "BSD-3-Clause"), ("o/mit", "MIT")]
    reasons = {(v.repo, v.commit[:1]): v.reason for v in result.refused}
    assert len(reasons) == 7 and all(v.permissive is False for v in result.refused)
    by_repo = {repo: reason for (repo, _), reason in reasons.items()}
    assert "LGPL-2.1, not permissive" in by_repo["o/lgpl"]
    assert "GPL-3.0, not permissive" in by_repo["o/gpl"]
    assert "MIT AND MPL-2.0, not permissive" in by_repo["o/mpl"]
    assert by_repo["o/none"].startswith("no LICENSE/LICENCE/COPYING file at")
    assert "listed licence 'GPL-3.0' is not permissive" in by_repo["o/listed-gpl"]
    assert by_repo["o/missing"].startswith("not on disk")
    assert "cannot list 111111111111" in reasons[("o/mit", "1")]
    assert all("\n" not in r for r in reasons.values())


def test_mine_repos_list_mines_pins_through_the_gate_and_records_the_verdict(tmp_path):
    repos = tmp_path / "repos"
    ok, ok_pin = repo_with(repos, "acme__ok", {"LICENSE": MIT})
    # After the pin: a new documented function, which the pinned mining must not see.
    (ok / "pkg/later.py").write_text('def later_helper(x):\n    """Return x doubled, or zero for negatives."""\n'
                                     "    if x < 0:\n        return 0\n    doubled = x * 2\n    return doubled\n")
    commit_all(ok, "Add a later helper")
    _, lgpl_pin = repo_with(repos, "acme__lgpl", {"LICENSE": LGPL21})
    _, flask_pin = repo_with(repos, "pallets__flask", {"LICENSE.txt": BSD3})
    _, js_pin = repo_with(repos, "acme__js", {"LICENSE": MIT, "pkg/other.py": (
        'def clamp_value(x, low, high):\n    """Clamp x into the closed interval from low to high."""\n'
        "    if x < low:\n        return low\n    if x > high:\n        return high\n    return x\n")})
    listing = tmp_path / "repos.json"
    listing.write_text(json.dumps([
        {"repo": "acme/ok", "head": ok_pin, "language": "python", "license": "MIT", "license_file": "LICENSE"},
        {"repo": "acme/lgpl", "head": lgpl_pin, "language": "python", "license": "LGPL-2.1"},
        {"repo": "pallets/flask", "head": flask_pin, "language": "python", "license": "BSD-3-Clause"},
        {"repo": "acme/js", "head": js_pin, "language": "javascript", "license": "MIT"},
    ]))
    out = tmp_path / "mined"
    res = CliRunner().invoke(mine_command, ["--repos-list", str(listing), "--repos-dir", str(repos),
                                            "--language", "python", "--sources-dir", str(repos), "-o", str(out)])
    assert res.exit_code == 0, res.output
    ds = load_stage(out)
    assert set(ds["repo"]) == {"acme/ok", "acme/js"}  # acme/js from --sources-dir, which has no gate
    assert "parse_range" in ds["name"] and "later_helper" not in ds["name"]
    stats = load_stats(out)
    assert list(stats["licence_refused"]) == ["acme/lgpl"]
    assert "LGPL-2.1, not permissive" in stats["licence_refused"]["acme/lgpl"]
    assert stats["denied_repos"] == {"pallets/flask": "benchmark"}
    assert stats["licenses"] == {"acme/ok": "MIT"}
    assert stats["sources"]["acme/ok"]["license"] == {
        "spdx": "MIT", "file": "LICENSE", "commit": ok_pin, "reason": f"MIT in LICENSE at {ok_pin[:12]}"}

    none = CliRunner().invoke(mine_command, ["--repos-list", str(listing), "--repos-dir", str(repos),
                                             "--language", "go", "-o", str(tmp_path / "none")])
    assert none.exit_code == 1 and "no sources" in none.output and len(none.output.strip().splitlines()) == 1
