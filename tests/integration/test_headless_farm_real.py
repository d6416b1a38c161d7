"""A batch over two real ComfyUI servers, one killed (SIGKILL) mid-batch. Needs COMFYUI_PATH."""

import json
import threading

from anyphoto_core.headless import Job
from anyphoto_core.headless.farm import BatchRunner, batch_items
from anyphoto_core.headless.ledger import LEDGER_NAME
from integration import comfy_harness

JOBS = 20
KILL_AFTER = 5


def test_twenty_jobs_two_servers_one_killed_after_five(comfy_server, tmp_path):
    workflow = comfy_harness.tiny_api_workflow(width=64, height=64, steps=1)
    items = batch_items(workflow, [(Job(seed=i), f"job{i:04d}_") for i in range(1, JOBS + 1)])
    out = tmp_path / "out"
    with comfy_harness.start_server(tmp_path / "victim", [comfy_harness.TINY_FLUX_PACK]) as victim:
        finished, lock = [], threading.Lock()

        def kill_after_five(item, saved, server):
            with lock:
                finished.append(item.index)
                if len(finished) == KILL_AFTER:
                    victim.process.kill()
                    victim.process.wait(timeout=30)

        runner = BatchRunner(workflow, [comfy_server.url, victim.url], out, progress=False, on_finished=kill_after_five)
        result = runner.run(items)
        assert victim.process.returncode == -9

    assert result.exit_code == 0 and not result.failed and not result.not_run
    assert sorted(result.saved) == list(range(1, JOBS + 1))
    assert result.lost_on and all(lost == [victim.url] for lost in result.lost_on.values())  # retried elsewhere
    survivor, dead = result.servers
    assert dead.down is not None and survivor.down is None and survivor.done + dead.done == JOBS
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert [name[: len("job0000")] for name in pngs] == [f"job{i:04d}" for i in range(1, JOBS + 1)]  # once each
    records = [json.loads(line) for line in (out / LEDGER_NAME).read_text().splitlines()]
    assert sorted(r["index"] for r in records) == list(range(1, JOBS + 1))
    server_dirs = {comfy_server.url: comfy_server.output_dir, victim.url: victim.output_dir}
    for record in records:  # each image is byte-equal to the one the server that ran the job saved
        (name,) = record["files"]
        on_server = server_dirs[record["by"]] / name[len("job0000_") :]
        assert (out / name).read_bytes() == on_server.read_bytes()
    assert sum(r["by"] == victim.url for r in records) == dead.done

    history_before = len(comfy_server.get_json("/history?max_items=1000"))
    again = BatchRunner(workflow, [comfy_server.url], out, progress=False).run(items)
    assert again.exit_code == 0 and again.skipped == list(range(1, JOBS + 1)) and not again.saved
    assert len(comfy_server.get_json("/history?max_items=1000")) == history_before  # nothing was queued again
