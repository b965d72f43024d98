"""InfoNCE whose negatives never include one of the query's own answers, across processes too.

The sampler (``sampler.draw_batch_negatives``) keeps every hard negative away
from the positives of its own batch, and the batch sampler keeps duplicate
texts out of a batch. Under DDP both hold per process only: with
``gather_across_devices`` each query is also scored against every other
process's positives and hard negatives, and one of those can be its own
positive text (drawn as a hard negative for another query, or the positive of
a row with the same code), or the positive of another row asked by the same
query (a commit message is mined once per function it changed). InfoNCE would
then push the query away from a right answer: a false negative.

``AnswerMaskedMNRL`` is sentence-transformers' ``MultipleNegativesRankingLoss``
with those logits set to -inf before the softmax. Candidates are compared by
their model input: every column's rows are keyed by a hash of their token ids
(see ``token_keys``), the keys are gathered with the embeddings, and a
candidate is masked for query i when its key is the positive of a row whose
query key equals query i's (row i included), other than row i's own positive
column. Equal texts tokenize alike, and two texts that tokenize alike have
the same embedding, so for the model they are the same candidate either way.
The extra terms (``directions``) are masked in the same spirit: ``doc_to_doc``
like ``query_to_doc``, and in ``query_to_query`` / ``doc_to_query`` the query
of a row that shares row i's query or its positive. Without duplicates the
loss is exactly the parent's.

Only the plain loss is covered: ``CachedMultipleNegativesRankingLoss`` computes
its logits in mini-batches inside gradient caching and is used as it is.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import torch
from torch import Tensor
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.util import all_gather, all_gather_with_grad, get_rank

def _digest(data: bytes) -> int:
    """Stable across processes (unlike ``hash``), so every DDP rank keys a text alike."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


def token_keys(features: dict[str, Any]) -> Tensor | None:
    """One 64-bit key per row of a tokenized column: rows with the same tokens get the same key.

    Padding is left out (each process pads to its own longest row). Handles the padded
    (``input_ids`` + ``attention_mask``) and the bag (``input_ids`` + ``offsets``, static
    embeddings) layouts; anything else gives None, and the loss then masks nothing.
    """
    ids = features.get("input_ids")
    if not isinstance(ids, Tensor):
        return None
    flat = ids.detach().cpu()
    if "offsets" in features and flat.dim() == 1:
        bounds = features["offsets"].detach().cpu().tolist() + [flat.numel()]
        rows = [flat[a:b] for a, b in zip(bounds, bounds[1:])]
    elif flat.dim() == 2:
        mask = features.get("attention_mask")
        keep = torch.ones_like(flat, dtype=torch.bool) if mask is None else mask.detach().cpu().bool()
        rows = [row[m] for row, m in zip(flat, keep)]
    else:
        return None
    keys = [_digest(row.to(torch.int64).numpy().tobytes()) for row in rows]
    return torch.tensor(keys, dtype=torch.int64, device=ids.device)


def answer_masks(query_keys: Tensor, doc_keys: list[Tensor], local: Tensor) -> dict[str, Tensor]:
    """Per direction, the (local rows, candidates) logits that would treat a right answer as a negative.

    ``query_keys`` and ``doc_keys[j]`` (j = 0 the positives, then each negative column) hold one key
    per gathered row; ``local`` are this process's rows among them. A document is a right answer for
    local row i when it is the positive of a row asked by the same query (row i included); a query
    is one when its row shares row i's query or positive. Row i's own pair is never masked.
    """
    positives = doc_keys[0]
    all_docs = torch.cat(doc_keys)
    rows = torch.arange(local.numel(), device=local.device)
    same_query = query_keys[local][:, None] == query_keys[None, :]
    # answers[i, c]: some row r with row i's query has candidate c's text as its positive
    is_positive_of = (positives[:, None] == all_docs[None, :]).float()
    answers = (same_query.float() @ is_positive_of) > 0
    answers[rows, local] = False
    same_pair = same_query | (positives[local][:, None] == positives[None, :])
    same_pair[rows, local] = False
    return {"query_to_doc": answers, "doc_to_doc": answers, "query_to_query": same_pair, "doc_to_query": same_pair}


