"""``AnswerMaskedMNRL``: gathered candidates that repeat a query's answer are not its negatives.

Two processes are simulated by replacing the gather functions the loss calls: each
returns the local tensor concatenated with the other rank's, in rank order, exactly as
``torch.distributed`` would. The reference loss is InfoNCE written out by hand over the
candidate columns, with and without the duplicate column.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")

from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss  # noqa: E402
from sentence_transformers.util import cos_sim  # noqa: E402

from cornstack_train.embedder import losses  # noqa: E402
from cornstack_train.embedder.losses import AnswerMaskedMNRL, answer_masks, token_keys  # noqa: E402

SCALE = 20.0
DIM = 8


class NoModel(torch.nn.Module):
    """The losses only need a module to hold; these tests hand them embeddings."""


def column(seed: int, rows: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, DIM, generator=generator)


def simulate_ranks(monkeypatch, rank: int, other: dict[int, torch.Tensor]) -> None:
    """Make the loss see two processes: ``other`` maps a local tensor (by id) to the other rank's."""
    def gather(tensor: torch.Tensor, with_grad: bool = False) -> torch.Tensor:
        parts = [tensor, other[id(tensor)]]
        return torch.cat(parts if rank == 0 else parts[::-1])

    monkeypatch.setattr(losses, "all_gather_with_grad", gather)
    monkeypatch.setattr(losses, "all_gather", gather)
    monkeypatch.setattr(losses, "get_rank", lambda: rank)
    # the parent class's module, for the unmasked comparison
    import sentence_transformers.sentence_transformer.losses.multiple_negatives_ranking as mnrl

    monkeypatch.setattr(mnrl, "all_gather_with_grad", gather)
    monkeypatch.setattr(mnrl, "get_rank", lambda: rank)


def reference_infonce(local_queries: torch.Tensor, candidates: torch.Tensor, positive_columns: list[int],
                      dropped: dict[int, set[int]] | None = None) -> torch.Tensor:
    """Mean over local queries of -log softmax(scale·cos)[positive], leaving out ``dropped[i]`` columns."""
    terms = []
    for i, query in enumerate(local_queries):
        keep = [c for c in range(len(candidates)) if c not in (dropped or {}).get(i, set())]
        logits = SCALE * cos_sim(query[None], candidates[keep])[0]
        terms.append(torch.logsumexp(logits, 0) - logits[keep.index(positive_columns[i])])
    return torch.stack(terms).mean()


def two_rank_batch():
    """Rank 0 and rank 1, 3 rows each, one hard-negative column. Rank 1's first hard negative is the same
    text (same key, same embedding) as rank 0's second positive."""
    q0, q1, n0, n1 = column(1), column(4), column(3), column(6)
    p0, p1 = q0 + 0.3 * column(2), q1 + 0.3 * column(5)  # each positive close to its query, as after training
    n1[0] = p0[1]
    keys0 = [torch.tensor([10, 11, 12]), torch.tensor([20, 21, 22]), torch.tensor([30, 31, 32])]
    keys1 = [torch.tensor([13, 14, 15]), torch.tensor([23, 24, 25]), torch.tensor([21, 34, 35])]
    return (q0, p0, n0, keys0), (q1, p1, n1, keys1)


def test_a_gathered_negative_equal_to_a_local_positive_is_masked(monkeypatch):
    (q0, p0, n0, keys0), (q1, p1, n1, keys1) = two_rank_batch()
    other = {id(q0): q1, id(p0): p1, id(n0): n1}
    other.update({id(k0): k1 for k0, k1 in zip(keys0, keys1)})
    simulate_ranks(monkeypatch, 0, other)

    masked = AnswerMaskedMNRL(NoModel(), scale=SCALE, gather_across_devices=True)
    plain = MultipleNegativesRankingLoss(NoModel(), scale=SCALE, gather_across_devices=True)
    got = masked.compute_loss_from_embeddings([q0, p0, n0], None, keys0)
    unmasked = plain.compute_loss_from_embeddings([q0, p0, n0], None)

    # gathered candidate columns: positives r0 (0-2), r1 (3-5), negatives r0 (6-8), r1 (9-11)
    candidates = torch.cat([p0, p1, n0, n1])
    duplicate = 9  # rank 1's first negative, the text of rank 0's row 1 positive
    assert torch.equal(candidates[duplicate], p0[1])
    expected = reference_infonce(q0, candidates, [0, 1, 2], dropped={1: {duplicate}})
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert unmasked.item() == pytest.approx(reference_infonce(q0, candidates, [0, 1, 2]).item(), rel=1e-6)
    assert unmasked.item() > got.item() + 1e-3, "without the mask the duplicate counts as a negative"


