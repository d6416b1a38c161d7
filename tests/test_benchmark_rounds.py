"""The benchmarks report each timed round as soon as it ends, so a stopped run keeps its rounds; the
rounds of such a run summarize back to the same spreads the finished run reports."""

from __future__ import annotations

import io
import json
import statistics
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402
import attention_cost  # noqa: E402
import forward_cost  # noqa: E402
import forward_profile  # noqa: E402
import rounds_summary  # noqa: E402

from anyphoto_core.flux import FluxParams  # noqa: E402


class Interrupted(Exception):
    """Stands in for the run being stopped (Ctrl-C, a time limit)."""


def test_each_round_is_handed_on_when_it_ends_and_survives_a_stop(monkeypatch):
    calls, seen = [], []
    durations = {"stock": 2.0, "a": 3.0}

    def fake_timed(fn, device, clock="wall"):
        fn()
        name = calls[-1]
        if calls.count(name) == 4:  # round 3 of the run (the warm-up is call 1)
            raise Interrupted
        return durations[name] * calls.count(name)  # slower every round

    monkeypatch.setattr(_common, "timed", fake_timed)
    fns = {name: (lambda name=name: calls.append(name)) for name in durations}
    with pytest.raises(Interrupted):
        _common.paired_rounds(fns, "stock", 5, torch.device("cpu"), on_round=lambda *r: seen.append(r))
    # rounds 1 and 2 were reported with their own seconds (not medians so far) before the stop
    assert seen == [
        (1, {"stock": 4.0, "a": 6.0}, {"stock": 1.0, "a": 1.5}),
        (2, {"stock": 6.0, "a": 9.0}, {"stock": 1.0, "a": 1.5}),
    ]


def test_printed_rounds_summarize_to_the_spreads_of_the_run():
    stream = io.StringIO()
    printer = _common.RoundPrinter({"size": 512}, 3, as_json=True, stream=stream)
    rounds = [{"stock": 2.0, "a": 2.2}, {"stock": 4.0, "a": 4.0}, {"stock": 1.0, "a": 1.3}]
    for number, seconds in enumerate(rounds, 1):
        printer(number, seconds, {k: v / seconds["stock"] for k, v in seconds.items()})
        assert len(stream.getvalue().splitlines()) == number  # written at once, one line per round
    lines = stream.getvalue().splitlines() + ["not json", json.dumps({"kind": "row", "size": 512})]
    summary = _common.summarize_rounds(lines)
    assert list(summary) == [(512,)]
    a = summary[(512,)]["a"]
    assert a["rounds"] == 3
    assert a["ratio"] == pytest.approx({"min": 1.0, "median": 1.1, "max": 1.3})
    assert a["seconds"] == {"min": 1.3, "median": 2.2, "max": 4.0}

    text = io.StringIO()
    _common.RoundPrinter({"size": 512}, 3, as_json=False, stream=text)(2, rounds[1], {"stock": 1.0, "a": 1.0})
    assert text.getvalue() == "512 round 2/3: stock 1.000, a 1.000\n"


