#!/usr/bin/env bash
# Reproduce the CoRNStack-trained embedder from scratch, with the flags behind benchmarks/RESULTS.md.
#
#   benchmarks/train_embedder.sh WORK [SWE_BENCH_REPOS_DIR]
#
# 1. the 48 training repositories of docs/train-repos.json, each as a bare clone pinned to its
#    recorded commit (an existing WORK/train-repos/owner__name is reused; missing ones are cloned
#    from GitHub, which needs the network);
# 2. mine -> negatives -> train (two data-parallel CPU processes) -> held-out eval; the dual consistency
#    filter runs only with FILTER=1 (it measured no better at this scale; see below).
#
# SWE_BENCH_REPOS_DIR (owner__name dirs) turns on the content-hash overlap check against the
# benchmark. Every stage resumes, so rerunning after an interruption continues where it stopped.
# PRESET=gpu trains with `--preset gpu` on every visible GPU (NPROC of them) instead. MANIFEST and
# MAX_STEPS and HELDOUT (space-separated owner/name) override the repository list, the step count and
# the held-out repositories (the tests use them).
#
# By default hard negatives are mined for every mined pair and training runs 600 steps: measured best
# (held-out MRR@10 +5.1 over the base, benchmarks/RESULTS.md, "600 steps"). FILTER=1 trains on the
# dual-consistency-filtered pairs instead (the paper's step; +4.0 at 360 steps, no better at this scale).
#
# SOURCES=registry trains on package-registry releases instead of git repositories: the releases of
# docs/registry-sources.json from PyPI, npm and Debian (`cornstack-train download`), docstring pairs
# only (a release has no history to mine commits from). This is the recipe for weights that ship
# inside the package, which must not be built from code fetched from GitHub. Its held-out eval mines
# docs/registry-heldout.json (the held-out projects' releases); when WORK/data/mined from a git run is
# there, the model is also scored on that held-out sample, the one the git-trained figures use.
# REGISTRY_LIST and REGISTRY_HELDOUT override the two lists; PYPI_URL, NPM_URL and DEBIAN_URL point
# at mirrors.
set -euo pipefail

work=${1:?usage: benchmarks/train_embedder.sh WORK [SWE_BENCH_REPOS_DIR]}
bench_repos=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
manifest=${MANIFEST:-$root/docs/train-repos.json}
repos=$work/train-repos data=$work/data runs=$work/runs
mkdir -p "$repos" "$data" "$runs"
sources=${SOURCES:-git}
[[ $sources == git || $sources == registry ]] || { echo "SOURCES must be git or registry, not $sources" >&2; exit 2; }

[[ $sources == git ]] && python - "$manifest" "$repos" <<'PY'
import json, subprocess, sys
from pathlib import Path

