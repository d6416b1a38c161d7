"""benchmarks/device_check.py: the GPU check's code paths, run on CPU with ``--tiny`` (as CI does), and the
pieces that keep a GPU run honest: interleaved rounds with every round's ratio, sections that fail or run
out of time without stopping the run, results written as they come."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402
import device_check  # noqa: E402


def test_paired_rounds_alternate_order_and_keep_every_round(monkeypatch):
    calls = []
    durations = {"stock": 1.0, "a": 2.0, "b": 3.0}
    fns = {name: (lambda name=name: calls.append(name)) for name in durations}
    done = {name: 0 for name in durations}

    def fake_timed(fn, device, clock="wall"):
        fn()
        name = calls[-1]
        done[name] += 1
        return durations[name] * (1, 1, 2, 6)[done[name] - 1]  # the machine slows down, unevenly

    monkeypatch.setattr(_common, "timed", fake_timed)
    out = _common.paired_rounds(fns, "stock", 4, torch.device("cpu"))
    timed_calls = calls[3:]  # round 0 (warm-up, memory) is not timed
    assert timed_calls == ["stock", "a", "b", "b", "a", "stock", "stock", "a", "b", "b", "a", "stock"]
    # slow drift cancels in the per-round ratio; every round is kept with its spread
    assert out["a"]["ratio_rounds"] == [2.0] * 4 and out["b"]["ratio_spread"] == {"min": 3, "median": 3, "max": 3}
    assert out["a"]["seconds_rounds"] == [2.0, 2.0, 4.0, 12.0]
    assert out["a"]["seconds_spread"] == {"min": 2.0, "median": 3.0, "max": 12.0}
    assert out["a"]["seconds"] == 3.0 and out["a"]["ratio"] == 2.0


def test_spread_text():
    assert _common.format_spread([1.2, 1.0, 1.1]) == "1.100 [1.000-1.200]"
    assert _common.spread_text(None) == "-"


def test_token_count_floor_matches_a_hand_count():
    """Independent count: C=2, F=4, r=1, 3 global tokens, identities of 1 and 2 tokens."""
    c, f, r, g, lengths = 2, 4, 1, 3, (1, 2)
    linear = 2 * (4 * c * c + 2 * c * f)  # 64 per token
    lora = 2 * r * (8 * c + 2 * f)  # 48 per identity token
    pairs = 3 * 6 + 1 * 4 + 2 * 5  # globals see all 6 keys; id 1 sees 3+1; id 2 sees 3+2
    assert _common.block_flops(g, lengths, c, f, r) == linear * 6 + lora * 3 + 4 * c * pairs
    assert _common.forward_floor(g, lengths, c, f, r) == pytest.approx(
        (linear * 6 + lora * 3 + 4 * c * pairs) / (linear * 3 + 4 * c * 9)
    )


def test_a_failing_section_is_recorded_and_the_run_goes_on(tmp_path):
    report = device_check.Report(tmp_path, {"mode": "test", "started": "now", "budget_s": 1})

    def broken():
        raise ValueError("kernel exploded")

    def too_late():
        device_check.Budget(seconds=0).require(5, "the 1024^2 rows")

    device_check.run_section(report, "broken", broken)
    device_check.run_section(report, "late", too_late)
    device_check.run_section(report, "fine", lambda: report.add_row("fine", {"x": 1}))
    written = json.loads((tmp_path / "device_check.json").read_text())["sections"]
    assert written["broken"]["status"] == "error" and "ValueError: kernel exploded" in written["broken"]["error"]
    assert written["late"]["status"] == "skipped" and "the 1024^2 rows" in written["late"]["notes"][0]
    assert written["fine"]["status"] == "ok" and written["fine"]["rows"] == [{"x": 1}]
    md = (tmp_path / "device_check.md").read_text()
    assert "## broken: error" in md and "kernel exploded" in md


def test_fp8_storage_keeps_the_linear_up_to_fp8_rounding():
    torch.manual_seed(0)
    linear = torch.nn.Linear(16, 8)
    x = torch.randn(3, 16)
    fp8 = device_check.Fp8StoredLinear(linear)
    assert fp8.weight.dtype == torch.float8_e4m3fn
    rounded = torch.nn.functional.linear(x, linear.weight.to(torch.float8_e4m3fn).float(), linear.bias)
    assert torch.equal(fp8(x), rounded)
    assert not torch.equal(fp8(x), linear(x))  # really stored in fp8


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One ``--tiny`` run as CI runs it (a subprocess; generous budget: the machine may be shared)."""
    out = tmp_path_factory.mktemp("device_check")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "device_check.py"),
            "--tiny",
            "--out",
            str(out),
            "--budget-s",
            "900",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "device_check.json").read_text()), (out / "device_check.md").read_text(), proc.stdout


