"""Bare-clone the repositories of docs/*-repos.json that are missing, for the training scripts.

    python benchmarks/clone_listed.py REPOS_DIR LANGUAGE LIST [LIST...]

An existing ``REPOS_DIR/owner__name`` is reused; a missing one is cloned from GitHub (which needs the
network). The clones are read at the pinned commit each list records, whatever their HEAD is, so a
fresh clone needs nothing else. Used by benchmarks/train_ranker.sh and benchmarks/train_reranker.sh.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        sys.exit(__doc__)
    repos, language, *lists = argv
    for listing in lists:
        for entry in json.loads(Path(listing).read_text()):
            target = Path(repos) / entry["repo"].replace("/", "__")
            if entry.get("language") == language and not target.exists():
                print(f"cloning {entry['repo']}", file=sys.stderr)
                subprocess.run(["git", "clone", "--quiet", "--bare", f"https://github.com/{entry['repo']}.git",
                                str(target)], check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
