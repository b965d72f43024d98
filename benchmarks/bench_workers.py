"""Encoder throughput for processes x threads layouts: what ``localize-bench --workers`` decides.

    python benchmarks/bench_workers.py --repo ../repos/django__django --texts 512 --layout 1x2 --layout 2x1

A layout ``PxT`` runs P processes at once, each encoding the same real chunk
texts with T torch threads, and reports the texts per second of all of them
together (wall clock, from the moment every process has its model loaded to
the moment the last one is done). The question it answers: do separate
processes, which never sync threads on each small matrix product, encode more
texts per second than one process's threads? On an idle 2-core AVX-512 EPYC
they did not (34.8 vs 35.6 texts/s, benchmarks/RESULTS.md). Run it on an idle
machine: neighbours change the figure.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if not __package__:  # run as a file (python benchmarks/...py): PEP 366 lets the relative import below resolve
    __package__ = "benchmarks"
from .bench_encoder import sample_texts  # noqa: E402
from .report_io import emit_report  # noqa: E402


def parse_layout(text: str) -> tuple[int, int]:
    processes, _, threads = text.lower().partition("x")
    try:
        layout = int(processes), int(threads)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a layout is PROCESSESxTHREADS, e.g. 2x1, not {text!r}") from None
    if min(layout) < 1:
        raise argparse.ArgumentTypeError(f"processes and threads must be positive in {text!r}")
    return layout


def _encode(texts: list[str], threads: int, model: str | None, ready, start, results) -> None:
    import torch

    from localizer.embedding.embedder import Embedder, EmbedderConfig

    torch.set_num_threads(threads)
    embedder = Embedder(EmbedderConfig(model=model, device="cpu"))
    embedder.encode_documents(texts[:8])  # warm-up
    ready.release()
    start.wait()
    embedder.encode_documents(texts)
    results.put(time.time())


def measure(texts: list[str], processes: int, threads: int, model: str | None) -> float:
    """Texts per second, all processes together."""
    context = multiprocessing.get_context("spawn")
    ready, start, results = context.Semaphore(0), context.Event(), context.Queue()
    workers = [context.Process(target=_encode, args=(texts, threads, model, ready, start, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.acquire()
    began = time.time()
    start.set()
    ended = max(results.get() for _ in workers)
    for worker in workers:
        worker.join()
    return processes * len(texts) / (ended - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--rev", default=None)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--layout", type=parse_layout, action="append", default=None, help="PxT; default: 1x2 and 2x1")
    parser.add_argument("--model", default="localizer-cornstack", help="a transformer embedder (the runtimes are its)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    texts = sample_texts(args.repo, args.rev, args.texts, args.seed)
    layouts = args.layout or [(1, 2), (2, 1)]
    rows = [{"layout": f"{p}x{t}", "texts_per_second": round(measure(texts, p, t, args.model), 1)} for p, t in layouts]
    for row in rows:
        row["speedup_vs_first"] = round(row["texts_per_second"] / rows[0]["texts_per_second"], 2)
    emit_report({"repo": str(args.repo), "rev": args.rev, "texts": len(texts), "layouts": rows}, args.out)


if __name__ == "__main__":
    main()
