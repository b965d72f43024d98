#!/usr/bin/env bash
# Reproduce the shipped static embedder (localizer-static) from scratch: one command, CPU, minutes.
#
#   benchmarks/train_static.sh WORK [SWE_BENCH_REPOS_DIR]
#
# 1. download the package-registry releases of docs/registry-sources.json (PyPI, npm, Debian; each
#    pinned by version and sha256) and the held-out projects' releases of docs/registry-heldout.json;
# 2. mine docstring pairs (a release has no history, so no commit pairs), with the content-hash overlap
#    check against the benchmark when SWE_BENCH_REPOS_DIR (owner__name dirs) is given;
# 3. hard negatives mined with the packaged MiniLM (likely false negatives removed), on the
#    dual-consistency-filtered pairs when FILTER=1;
# 4. distil the packaged MiniLM into a static table (PCA 256, SIF weights from the mined corpus);
# 5. train it with the CoRNStack stages: softmax-sampled hard negatives under the τ curriculum, InfoNCE;
# 6. score it on the held-out projects.
#
# Every stage resumes (a finished output is kept), so rerunning after an interruption continues.
# The defaults are the ablation's best (docs/training.md, "Static embedder: ablation"). Then:
#   cornstack-train ship --static WORK/runs/static     # installs localizer/models/static (package data)
# SEED, EPOCHS, LR, BATCH and FILTER override the recipe; PYPI_URL, NPM_URL, DEBIAN_URL point at mirrors.
set -euo pipefail

work=${1:?usage: benchmarks/train_static.sh WORK [SWE_BENCH_REPOS_DIR]}
bench_repos=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
data=$work/data runs=$work/runs
mkdir -p "$data" "$runs"

mirrors=(${PYPI_URL:+--pypi-url "$PYPI_URL"} ${NPM_URL:+--npm-url "$NPM_URL"} ${DEBIAN_URL:+--debian-url "$DEBIAN_URL"})
# Exit status 1 means some packages failed (listed); the rest are kept, so stop and let a rerun retry.
cornstack-train download "$root/docs/registry-sources.json" -o "$work/registry-sources" "${mirrors[@]}"
cornstack-train download "$root/docs/registry-heldout.json" -o "$work/registry-heldout" "${mirrors[@]}"
for kind in sources heldout; do
    [[ -f $data/mined-registry-$kind/stats.json ]] && continue
    cornstack-train mine --sources-dir "$work/registry-$kind" ${bench_repos:+--benchmark-repos-dir "$bench_repos"} \
        --max-pairs-per-repo 1500 --no-commits -o "$data/mined-registry-$kind"
done

# bf16 only where the CPU has it natively (the negatives' encoder pass is the slow step: ~10 minutes).
if python -c 'import sys; from localizer.rerank.models import this_cpu_supports_bf16 as f; sys.exit(0 if f() else 1)'; then
    encode=(--backend torch-bf16)
else
    encode=(--backend torch)
fi
pairs=$data/mined-registry-sources
if [[ ${FILTER:-0} == 1 ]]; then
    [[ -f $data/filtered/stats.json ]] || cornstack-train filter "$pairs" -o "$data/filtered" "${encode[@]}"
    pairs=$data/filtered negatives=$data/negatives-filtered
else
    negatives=$data/negatives-all
fi
[[ -f $negatives/stats.json ]] || cornstack-train negatives "$pairs" -o "$negatives" "${encode[@]}"

distilled=$work/static-distilled
[[ -f $distilled/model.safetensors ]] || cornstack-train distill -o "$distilled" --corpus "$data/mined-registry-sources"

model=$runs/static
if [[ ! -f $model/train_stats.json ]]; then
    # One process: a static step is a table lookup, and data-parallel processes would only add overhead.
    cornstack-train train "$negatives" -o "$model" --model "$distilled" --negatives softmax --hard-negatives 3 \
        --batch-size ${BATCH:-256} --lr ${LR:-0.1} --epochs ${EPOCHS:-2} --no-cache --heldout-fraction 0 \
        --seed ${SEED:-0} --save-steps 100000 --threads 1 --overwrite
fi
heldout=()
for repo in $(python -c 'import json, sys; print(" ".join(e["repo"] for e in json.load(open(sys.argv[1]))))' \
              "$work/registry-heldout/manifest.json"); do
    heldout+=(--heldout-repo "$repo")
done
cornstack-train eval "$data/mined-registry-heldout" -o "$model/eval-registry" --model distilled="$distilled" \
    --model trained="$model" --max-queries 1000 "${heldout[@]}"
echo "model: $model/static; localize --model $model/static" >&2
echo "ship it: cornstack-train ship --static $model (writes $root/localizer/models/static)" >&2
