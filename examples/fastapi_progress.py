"""A web page with a live progress bar for one image edit: FastAPI, ProgressRelay and callbacks.

The page uploads an image and a prompt; the app submits a ``qwen-image-edit`` task and sends the
browser to a page whose ``EventSource`` follows the task through the relay. The browser holds a
token good for that one task, never the API key. Callbacks come into the same app.

Run it against the local sandbox, in one command (a sandbox starts in-process):

    pip install -e ".[dev]"   # or: pip install evolink-async fastapi uvicorn python-multipart
    python examples/fastapi_progress.py --sandbox

or against ``evolink sandbox`` running elsewhere, or the real service, with ``EVOLINK_API_KEY``
(and ``EVOLINK_BASE_URL``, ``EVOLINK_FILES_BASE_URL``) set; ``--public-url`` is where the service
can reach this app for callbacks (leave it out to poll). Then open http://127.0.0.1:8000/.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse

import evolink_async as evolink

FORM_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Edit an image</title></head>
<body>
<h1>Edit an image</h1>
<form action="edit" method="post" enctype="multipart/form-data">
  <p><input type="file" name="image" accept="image/png,image/jpeg,image/webp" required></p>
  <p><input type="text" name="prompt" size="60" value="replace the background with a beach at sunset" required></p>
  <p><button type="submit">Edit</button></p>
</form>
</body></html>
"""

# The page reads its token from its own URL and shows server text with textContent only (never
# innerHTML): a task's error message is outside text.
WATCH_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Task __TASK_ID__</title></head>
<body>
<h1>Task <code id="task">__TASK_ID__</code></h1>
<progress id="bar" max="100" value="0"></progress> <span id="percent">0</span> %
<p>Status: <b id="status">connecting</b></p>
<p id="message"></p>
<div id="results"></div>
<script>
const taskId = document.getElementById("task").textContent;
const token = new URLSearchParams(location.search).get("token");
const source = new EventSource("../progress/" + encodeURIComponent(taskId) + "?token=" + encodeURIComponent(token));
let updates = 0;
function show(event) {
  const data = JSON.parse(event.data);
  updates += 1;
  document.body.dataset.updates = String(updates);
  document.getElementById("bar").value = data.progress;
  document.getElementById("percent").textContent = String(data.progress);
  document.getElementById("status").textContent = data.status || data.kind;
  return data;
}
source.addEventListener("progress", show);
source.addEventListener("completed", (event) => {
  const data = show(event);
  for (const url of data.results) {
    const img = document.createElement("img");
    img.src = url; img.width = 256; img.alt = "result";
    document.getElementById("results").appendChild(img);
  }
  document.body.dataset.final = "completed";
  source.close();
});
for (const kind of ["failed", "cancelled", "timed_out"]) {
  source.addEventListener(kind, (event) => {
    const data = show(event);
    document.getElementById("message").textContent = data.error ? data.error.message : kind;
    document.body.dataset.final = kind;
    source.close();
  });
}
source.addEventListener("error", (event) => {
  if (!event.data) return;  // a dropped connection: EventSource reconnects by itself
  const data = JSON.parse(event.data);
  document.getElementById("status").textContent = "error";
  document.getElementById("message").textContent = data.reason + ": " + data.message;
  document.body.dataset.final = "error";
  source.close();
});
</script>
</body></html>
"""


class Late:
    """An ASGI app that forwards to one made at start-up (the relay needs the running client)."""

    def __init__(self, app: FastAPI, name: str) -> None:
        self._app, self._name = app, name

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        target = getattr(self._app.state, self._name, None)
        if target is None:
            raise RuntimeError(f"{self._name} is not running yet")
        await target(scope, receive, send)


def build_app(
    *, sandbox: bool, public_url: str | None, progress_every: float, time_scale: float = 0.3
) -> FastAPI:
    uploads = Path(tempfile.mkdtemp(prefix="evolink-example-"))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            options: dict[str, Any] = {}
            if sandbox:
                from evolink_async.sandbox import Sandbox

                box = await stack.enter_async_context(Sandbox(time_scale=time_scale))
                options = {
                    "api_key": box.api_key,
                    "base_url": box.base_url,
                    "files_base_url": box.files_base_url,
                    "poll_policy": evolink.PollPolicy().scaled(time_scale),  # the policy on the sandbox's clock
                }
            receiver = None
            if public_url:
                # allow_local: only for a sandbox on this machine calling back to 127.0.0.1.
                receiver = evolink.CallbackReceiver(public_url.rstrip("/") + "/evolink-callbacks", allow_local=sandbox)
                app.state.callbacks = receiver.asgi
            client = await stack.enter_async_context(evolink.EvolinkClient(callbacks=receiver, **options))
            relay = await stack.enter_async_context(evolink.ProgressRelay(client, progress_every=progress_every))
            app.state.client, app.state.relay = client, relay.asgi
            app.state.token_for = relay.token_for
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/progress", Late(app, "relay"))
    app.mount("/evolink-callbacks", Late(app, "callbacks"))

    @app.get("/", response_class=HTMLResponse)
    async def form() -> str:
        return FORM_PAGE

    @app.post("/edit")
    async def edit(request: Request, image: UploadFile, prompt: str = Form(...)) -> RedirectResponse:
        suffix = Path(image.filename or "upload.png").suffix.lower() or ".png"
        if suffix not in {".png", ".jpg", ".jpeg", ".webp"}:
            raise HTTPException(400, "PNG, JPEG or WebP only")
        with tempfile.NamedTemporaryFile(dir=uploads, suffix=suffix, delete=False) as file:
            file.write(await image.read())
        try:
            task = await request.app.state.client.images.submit(
                evolink.QwenImageEdit(prompt=prompt, image_urls=[Path(file.name)])
            )
        except evolink.ValidationError as error:
            raise HTTPException(400, str(error)) from None
        token = request.app.state.token_for(task)
        return RedirectResponse(f"watch/{task.id}?token={token}", status_code=303)

    @app.get("/watch/{task_id}", response_class=HTMLResponse)
    async def watch(task_id: str) -> str:
        return WATCH_PAGE.replace("__TASK_ID__", html.escape(task_id))

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sandbox", action="store_true", help="start a local sandbox in-process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0: any free port (the line printed says which)")
    parser.add_argument("--public-url", help="this app's URL as the service sees it (turns callbacks on)")
    parser.add_argument("--no-callbacks", action="store_true", help="with --sandbox: poll instead")
    parser.add_argument("--progress-every", type=float, default=1.0, help="seconds between progress queries")
    parser.add_argument("--time-scale", type=float, default=0.3, help="with --sandbox: its clock (1.0: real time)")
    args = parser.parse_args()
    # Bound here, before anything else starts: the port is known (``--port 0`` included) and cannot be
    # taken meanwhile (a sandbox's own free port, another program) between choosing it and serving.
    listening = socket.create_server((args.host, args.port))
    host, port = listening.getsockname()[:2]
    public_url = args.public_url
    if args.sandbox and public_url is None and not args.no_callbacks:
        public_url = f"http://{host}:{port}"
    app = build_app(
        sandbox=args.sandbox, public_url=public_url, progress_every=args.progress_every, time_scale=args.time_scale
    )
    print(f"open http://{host}:{port}/", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening])


if __name__ == "__main__":
    main()