def test_rank_one_masks_its_own_column_too(monkeypatch):
    """On rank 1 the same duplicate is a hard negative of its own row 0; rank 0's positive is row 1's
    answer, not rank 1's, so nothing is masked there (the keys differ)."""
    (q0, p0, n0, keys0), (q1, p1, n1, keys1) = two_rank_batch()
    other = {id(q1): q0, id(p1): p0, id(n1): n0}
    other.update({id(k1): k0 for k0, k1 in zip(keys0, keys1)})
    simulate_ranks(monkeypatch, 1, other)
    masked = AnswerMaskedMNRL(NoModel(), scale=SCALE, gather_across_devices=True)
    got = masked.compute_loss_from_embeddings([q1, p1, n1], None, keys1)
    candidates = torch.cat([p0, p1, n0, n1])
    assert got.item() == pytest.approx(reference_infonce(q1, candidates, [3, 4, 5]).item(), rel=1e-6)


def test_the_positive_of_the_same_query_on_another_rank_is_masked(monkeypatch):
    """A commit message mined for two functions: rank 1's row 2 asks rank 0's row 0 query with another
    positive. That positive (and anything with its text) is a right answer for rank 0's row 0."""
    (q0, p0, n0, keys0), (q1, p1, n1, keys1) = two_rank_batch()
    q1[2] = q0[0]
    keys1 = [torch.tensor([13, 14, 10]), keys1[1], torch.tensor([33, 34, 35])]
    n0[2] = p1[2]  # and rank 0's row 2 drew that same code as a hard negative
    keys0 = [keys0[0], keys0[1], torch.tensor([30, 31, 25])]
    other = {id(q0): q1, id(p0): p1, id(n0): n1}
    other.update({id(k0): k1 for k0, k1 in zip(keys0, keys1)})
    simulate_ranks(monkeypatch, 0, other)
    masked = AnswerMaskedMNRL(NoModel(), scale=SCALE, gather_across_devices=True)
    got = masked.compute_loss_from_embeddings([q0, p0, n0], None, keys0)
    candidates = torch.cat([p0, p1, n0, n1])
    # rank 1's row 2 positive is column 5; rank 0's row 2 negative (column 8) has its text
    expected = reference_infonce(q0, candidates, [0, 1, 2], dropped={0: {5, 8}})
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("directions,partition,hardness", [
    (("query_to_doc",), "joint", None),
    (("query_to_doc", "doc_to_query"), "joint", None),
    (("query_to_doc", "doc_to_query"), "per_direction", None),
    (("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"), "joint", None),
    (("query_to_doc",), "joint", "in_batch_negatives"),
    (("query_to_doc",), "joint", "hard_negatives"),
    (("query_to_doc", "doc_to_query"), "joint", "all_negatives"),
])
@pytest.mark.parametrize("gathered", [False, True])
def test_without_duplicates_the_loss_and_gradients_are_plain_mnrl(monkeypatch, directions, partition, hardness,
                                                                  gathered):
    options = dict(scale=SCALE, directions=directions, partition_mode=partition, hardness_mode=hardness,
                   hardness_strength=9.0 if hardness else 0.0, gather_across_devices=gathered)
    local = [column(s).requires_grad_() for s in (1, 2, 3, 4)]
    keys = [torch.arange(3) + 100 * j for j in range(4)]
    if gathered:  # two ranks, rank 1's keys disjoint from rank 0's
        other = {id(t): column(s + 10) for t, s in zip(local, (1, 2, 3, 4))}
        other.update({id(k): k + 50 for k in keys})
        simulate_ranks(monkeypatch, 1, other)
    ours = AnswerMaskedMNRL(NoModel(), **options).compute_loss_from_embeddings(local, None, keys)
    ours_grads = torch.autograd.grad(ours, local)
    theirs = MultipleNegativesRankingLoss(NoModel(), **options).compute_loss_from_embeddings(local, None)
    theirs_grads = torch.autograd.grad(theirs, local)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    for a, b in zip(ours_grads, theirs_grads):
        assert torch.allclose(a, b, atol=1e-6)


def test_answer_masks_per_direction():
    # 4 gathered rows, local rows 2 and 3; row 0 shares row 2's query, row 1 shares row 3's positive
    queries = torch.tensor([7, 1, 7, 3])
    docs = [torch.tensor([40, 41, 42, 41]), torch.tensor([50, 42, 40, 53])]
    masks = answer_masks(queries, docs, torch.tensor([2, 3]))
    # query_to_doc, row 2: answers are its own positive (42, column 2: not masked) and row 0's (40):
    # column 0 and the negative column 6 (text 40); row 1's negative column 5 repeats 42
    assert masks["query_to_doc"][0].nonzero().flatten().tolist() == [0, 5, 6]
    # row 3: its own positive 41 appears as row 1's positive (column 1)
    assert masks["query_to_doc"][1].nonzero().flatten().tolist() == [1]
    assert masks["query_to_query"].tolist() == [[True, False, False, False], [False, True, False, False]]
    assert torch.equal(masks["doc_to_query"], masks["query_to_query"])