manifest, repos = Path(sys.argv[1]), Path(sys.argv[2])
for entry in json.loads(manifest.read_text()):
    target = repos / entry["repo"].replace("/", "__")
    if not target.exists():
        print(f"cloning {entry['repo']}", file=sys.stderr)
        subprocess.run(["git", "clone", "--quiet", "--bare", f"https://github.com/{entry['repo']}.git", str(target)],
                       check=True)
    head = subprocess.run(["git", "-C", str(target), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    if head != entry["head"]:
        # Pin the commit the recorded run mined; history after it would change the pairs.
        subprocess.run(["git", "-C", str(target), "update-ref", "--no-deref", "HEAD", entry["head"]], check=True)
(repos / "manifest.json").write_text(manifest.read_text())
PY

# One held-out repository per language family; eval scores on them, train never sees them.
heldout=()
for repo in ${HELDOUT:-pallets/click google/gson axios/axios colinhacks/zod spf13/cobra seldaek/monolog sinatra/sinatra}; do
    heldout+=(--heldout-repo "$repo")
done
if [[ ${PRESET:-cpu} == gpu ]]; then
    encode=(--device cuda --batch-size 256)
    nproc=${NPROC:-$(python -c 'import torch; print(max(1, torch.cuda.device_count()))')}
    train=(--preset gpu --max-seq-length 256 --max-steps ${MAX_STEPS:-2000} --save-steps 200)
else
    # bf16 autocast only where the CPU has native bf16 (2.6x faster steps there, slower elsewhere).
    if python -c 'import sys; from localizer.rerank.models import this_cpu_supports_bf16 as f; sys.exit(0 if f() else 1)'; then
        encode=(--backend torch-bf16) bf16=(--bf16)
    else
        encode=() bf16=()
    fi
    nproc=${NPROC:-2}
    # 2 processes x 16 = a global batch of 32, negatives gathered across them.
    train=(--batch-size $((32 / nproc)) --hard-negatives 3 --no-cache --max-seq-length 128 --threads 1
           --max-steps ${MAX_STEPS:-600} --lr 5e-5 --save-steps 25 "${bf16[@]}")
fi

# train_model NEGATIVES MODEL [flags]: train, resuming from checkpoints; a finished model is kept.
train_model() {
    local negatives=$1 model=$2 resume=()
    shift 2
    if [[ -f $model/train_stats.json && -d $model/model ]]; then
        echo "train: $model already trained" >&2
        return
    fi
    [[ -d $model/checkpoints ]] && resume=(--resume)
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node "$nproc" -m cornstack_train.embedder.stages train \
        "$negatives" -o "$model" "${train[@]}" "$@" "${resume[@]}"
}

if [[ $sources == registry ]]; then
    # Exit status 1 means some packages failed (listed); the rest are kept, so stop and let a rerun retry.
    mirrors=(${PYPI_URL:+--pypi-url "$PYPI_URL"} ${NPM_URL:+--npm-url "$NPM_URL"} ${DEBIAN_URL:+--debian-url "$DEBIAN_URL"})
    cornstack-train download "${REGISTRY_LIST:-$root/docs/registry-sources.json}" -o "$work/registry-sources" \
        "${mirrors[@]}"
    cornstack-train download "${REGISTRY_HELDOUT:-$root/docs/registry-heldout.json}" -o "$work/registry-heldout" \
        "${mirrors[@]}"
    for kind in sources heldout; do
        cornstack-train mine --sources-dir "$work/registry-$kind" ${bench_repos:+--benchmark-repos-dir "$bench_repos"} \
            --max-pairs-per-repo 1500 --no-commits -o "$data/mined-registry-$kind"
    done
    registry_heldout=()
    for repo in $(python -c 'import json, sys; print(" ".join(e["repo"] for e in json.load(open(sys.argv[1]))))' \
                  "$work/registry-heldout/manifest.json"); do
        registry_heldout+=(--heldout-repo "$repo")
    done
    negatives=$data/negatives-registry model=$runs/embedder-registry
    cornstack-train negatives "$data/mined-registry-sources" -o "$negatives" "${encode[@]}"
    # The held-out projects are a list of their own, so training keeps every package of its list.
    train_model "$negatives" "$model" --heldout-fraction 0
    cornstack-train eval "$data/mined-registry-heldout" -o "$model/eval-registry" --model base \
        --model trained="$model" --max-queries 1000 "${registry_heldout[@]}"
    if [[ -d $data/mined/data ]]; then
        cornstack-train eval "$data/mined" -o "$model/eval" --model base --model trained="$model" \
            --max-queries 1000 "${heldout[@]}"
    fi
    echo "model: $model/model (delta: $model/delta); localize --model $model/model" >&2
    # Only registry-trained weights may ship; `ship` writes package data of this checkout.
    echo "ship it: cornstack-train ship $model (writes $root/localizer/models/cornstack; --into DIR elsewhere)" >&2
    exit 0
fi

cornstack-train mine --sources-dir "$repos" ${bench_repos:+--benchmark-repos-dir "$bench_repos"} \
    --max-pairs-per-repo 1500 --max-commits 1000 -o "$data/mined"
# Each recipe has its own negatives and run directories: every stage skips a finished output, so a
# WORK made by the other recipe (or by this script before 2026-12-06, which filtered) must not be
# picked up as this one's. FILTER=1 keeps the old names, so such a WORK resumes as it was.
if [[ ${FILTER:-0} == 1 ]]; then
    negatives=$data/negatives model=$runs/embedder
    cornstack-train filter "$data/mined" -o "$data/filtered" "${encode[@]}"
    cornstack-train negatives "$data/filtered" -o "$negatives" "${encode[@]}"
else
    negatives=$data/negatives-all model=$runs/embedder-all
    cornstack-train negatives "$data/mined" -o "$negatives" "${encode[@]}"
fi
train_model "$negatives" "$model" "${heldout[@]}"
cornstack-train eval "$data/mined" -o "$model/eval" --model base --model trained="$model" \
    --max-queries 1000 "${heldout[@]}"
echo "model: $model/model (delta: $model/delta); localize --model $model/model" >&2