def test_tiny_run_every_section_ok(tiny_run):
    data, md, stdout = tiny_run
    sections = data["sections"]
    assert [n for n in sections] == ["environment", "forward", "train", "fp8", "faces"]
    for name, sec in sections.items():
        assert sec["status"] == "ok", (name, sec.get("error"), sec.get("traceback"))
        assert f"## {name}: ok" in md
    assert "device_check.json" in stdout  # the run says where its results are


def test_tiny_forward_rows_and_attention_paths(tiny_run):
    data, md, _ = tiny_run
    rows = data["sections"]["forward"]["rows"]
    params = device_check.TINY.params
    blocks = params.depth + params.depth_single_blocks
    assert [(r["size"], r["identities"]) for r in rows] == [(s, n) for s in (256, 128) for n in (0, 1, 2, 4, 8)]
    for r in rows:
        rounds = r["time_ratio_rounds"]
        assert len(rounds) == device_check.TINY.rounds
        s = r["time_ratio_spread"]
        assert s["min"] == min(rounds) <= s["median"] <= s["max"] == max(rounds)
        n_global = device_check.TINY.text_tokens + (r["size"] // 16) ** 2
        m = sum(r["identity_tokens"])
        calls = r["attention"]["calls"]
        assert sum(calls.values()) == (blocks if r["identities"] <= 1 else 2 * blocks), calls
        if r["identities"] <= 1:  # one unmasked call over everything
            assert calls == {f"{n_global + m} x {n_global + m}, no mask": blocks}
        else:  # global queries unmasked, identity queries with an (M, N) mask, never N x N
            assert calls == {
                f"{n_global} x {n_global + m}, no mask": blocks,
                f"{m} x {n_global + m}, mask ({m}, {n_global + m})": blocks,
            }
        assert r["attention"]["sdpa_ops"], "the SDPA kernel torch picked is recorded"
        assert r["peak_bytes"] > 0
    stock = [r for r in rows if r["identities"] == 0]
    assert all(r["time_ratio_rounds"] == [1.0] * device_check.TINY.rounds for r in stock)
    assert "| size | ids | M |" in md


def test_tiny_train_fp8_and_faces_rows(tiny_run):
    data, _, _ = tiny_run
    train = data["sections"]["train"]["rows"]
    assert [r["size"] for r in train] == [128, 256]
    for r in train:
        assert r["finite"] and r["peak_step_bytes"] > 0
        assert {"flow", "face", "loss"} <= set(r["loss_terms"])
        assert r["loss_terms"]["face"] > 0  # the face loss really ran (random weights: not a perfect match)
    fp8 = data["sections"]["fp8"]
    params = device_check.TINY.params
    linears = 10 * params.depth + 3 * params.depth_single_blocks  # qkv, proj, mlp.0, mlp.2, mod.lin x2 / 3
    assert f"{linears} block linears stored as float8_e4m3fn" in fp8["notes"][0]
    assert [r["identities"] for r in fp8["rows"]] == [0, 1, 4]
    faces = data["sections"]["faces"]["rows"]
    assert len(faces) == 2 and all(r["ms_spread"]["min"] > 0 for r in faces)
