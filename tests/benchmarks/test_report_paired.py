"""Paired wins and losses: the instances only one of two systems gets right, per metric."""

from benchmarks.swebench.report import paired, paired_table


def _record(instance, system, file_rank, function_rank=None):
    return {"instance_id": instance, "system": system,
            "gold_ranks": {"files": {"f.py": file_rank}, "functions": {"f.py::g": function_rank} if function_rank else {}}}


def test_wins_and_losses_count_only_instances_one_side_hits():
    records = [_record("a", "ref", 1), _record("a", "new", 4), _record("b", "ref", 9, 8), _record("b", "new", 2, 3),
               _record("c", "ref", 1), _record("c", "new", 1), _record("d", "new", 1)]  # d: no reference record
    counts = paired(records, "ref", "new")
    assert counts["files@1"] == (0, 1)
    assert counts["files@3"] == (1, 1)
    assert counts["files@5"] == (1, 0)
    assert counts["functions@5"] == (1, 0) and counts["functions@10"] == (0, 0)  # both hit at 10
    table = paired_table(records, ["ref", "new"])
    assert "| new | ref | 0 / 1 | 1 / 1 | 1 / 0 |" in table
    assert paired_table(records, ["ref"]) == ""


def test_a_system_is_paired_with_itself_without_history_when_the_run_has_it():
    from benchmarks.swebench.report import reference_of

    systems = ["bm25:nohist", "bm25", "bm25:boosts", "hybrid:nohist", "hybrid"]
    assert reference_of("bm25", systems) == "bm25:nohist"
    assert reference_of("hybrid", systems) == "hybrid:nohist"
    assert reference_of("bm25:boosts", systems) == "bm25:nohist"  # the first system
    assert reference_of("hybrid:nohist", systems) == "bm25:nohist"
