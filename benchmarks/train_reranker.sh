#!/usr/bin/env bash
# Reproduce the shipped listwise reranker adapter (localizer/models/reranker) from scratch.
#
#   BENCH_REPOS=DIR benchmarks/train_reranker.sh WORK
#
# 1. the Python repositories of docs/history-repos.json, each a bare clone in REPOS_DIR (default
#    WORK/train-repos; an existing owner__name is reused, missing ones are cloned from GitHub, which needs
#    the network); mining reads each at the pinned commit the list records, whatever HEAD is;
# 2. `mine` (licence gate, deny-list, and the content-overlap check against BENCH_REPOS, the SWE-bench
#    repositories as owner__name dirs: required, since weights that ship must pass it) -> `filter`
#    (top 10) -> `negatives` -> `teacher-rank` (gold first, then embedder order; TEACHER_WINDOWS of them,
#    default 2400; the held-out repositories left out); `repo-windows` (commit messages ranked by
#    localize's own pipeline over the snapshot before them, every window the product's reranker would
#    see that holds a changed function, gold first; the repositories after the learned ranker's 97, whose
#    lists of its own training repositories would be too easy) -> `train-reranker` on both (LoRA, bf16,
#    STEPS optimizer steps, default 2000);
# 3. `repo-windows --heldout-lists` then `eval-reranker` on the held-out repositories: each list is a
#    commit message's top 20 functions as localize's pipeline ranks them over the snapshot before it,
#    reordered by the reranker as localize does, in that order and shuffled (the check that the adapter
#    reads the code rather than the position); MRR@10 against the pipeline and the base model;
# 4. `ship-reranker`: the adapter, checked, and its model card installed into the package (TARGET
#    elsewhere). Its presence there turns reranking on by default.
#
# Every stage resumes: finished stages are skipped, training continues from its last checkpoint
# (every 25 steps), and an interrupted evaluation keeps the ranks it stored. Rerunning with a larger
# STEPS trains on from where the last run stopped and evaluates the longer run afresh.
# LANGUAGE (python), HELDOUT (space-separated owner/name; default: the 10% hash split every stage
# shares), EVAL_QUERIES (200) and BACKEND (torch-bf16, the encoder runtime of filter and negatives)
# override the recipe.
set -euo pipefail

work=${1:?usage: BENCH_REPOS=DIR benchmarks/train_reranker.sh WORK}
bench_repos=${BENCH_REPOS:?set BENCH_REPOS to the SWE-bench repositories (owner__name dirs): the overlap check}
root=$(cd "$(dirname "$0")/.." && pwd)
repos=${REPOS_DIR:-$work/train-repos}
language=${LANGUAGE:-python}
steps=${STEPS:-2000}
backend=${BACKEND:-torch-bf16}
mkdir -p "$repos"

python "$root/benchmarks/clone_listed.py" "$repos" "$language" "$root/docs/history-repos.json" "$root/docs/train-repos.json"

# teacher-rank leaves out exactly the repositories eval-reranker scores on: both get the same split.
heldout=()
for repo in ${HELDOUT:-}; do
    heldout+=(--heldout-repo "$repo")
done

# mine, filter, negatives and teacher-rank each skip a finished output.
cornstack-train mine --repos-list "$root/docs/history-repos.json" --repos-dir "$repos" --language "$language" \
    --benchmark-repos-dir "$bench_repos" --max-commits 1000 --max-commit-pairs 300 -o "$work/mined"
cornstack-train filter "$work/mined" -o "$work/filtered" --top-k 10 --backend "$backend"
# the same backend as filter: negatives then reuse its cached vectors (WORK/.vector-cache)
cornstack-train negatives "$work/filtered" -o "$work/negatives" --backend "$backend"
cornstack-train teacher-rank "$work/negatives" -o "$work/teacher" --mode gold-embedder --depth 10 \
    --max-instances "${TEACHER_WINDOWS:-2400}" ${heldout[@]+"${heldout[@]}"}
cornstack-train repo-windows --repos-list "$root/docs/history-repos.json" --repos-list "$root/docs/train-repos.json" \
    --repos-dir "$repos" --language "$language" --skip-repos 97 --index-dir "$work/index" -o "$work/repo-windows" \
    --benchmark-repos-dir "$bench_repos" ${heldout[@]+"${heldout[@]}"}
# The held-out repositories' own lists, as localize ranks them: what eval-reranker measures on.
cornstack-train repo-windows --repos-list "$root/docs/history-repos.json" --repos-list "$root/docs/train-repos.json" \
    --repos-dir "$repos" --language "$language" --skip-repos 97 --index-dir "$work/index" --heldout-lists \
    --offset 150 --offset 600 -o "$work/heldout-lists" ${heldout[@]+"${heldout[@]}"}

# A run that finished these steps is kept; otherwise train-reranker resumes from its last checkpoint.
if ! python - "$work/train" "$steps" <<'PY'
import json, sys
from pathlib import Path

run, steps = Path(sys.argv[1]), int(sys.argv[2])
try:
    stats = json.loads((run / "train_stats.json").read_text())
except (OSError, ValueError):
    sys.exit(1)
done = stats.get("steps") == steps and stats.get("stopped") == "done"
sys.exit(0 if done and (run / "adapter" / "adapter_model.safetensors").is_file() else 1)
PY
then
    cornstack-train train-reranker "$work/teacher" --extra-stage "$work/repo-windows" -o "$work/train" --bf16 \
        --grad-accum 2 --lr 2e-4 --warmup-steps 20 --max-steps "$steps" --save-steps 25
else
    echo "train-reranker: $work/train already ran $steps steps" >&2
fi

# One evaluation directory per step count: stored ranks are reused by system name, so a longer run
# must not inherit a shorter one's. A finished evaluation (metrics.json) is kept.
evaluate() {
    local out=$1
    shift
    if [[ -f $out/metrics.json ]]; then
        echo "eval-reranker: $out is already complete; skipping" >&2
        return
    fi
    cornstack-train eval-reranker "$work/heldout-lists" -o "$out" --depth 20 --max-queries "${EVAL_QUERIES:-200}" \
        --adapter "trained=$work/train/adapter" ${heldout[@]+"${heldout[@]}"} "$@"
}
evaluate "$work/eval-$steps" --fusion rrf
evaluate "$work/eval-$steps-shuffled" --shuffle

# `cornstack-train ship-reranker` once cornstack_train/cli.py registers it; the module runs it either way.
cornstack-train ship-reranker "$work/train" --eval "$work/eval-$steps" \
    --eval "$work/eval-$steps-shuffled" --mined "$work/mined" ${TARGET:+--target "$TARGET"}
echo "adapter: $work/train/adapter, installed in ${TARGET:-$root/localizer/models/reranker}" >&2
