"""``cornstack-train``: one command per stage of the CoRNStack recipe.

The stages hand each other ``datasets`` directories (records.py), so they can
be run, resumed and inspected one at a time:

    cornstack-train download docs/registry-sources.json --out sources/   # optional: registry code
    cornstack-train mine SOURCES... --out data/mined
    cornstack-train mine --repos-list docs/history-repos.json --repos-dir train-repos --out data/mined
                                              # pinned, licence-gated (docs/training-data.md)
    cornstack-train filter data/mined --out data/filtered
    cornstack-train negatives data/filtered --out data/negatives
    cornstack-train train data/negatives --out models/embedder
    cornstack-train eval data/negatives -o eval/ --model base --model trained=models/embedder
    cornstack-train ship models/embedder      # install its delta as localize's `localizer-cornstack`
                                              # (writes localizer/models/cornstack; --into DIR elsewhere)
    cornstack-train ablate data/negatives data/mined -o ablation/
    cornstack-train teacher-rank data/negatives --out data/rerank
    cornstack-train repo-windows --repos-list docs/history-repos.json --repos-dir train-repos --out data/repo-windows
    cornstack-train train-reranker data/rerank --out models/reranker
    cornstack-train eval-reranker data/negatives --out eval/rerank --adapter trained=models/reranker/adapter
    cornstack-train ranker-data --repos-dir train-repos --out data/ranker   # the learned ranker's rows
    cornstack-train ranker-fit data/ranker --out models/ranker [--install]

Every failure a user can act on is an ``indexer.errors.LocalizerError``; the group prints it as
one ``cornstack-train: error:`` line and exits 1 (``cornstack_train.errors``).
"""

from __future__ import annotations

import logging
import sys

import click

from cornstack_train.data.stages import filter_command, mine_command, negatives_command
from cornstack_train.data.stages_sources import download_command
from cornstack_train.embedder.stages import eval_command, harness_command, ship_command, train_command
from cornstack_train.embedder.stages_ablation import ablate_command
from cornstack_train.embedder.stages_static import distill_command
from cornstack_train.errors import StageGroup
from cornstack_train.ranker.stages import ranker_data_command, ranker_fit_command
from cornstack_train.reranker.stages import (eval_reranker_command, repo_windows_command, ship_reranker_command,
                                            teacher_rank_command, train_reranker_command)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=StageGroup, context_settings=CONTEXT)
@click.option("--verbose", "-v", count=True, help="More log output on stderr.")
@click.version_option(package_name="cornstack-localizer", prog_name="cornstack-train")
def main(verbose: int) -> None:
    """Mine, filter and train the embedder (and reranker) that ``localize`` uses.

    See docs/training.md for the whole pipeline and the command that
    reproduces the shipped model.
    """
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
                        stream=sys.stderr, format="cornstack-train: %(message)s")


for _command in (download_command, mine_command, filter_command, negatives_command, distill_command, train_command, eval_command,
                 harness_command, ship_command, ablate_command,
                 teacher_rank_command, repo_windows_command, train_reranker_command, eval_reranker_command,
                 ship_reranker_command, ranker_data_command, ranker_fit_command):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