def test_token_keys_ignore_padding_and_read_bag_layouts():
    padded = {"input_ids": torch.tensor([[101, 7, 8, 102, 0], [101, 9, 102, 0, 0]]),
              "attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])}
    shorter = {"input_ids": torch.tensor([[101, 9, 102], [101, 7, 8]]), "attention_mask": torch.ones(2, 3, dtype=torch.long)}
    a, b = token_keys(padded), token_keys(shorter)
    assert a[1] == b[0] and a[0] != b[1] and a[0] != a[1]
    bag = {"input_ids": torch.tensor([7, 8, 9, 7, 8]), "offsets": torch.tensor([0, 2, 3])}
    c = token_keys(bag)
    assert c[0] == c[2] != c[1]
    assert token_keys({"pixel_values": torch.zeros(2, 3)}) is None


def test_make_loss_uses_the_masked_loss_without_caching(tmp_path):
    from sentence_transformers import SentenceTransformer

    from cornstack_train.embedder.training import TrainConfig, make_loss
    from tests.train_fixtures import tiny_model

    model = SentenceTransformer(str(tiny_model(tmp_path / "model")), device="cpu")
    plain = make_loss(model, TrainConfig(data=Path("x"), out=Path("y"), cached=False), False)
    assert isinstance(plain, AnswerMaskedMNRL)
    symmetric = make_loss(model, TrainConfig(data=Path("x"), out=Path("y"), cached=False,
                                             directions=("query_to_doc", "doc_to_query")), False)
    assert symmetric.directions == ("query_to_doc", "doc_to_query")
    # on real tokenized texts: row 1's hard negative is row 0's positive text. For row 1 it is a fair
    # negative; for row 0 it is a copy of its own answer, masked, so the loss is lower than the parent's
    texts = {"anchor": ["parse the config", "load the user", "save the file"],
             "positive": ["def parse_config(): pass", "def load_user(): pass", "def save_file(): pass"],
             "negative": ["def sort_table(): pass", "def parse_config(): pass", "def hash_token(): pass"]}
    features = [model.tokenize(texts[name]) for name in ("anchor", "positive", "negative")]
    reference = MultipleNegativesRankingLoss(model, scale=SCALE)
    with torch.no_grad():
        ours, theirs = float(plain(features, None)), float(reference(features, None))
    assert ours < theirs - 1e-4
    distinct = [model.tokenize(texts[name]) for name in ("anchor", "positive")]
    with torch.no_grad():
        assert float(plain(distinct, None)) == pytest.approx(float(reference(distinct, None)), rel=1e-6)



GLOO_WORKER = """
import json, sys
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
from cornstack_train.embedder.losses import AnswerMaskedMNRL
from tests.cornstack_train.test_fidelity_loss import SCALE, NoModel, two_rank_batch

rank = dist.get_rank()
q, p, n, keys = two_rank_batch()[rank]
loss = AnswerMaskedMNRL(NoModel(), scale=SCALE, gather_across_devices=True)
value = loss.compute_loss_from_embeddings([q, p, n], None, keys).item()
with open(sys.argv[1] + f"/rank{rank}.json", "w") as handle:
    json.dump(value, handle)
dist.barrier()
# Both ranks are done; skip the interpreter's teardown, where gloo's threads sometimes abort the
# process ("terminate called without an active exception") after the results are written.
import os
os._exit(0)
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_mask_the_gathered_duplicate(tmp_path):
    """The real gather (torch.distributed, gloo, 2 CPU processes, ~13 s here): keys travel with the
    embeddings, and each rank's loss is the hand-written one without the duplicate column."""
    import json
    import subprocess
    import sys

    script = tmp_path / "worker.py"
    script.write_text(GLOO_WORKER)
    root = str(Path(__file__).resolve().parents[2])
    base = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workers = [subprocess.Popen([sys.executable, str(script), str(tmp_path)], env={**base, "RANK": str(rank)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    for worker in workers:
        _, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err[-3000:]
    (q0, p0, n0, _), (q1, p1, n1, _) = two_rank_batch()
    candidates = torch.cat([p0, p1, n0, n1])
    expected = [reference_infonce(q0, candidates, [0, 1, 2], dropped={1: {9}}),
                reference_infonce(q1, candidates, [3, 4, 5])]
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got == pytest.approx(expected[rank].item(), rel=1e-5), rank
