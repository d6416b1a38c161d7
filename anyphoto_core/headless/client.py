"""Talk to a ComfyUI server over its HTTP + websocket API: upload, queue, follow, download.

Protocol (ComfyUI server.py, documented in docs/headless.md): ``POST /upload/image`` (multipart ``image``)
→ ``POST /prompt {"prompt", "client_id"}`` → websocket ``/ws?clientId=`` messages ``progress``,
``executed``, ``execution_success`` | ``execution_error`` | ``execution_interrupted`` →
``GET /history/{prompt_id}`` → ``GET /view?filename=&subfolder=&type=`` per listed image.
Needs ``requests``, ``websocket-client`` and ``tqdm``; never imports ComfyUI.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import requests
import websocket
from tqdm import tqdm

from .errors import ExecutionFailed, HeadlessError, JobError, PromptRejected, ServerUnavailable, format_node_errors
from .fill import fill_workflow, validate_api_workflow
from .jobs import Job

DEFAULT_SERVER = "http://127.0.0.1:8188"
UPLOAD_SUBFOLDER = "anyphoto"
#: HTTP answers of a reverse proxy whose ComfyUI is gone (bad gateway, unavailable, gateway timeout).
GATEWAY_ERRORS = (502, 503, 504)


class ComfyClient:
    """One client session (one ``client_id``) with a ComfyUI server at ``server`` (``http://host:port``).

    ``timeout`` is per HTTP request, in seconds.
    """

    def __init__(self, server: str = DEFAULT_SERVER, client_id: str | None = None, timeout: float = 30.0):
        self.server = server.rstrip("/")
        if not self.server.startswith(("http://", "https://")):
            raise JobError(f"server must be an http(s) URL such as {DEFAULT_SERVER}, got {server!r}")
        self.client_id = client_id or uuid.uuid4().hex
        self.timeout = timeout
        self.session = requests.Session()

    # -- HTTP ---------------------------------------------------------------------------------------
    def _request(self, method: str, route: str, **kwargs) -> requests.Response:
        """One HTTP request. Raises :class:`ServerUnavailable` when the server cannot be reached, drops the
        connection, times out, or a proxy in front of it answers :data:`GATEWAY_ERRORS`."""
        try:
            resp = self.session.request(method, self.server + route, timeout=self.timeout, **kwargs)
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:  # refused, reset, cut off
            raise ServerUnavailable(
                f"cannot reach ComfyUI at {self.server} ({exc.__class__.__name__}); is it running? (pass --server)"
            ) from None
        except requests.Timeout:
            raise ServerUnavailable(
                f"ComfyUI at {self.server} did not answer {route} within {self.timeout:.0f} s"
            ) from None
        if resp.status_code in GATEWAY_ERRORS:
            raise ServerUnavailable(
                f"{self.server} answered {route} with HTTP {resp.status_code}: "
                "the ComfyUI behind it is down or overloaded"
            )
        return resp

    def upload_image(self, path: Path | str, subfolder: str = UPLOAD_SUBFOLDER) -> str:
        """Upload a local image into the server's input folder; returns the name to use as an input value."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise JobError(f"cannot read photo {path}: {exc.strerror}") from None
        resp = self._request(
            "POST",
            "/upload/image",
            files={"image": (path.name, data)},
            data={"type": "input", "subfolder": subfolder, "overwrite": "false"},
        )
        if resp.status_code != 200:
            raise HeadlessError(f"uploading {path} failed: HTTP {resp.status_code} {resp.text[:300]}")
        info = resp.json()
        return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else info["name"]

    def queue_prompt(self, workflow: dict) -> str:
        """``POST /prompt``; returns the prompt id. Raises :class:`PromptRejected` on HTTP errors and on a
        non-empty ``node_errors`` even with HTTP 200 (ComfyUI then runs only the valid outputs)."""
        resp = self._request("POST", "/prompt", json={"prompt": workflow, "client_id": self.client_id})
        try:
            body = resp.json()
        except ValueError:
            body = {}
        node_errors = body.get("node_errors") or {}
        if resp.status_code != 200:
            error = body.get("error")
            message = error.get("message", "") if isinstance(error, dict) else str(error or resp.text[:300])
            details = error.get("details") if isinstance(error, dict) else ""
            lines = [
                f"ComfyUI rejected the workflow (HTTP {resp.status_code}): {message}"
                + (f": {details}" if details else "")
            ]
            raise PromptRejected("\n".join(lines + ([format_node_errors(node_errors)] if node_errors else [])))
        if node_errors:
            raise PromptRejected("ComfyUI reported errors in the workflow:\n" + format_node_errors(node_errors))
        if "prompt_id" not in body:
            raise PromptRejected(f"ComfyUI answered /prompt without a prompt_id: {resp.text[:300]}")
        return body["prompt_id"]

    def history(self, prompt_id: str, wait: float = 10.0) -> dict:
        """The ``/history`` entry of a finished prompt (``outputs``, ``status``, ...), polled up to ``wait`` s:
        the server writes it just after it sends ``execution_success``."""
        deadline = time.monotonic() + wait
        while True:
            resp = self._request("GET", f"/history/{prompt_id}")
            entry = resp.json().get(prompt_id) if resp.status_code == 200 else None
            if entry is not None:
                return entry
            if time.monotonic() > deadline:
                raise ExecutionFailed(f"prompt {prompt_id} finished but has no /history entry after {wait:.0f} s")
            time.sleep(0.1)

    def download_images(
        self, entry: dict, out_dir: Path | str, prefix: str = "", include_temp: bool = False
    ) -> list[Path]:
        """Save the images a history entry lists (``outputs[node]["images"]``) to ``out_dir``.

        Only ``type == "output"`` images (SaveImage) unless ``include_temp`` (PreviewImage). File name:
        ``prefix`` + the server's file name. Returns the saved paths in node order.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        saved = []
        for node_output in entry.get("outputs", {}).values():
            for image in node_output.get("images", []):
                if image.get("type", "output") != "output" and not include_temp:
                    continue
                params = {
                    "filename": image["filename"],
                    "subfolder": image.get("subfolder", ""),
                    "type": image.get("type", "output"),
                }
                resp = self._request("GET", "/view", params=params)
                if resp.status_code != 200:
                    raise ExecutionFailed(f"downloading {image['filename']} failed: HTTP {resp.status_code}")
                target = out_dir / f"{prefix}{Path(image['filename']).name}"
                target.write_bytes(resp.content)
                saved.append(target)
        return saved

    # -- websocket ----------------------------------------------------------------------------------
    def connect(self) -> websocket.WebSocket:
        """Open ``/ws?clientId=``; do it *before* queueing so no message of the prompt is missed."""
        url = "ws" + self.server[len("http") :] + f"/ws?clientId={self.client_id}"
        try:
            return websocket.create_connection(url, timeout=self.timeout)
        except (OSError, websocket.WebSocketException) as exc:
            raise ServerUnavailable(f"cannot open the websocket {url}: {exc}") from None

    def wait(self, ws: websocket.WebSocket, prompt_id: str, timeout: float = 3600.0, progress: bool = True) -> None:
        """Follow the websocket until ``prompt_id`` succeeds; a tqdm bar shows sampler ``progress``.

        Raises :class:`ExecutionFailed` on ``execution_error`` / ``execution_interrupted`` or after
        ``timeout`` seconds, :class:`ServerUnavailable` if the connection drops.
        """
        deadline = time.monotonic() + timeout
        bar = None
        try:
            while True:
                ws.settimeout(max(deadline - time.monotonic(), 0.001))
                try:
                    frame = ws.recv()
                except websocket.WebSocketTimeoutException:
                    raise ExecutionFailed(f"prompt {prompt_id} did not finish within {timeout:.0f} s") from None
                except (websocket.WebSocketConnectionClosedException, OSError):
                    frame = ""
                if frame == "":  # websocket-client returns "" for the server's close frame
                    raise ServerUnavailable(
                        f"the ComfyUI websocket of {self.server} closed before the prompt finished"
                    ) from None
                if not isinstance(frame, str):  # binary preview frames
                    continue
                message = json.loads(frame)
                kind, data = message.get("type"), message.get("data") or {}
                if data.get("prompt_id", prompt_id) != prompt_id:
                    continue
                if kind == "progress":
                    if bar is None:  # mininterval=0: draw every message (one per sampler step, so no flood)
                        bar = tqdm(unit="step", disable=not progress, leave=False, desc="sampling", mininterval=0)
                    if bar.total != data.get("max"):
                        bar.reset(total=data.get("max"))
                    bar.update(data.get("value", 0) - bar.n)
                elif kind == "execution_error":
                    raise ExecutionFailed(
                        f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                        f"{data.get('exception_type', 'error')}: {data.get('exception_message', '')}"
                    )
                elif kind == "execution_interrupted":
                    raise ExecutionFailed(
                        f"prompt {prompt_id} was interrupted at node {data.get('node_id')} ({data.get('node_type')})"
                    )
                elif kind == "execution_success" or (
                    kind == "executing" and data.get("node") is None and "prompt_id" in data
                ):  # older servers: queue idle
                    return
        finally:
            if bar is not None:
                bar.close()

    def run(
        self,
        workflow: dict,
        out_dir: Path | str,
        prefix: str = "",
        progress: bool = True,
        timeout: float = 3600.0,
        include_temp: bool = False,
    ) -> list[Path]:
        """Queue an already-filled API workflow, wait for it, save its images. Returns the saved paths."""
        ws = self.connect()
        try:
            prompt_id = self.queue_prompt(validate_api_workflow(workflow))
            self.wait(ws, prompt_id, timeout=timeout, progress=progress)
        finally:
            ws.close()
        entry = self.history(prompt_id)
        status = entry.get("status", {})
        if status.get("status_str") == "error":
            raise ExecutionFailed(f"prompt {prompt_id} ended with an error status: {status.get('messages')}")
        return self.download_images(entry, out_dir, prefix=prefix, include_temp=include_temp)


def run_workflow(
    workflow: dict,
    job: Job | None = None,
    out_dir: Path | str = ".",
    *,
    server: str = DEFAULT_SERVER,
    client: ComfyClient | None = None,
    prefix: str | None = None,
    progress: bool = True,
    timeout: float = 3600.0,
    include_temp: bool = False,
) -> list[Path]:
    """Run one job: upload its photos, fill the API ``workflow`` (see fill.py), queue it, save the images.

    ``prefix`` of the saved names defaults to ``job.name + "_"``. Returns the saved paths. Raises a
    :class:`~.errors.HeadlessError` subclass (its ``exit_code`` says which kind) on any failure.
    """
    client = client or ComfyClient(server)
    job = job or Job()
    fill_workflow(workflow, job, [[p.name for p in person.photos] for person in job.people])  # fail before uploading
    photo_names = [[client.upload_image(p) for p in person.photos] for person in job.people]
    filled = fill_workflow(workflow, job, photo_names)
    if prefix is None:
        prefix = f"{job.name}_" if job.name else ""
    return client.run(filled, out_dir, prefix=prefix, progress=progress, timeout=timeout, include_temp=include_temp)
