"""A batch over several servers (farm.py, ledger.py) against the protocol-faithful fake ComfyUI of
test_headless_client.py, extended with a server that dies on a chosen prompt."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiohttp import web
from test_headless_client import FakeComfy, anyphoto_workflow, png_bytes

from anyphoto_core.headless.cli import main
from anyphoto_core.headless.farm import BatchRunner, batch_items
from anyphoto_core.headless.jobs import Job
from anyphoto_core.headless.ledger import LEDGER_NAME, BatchLedger


class MortalComfy(FakeComfy):
    """A fake that accepts its ``die_at``-th prompt and then crashes: websockets closed, port closed."""

    def __init__(self, die_at: int | None = None):
        super().__init__()
        self.die_at = die_at

    async def prompt(self, request):
        if self.die_at is None or len(self.prompts) + 1 < self.die_at:
            return await super().prompt(request)
        self.prompts.append(await request.json())
        asyncio.get_running_loop().create_task(self._die())
        return web.json_response({"prompt_id": str(uuid.uuid4()), "number": len(self.prompts), "node_errors": {}})

    async def _die(self):
        for sock in list(self.sockets.values()):
            await sock.close()
        await self.runner.cleanup()


@pytest.fixture
def servers():
    made = []

    def make(die_at=None):
        made.append(MortalComfy(die_at))
        return made[-1]

    yield make
    for server in made:
        server.close()


def jobs(n: int, **extra) -> list[tuple[Job, str]]:
    return [(Job(seed=i, prompt=f"job {i}", **extra), f"job{i:04d}_") for i in range(1, n + 1)]


def seeds_sent(server) -> list[int]:
    return [body["prompt"]["8"]["inputs"]["seed"] for body in server.prompts]


def run(servers, out, n=6, **kw):
    wf = anyphoto_workflow()
    runner = BatchRunner(wf, [s.url for s in servers], out, progress=False, **kw)
    return runner.run(batch_items(wf, jobs(n)))


def saved_seeds(result) -> list[int]:
    return sorted(result.saved)


def test_jobs_spread_over_servers_each_once(servers, tmp_path):
    a, b = servers(), servers()
    result = run([a, b], tmp_path / "out", n=8)
    assert result.exit_code == 0 and saved_seeds(result) == list(range(1, 9))
    assert seeds_sent(a) and seeds_sent(b)  # both servers worked
    assert sorted(seeds_sent(a) + seeds_sent(b)) == list(range(1, 9))  # every job queued exactly once
    files = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert [f[:7] for f in files] == [f"job{i:04d}"[:7] for i in range(1, 9)] and len(set(files)) == 8
    assert [s.done for s in result.servers] == [len(seeds_sent(a)), len(seeds_sent(b))]
    staging = tmp_path / "out" / ".anyphoto_partial"
    assert not staging.exists() or not any(staging.iterdir())  # nothing left half-downloaded


def test_job_lost_with_a_dying_server_runs_on_another(servers, tmp_path):
    a, b = servers(die_at=3), servers()
    result = run([a, b], tmp_path / "out", n=8)
    assert result.exit_code == 0 and saved_seeds(result) == list(range(1, 9))
    lost = seeds_sent(a)[-1]  # the prompt a accepted and never finished
    assert result.lost_on == {lost: [a.url]}
    assert lost in seeds_sent(b) and sorted(seeds_sent(a)[:-1] + seeds_sent(b)) == list(range(1, 9))
    assert result.servers[0].down and result.servers[1].down is None
    assert len(list((tmp_path / "out").glob("*.png"))) == 8


class DeadBehindProxy(FakeComfy):
    """A reverse proxy whose ComfyUI is gone: the websocket still opens, ``POST /prompt`` gets HTTP 502."""

    async def prompt(self, request):
        return web.Response(status=502, text="Bad Gateway")


def test_proxy_gateway_errors_count_as_a_dead_server(servers, tmp_path):
    proxied, healthy = DeadBehindProxy(), servers()
    try:
        result = run([proxied, healthy], tmp_path / "out", n=4)
    finally:
        proxied.close()
    assert result.exit_code == 0 and saved_seeds(result) == [1, 2, 3, 4] == sorted(seeds_sent(healthy))
    assert "HTTP 502" in result.servers[0].down and result.servers[1].done == 4


def test_resume_runs_only_unfinished_jobs(servers, tmp_path):
    out = tmp_path / "out"
    first = servers(die_at=4)
    result = run([first], out, n=6)
    assert result.exit_code == 3 and saved_seeds(result) == [1, 2, 3] and result.not_run == [4, 5, 6]
    done_files = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert len(BatchLedger(out).finished()) == 3

    second = servers()
    result = run([second], out, n=6)
    assert result.exit_code == 0 and result.skipped == [1, 2, 3] and saved_seeds(result) == [4, 5, 6]
    assert seeds_sent(second) == [4, 5, 6]  # nothing finished was queued again
    assert {p.name: p.read_bytes() for p in out.glob("*.png") if p.name in done_files} == done_files
    assert len(list(out.glob("*.png"))) == 6

    (out / LEDGER_NAME).write_text((out / LEDGER_NAME).read_text() + '{"key": "torn')  # killed mid-write
    next(out.glob("job0005_*.png")).unlink()  # a recorded job whose image is gone is run again
    result = run([second], out, n=6)
    assert result.skipped == [1, 2, 3, 4, 6] and saved_seeds(result) == [5] and seeds_sent(second)[-1] == 5


def test_failed_job_is_reported_not_retried(servers, tmp_path):
    a, b = servers(), servers()
    a.fail_node = b.fail_node = "10"  # VAEDecode fails on every server
    result = run([a, b], tmp_path / "out", n=3)
    assert result.exit_code == 1 and sorted(result.failed) == [1, 2, 3] and not result.saved
    assert len(a.prompts) + len(b.prompts) == 3  # each job tried once
    assert "boom" in str(result.failed[1])


def test_every_server_down_leaves_jobs_for_a_rerun(servers, tmp_path):
    a, b = servers(die_at=1), servers(die_at=2)
    result = run([a, b], tmp_path / "out", n=4, per_server=2)
    assert result.exit_code == 3 and not result.failed
    assert sorted(list(result.saved) + result.not_run) == [1, 2, 3, 4]


def test_cli_several_servers_progress_and_duplicate_names(servers, tmp_path, capsys):
    a, b = servers(), servers()
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(anyphoto_workflow()))
    photo = tmp_path / "p.png"
    photo.write_bytes(png_bytes("red"))
    lines = [{"seed": i, "people": [{"photos": ["p.png"], "box": [0.1, 0.1, 0.4, 0.5]}]} for i in range(4)]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    args = [str(wf), "--server", a.url, "--server", b.url, "--jobs", str(tmp_path / "jobs.jsonl")]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.split()) == 4
    labels = [s.url.split("//")[1] for s in (a, b)]
    assert all(f"{label} " in captured.err and "/min" in captured.err for label in labels)  # per-server rates
    assert a.uploads and b.uploads  # each server got the photos of its own jobs

    assert main([*args, "--out", str(tmp_path / "out")]) == 0  # resumed: nothing to do
    assert "4 job(s) were done in an earlier run" in capsys.readouterr().err
    assert len(a.prompts) + len(b.prompts) == 4

    (tmp_path / "jobs.jsonl").write_text('{"name": "x"}\n{"name": "x"}\n')
    assert main([*args, "--out", str(tmp_path / "out2")]) == 2
    assert "job names must be unique" in capsys.readouterr().err