class AnswerMaskedMNRL(MultipleNegativesRankingLoss):
    """``MultipleNegativesRankingLoss`` that never counts a copy of a query's answer as its negative.

    Takes the parent's arguments (``scale``, ``gather_across_devices``, ``directions``,
    ``partition_mode``, ``hardness_mode``, ``hardness_strength``); the logits are the parent's,
    masked as ``answer_masks`` says before the softmax.
    """

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        features = list(sentence_features)
        keys = [token_keys(f) for f in features]  # before the forward pass, which may merge the columns
        embeddings = embed_columns(self.model, features)
        return self.compute_loss_from_embeddings(embeddings, labels, None if any(k is None for k in keys) else keys)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None,
                                     keys: list[Tensor] | None = None) -> Tensor:
        """The parent's loss (sentence-transformers 6.3), with ``keys`` (one per column) masking answers."""
        if len(embeddings) < 2:
            raise ValueError(f"Expected at least 2 embeddings, got {len(embeddings)}")
        if keys is not None and len(keys) != len(embeddings):
            raise ValueError(f"Expected one key tensor per column ({len(embeddings)}), got {len(keys)}")
        queries, docs = embeddings[0], embeddings[1:]
        batch_size = queries.size(0)
        offset = 0
        if self.gather_across_devices:
            queries = all_gather_with_grad(queries)
            docs = [all_gather_with_grad(doc) for doc in docs]
            keys = None if keys is None else [all_gather(k) for k in keys]
            offset = get_rank() * batch_size
        local = torch.arange(offset, offset + batch_size, device=queries.device)
        logits = self._logits(queries, docs, local)
        if keys is not None:
            masks = answer_masks(keys[0], keys[1:], local.to(keys[0].device))
            logits = {name: m.masked_fill(masks[name].to(m.device), -torch.inf) for name, m in logits.items()}
        return self._reduce(logits, local)

    def _logits(self, queries: Tensor, docs: list[Tensor], local: Tensor) -> dict[str, Tensor]:
        """Scaled logits per direction, hardness penalties added: the parent's computation."""
        world_batch_size = queries.size(0)
        docs_all = torch.cat(docs, dim=0)
        rows = torch.arange(local.numel(), device=queries.device)
        local_queries, local_docs = queries[local], docs[0][local]
        sims = {"query_to_doc": self.similarity_fct(local_queries, docs_all)}
        if "query_to_query" in self.directions:
            sims["query_to_query"] = self.similarity_fct(local_queries, queries)
            sims["query_to_query"][rows, local] = -torch.inf
        if "doc_to_query" in self.directions:
            sims["doc_to_query"] = self.similarity_fct(queries, local_docs).T
        if "doc_to_doc" in self.directions:
            sims["doc_to_doc"] = self.similarity_fct(docs_all, local_docs).T
            own = torch.eye(world_batch_size, device=queries.device)[local].repeat(1, len(docs)).bool()
            sims["doc_to_doc"].masked_fill_(own, -torch.inf)
        penalty = self._hardness_penalty(sims["query_to_doc"], local, world_batch_size, len(docs))
        logits = {name: sim * self.scale for name, sim in sims.items()}
        if penalty is not None:
            logits["query_to_doc"] = logits["query_to_doc"] + penalty
        return logits

    def _hardness_penalty(self, query_to_doc: Tensor, local: Tensor, world_batch_size: int,
                          columns: int) -> Tensor | None:
        """α · stop_grad(cos) on the negatives ``hardness_mode`` names (Lan et al. 2025, Eq. 5)."""
        if self.hardness_mode is None or self.hardness_strength <= 0.0:
            return None
        penalty = self.hardness_strength * query_to_doc.detach()
        own = torch.eye(world_batch_size, device=query_to_doc.device, dtype=torch.bool)[local].repeat(1, columns)
        if self.hardness_mode == "hard_negatives":
            excluded = ~own
            excluded[:, :world_batch_size] = True
        elif self.hardness_mode == "in_batch_negatives":
            excluded = own
        else:  # all_negatives: every negative, only the positive left out
            excluded = own
            excluded[:, world_batch_size:] = False
        penalty[excluded] = 0.0
        return penalty

    def _reduce(self, logits: dict[str, Tensor], local: Tensor) -> Tensor:
        """Cross-entropy of each local row's positive against its (joint or per-direction) softmax."""
        rows = torch.arange(local.numel(), device=local.device)
        positive = logits["query_to_doc"][rows, local]
        if self.partition_mode == "joint":
            log_z = torch.logsumexp(torch.cat(list(logits.values()), dim=1), dim=1)
        else:
            log_z = sum(torch.logsumexp(m, dim=1) for m in logits.values()) / len(logits)
        return -(positive - log_z).mean()
