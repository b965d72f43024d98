#!/usr/bin/env bash
# Reproduce the shipped learned ranker (localizer/models/ranker) from scratch.
#
#   benchmarks/train_ranker.sh WORK
#
# 1. the Python repositories of docs/history-repos.json and docs/train-repos.json, each a bare clone
#    (an existing WORK/train-repos/owner__name is reused; missing ones are cloned from GitHub, which
#    needs the network); mining reads each at the pinned commit its list records, whatever HEAD is;
# 2. `cornstack-train ranker-data`: for the first MAX_REPOS usable repositories in name order
#    (permissive licence, not deny-listed), commit-message queries after three past snapshots, featurized
#    by the pipeline localize runs;
# 3. `cornstack-train ranker-fit --install`: LambdaRank, 20% of the repositories held out for the report,
#    the model and its card installed into the package.
#
# Every stage resumes: finished repositories are skipped. MAX_REPOS (default: the count of the shipped
# run, see localizer/models/ranker/README.md) and LANGUAGE (default python) override the corpus.
set -euo pipefail

work=${1:?usage: benchmarks/train_ranker.sh WORK}
root=$(cd "$(dirname "$0")/.." && pwd)
language=${LANGUAGE:-python}
max_repos=${MAX_REPOS:-97}
repos=$work/train-repos
mkdir -p "$repos"

python "$root/benchmarks/clone_listed.py" "$repos" "$language" "$root/docs/history-repos.json" "$root/docs/train-repos.json"

cornstack-train ranker-data --repos-list "$root/docs/history-repos.json" --repos-list "$root/docs/train-repos.json" \
    --repos-dir "$repos" --language "$language" --max-repos "$max_repos" --out "$work/ranker-data"
cornstack-train ranker-fit "$work/ranker-data" --out "$work/ranker" --install