def test_rounds_summary_cli(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    printer = _common.RoundPrinter({"size": 256, "case": "pruned x2"}, 2, as_json=True, stream=io.StringIO())
    printer.stream = log.open("w")
    printer(1, {"reference": 1.0, "fast": 0.9}, {"reference": 1.0, "fast": 0.9})
    printer(2, {"reference": 1.0, "fast": 1.1}, {"reference": 1.0, "fast": 1.1})
    printer.stream.close()
    assert rounds_summary.main([str(log), "--keys", "size", "case"]) == 0
    out = capsys.readouterr().out
    assert "size=256 case=pruned x2           fast: 2 rounds, ratio 1.000 [0.900-1.100]" in out
    assert rounds_summary.main([str(tmp_path / "run.jsonl"), "--keys", "size"]) == 0
    (tmp_path / "empty.jsonl").write_text("{}\n")
    assert rounds_summary.main([str(tmp_path / "empty.jsonl")]) == 1


def _records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _check_rounds_before_rows(records: list[dict], group_keys: tuple[str, ...], name_key: str, baseline: str):
    """Every row's per-round ratios equal the round records printed before it, in order."""
    printed: dict[tuple, list[dict]] = {}
    rows = 0
    for r in records:
        key = tuple(r[k] for k in group_keys)
        if r["kind"] == "round":
            printed.setdefault(key, []).append(r)
            assert r["round"] == len(printed[key]) and r["ratio"][baseline] == 1.0
        else:
            rows += 1
            got = [p["ratio"][r[name_key]] for p in printed[key]]
            assert len(got) == len(r["time_ratio_rounds"]) == 2 and got == pytest.approx(r["time_ratio_rounds"])
            assert r["time_ratio_spread"]["median"] == pytest.approx(statistics.median(got))
    return rows


def test_forward_cost_prints_each_round_before_its_rows(monkeypatch, capsys):
    class TinyParams:
        """``FluxParams(depth=1, depth_single_blocks=1)`` made tiny; ``flux1_dev`` stays real (weight bytes)."""

        flux1_dev = staticmethod(FluxParams.flux1_dev)

        def __new__(cls, **kwargs):
            return FluxParams.tiny(hidden_size=64, num_heads=2, **kwargs)

    monkeypatch.setattr(forward_cost, "FluxParams", TinyParams)
    args = ["--json", "--cpu", "--threads", "1", "--sizes", "128", "--ids", "2", "--unpruned-ids", "--rounds", "2"]
    rows = forward_cost.run(
        forward_cost.parse_args([*args, "--token-matched", "--clock", "cpu", "--dtype", "float32", "--depth", "1", "0"])
    )
    assert {(r["dtype"], r["depth"], r["depth_single_blocks"]) for r in rows} == {("float32", 1, 0)}
    records = _records(capsys.readouterr().out)
    assert [r["kind"] for r in records] == ["round", "round", "row", "row", "row"]
    for r in records:
        if r["kind"] == "round":
            r["name"] = None
    assert _check_rounds_before_rows(records, ("size",), "name", "stock") == len(rows) == 3


def test_attention_cost_prints_each_round_before_its_row(monkeypatch, capsys):
    monkeypatch.setattr(attention_cost, "HEADS", 2)
    monkeypatch.setattr(attention_cost, "HEAD_DIM", 16)
    args = ["--json", "--cpu", "--threads", "1", "--sizes", "128", "--rounds", "2", "--ids", "2", "--unpruned-ids", "1"]
    calls = []
    reference = attention_cost.masked_reference_attention
    monkeypatch.setattr(attention_cost, "masked_reference_attention", lambda *a: calls.append(1) or reference(*a))
    attention_cost.run(attention_cost.parse_args([*args, "--control", "--plain"]))
    assert len(calls) == 2 * 3 * 2  # 2 cases x (warm-up + 2 rounds) x (reference + its A/A repeat)
    records = _records(capsys.readouterr().out)
    assert [r["kind"] for r in records] == ["round", "round", "row"] * 2
    for row, rounds in ((records[2], records[:2]), (records[5], records[3:5])):  # the A/A control: same call twice
        assert row["control_ratio_rounds"] == pytest.approx([r["ratio"][attention_cost.CONTROL] for r in rounds])
        assert [list(r["ratio"]) for r in rounds] == [["reference", "fast", attention_cost.CONTROL, "plain"]] * 2
        fast_over_plain = [r["seconds"]["fast"] / r["seconds"]["plain"] for r in rounds]
        assert row["fast_over_plain_spread"]["max"] == pytest.approx(max(fast_over_plain))
    for r in records:
        r["name"] = "fast"
    assert _check_rounds_before_rows(records, ("size", "case"), "name", "reference") == 2


def test_forward_profile_table_compares_each_count_with_its_token_match(monkeypatch, capsys):
    class TinyParams:
        def __new__(cls, **kwargs):
            return FluxParams.tiny(hidden_size=64, num_heads=2, **kwargs)

    monkeypatch.setattr(forward_profile, "FluxParams", TinyParams)
    forward_profile.main(["--size", "128", "--ids", "1", "2", "--depth", "1", "1", "--top", "5"])
    out = capsys.readouterr().out
    table = out[out.index("| op |") :].splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    m1, m2 = (sum(t.count for t in _common.identity_tokens(128, n)) for n in (1, 2))
    assert header == ["op", "stock", "pruned x1", f"stock +{m1}", "pruned x2", f"stock +{m2}"]
    assert len(table) == 2 + 5 + 1
    ops = [row.split("|")[1].strip() for row in table[2:7]]
    assert len(set(ops)) == 5 and all(op.startswith("`aten::") for op in ops), ops
    assert table[7].startswith("| whole call (CPU ms) |")
    assert all(float(c) > 0 for c in table[7].strip("|").split("|")[1:])
