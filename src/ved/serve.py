"""HTTP API and the demo page: `ved serve`.

The default model loads once per worker at start; other shipped models load on first use.
Generate requests that arrive together are drawn in one forward pass (`Batcher`): each keeps
its own seed, so it gets the images it would get alone. Past MAX_WAITING queued requests the
server answers 503 with Retry-After instead of queueing without end.

A client's mistake gets a 4xx with one short JSON line, never a 5xx: request bodies are read
up to a limit (413 past it), JSON values must have their exact types, and no message repeats
more than ~100 characters of input. Only the Host names the server was bound for are answered
(a page elsewhere cannot reach a loopback server by DNS rebinding), and every response carries a
strict Content-Security-Policy. See docs/http-api.md.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import ipaddress
import json
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import captions, card, http_guard
from . import config as configs
from .captions import CaptionError
from .errors import VedError, shown
from .files import parse_json
from .http_guard import security_headers
from .images import png_bytes, wrapped_grid
from .pipeline import (
    DEFAULT_MODEL,
    DEFAULT_N,
    WEIGHTS_DIR,
    ArgumentError,
    ModelError,
    Pipeline,
    StrictRefusal,
    load,
    shipped_models,
    trained_family,
)

STATIC = Path(__file__).parent / "static"
MAX_CAPTION_CHARS = 256
MAX_BODY_BYTES = 64 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# a Host header: a name or an IPv4 address, or an IPv6 address in brackets; then an optional port
HOST = re.compile(rb"(?:\[(?P<v6>[0-9A-Fa-f:.]{2,45})\]|(?P<name>[A-Za-z0-9.-]{1,253}))(?::[0-9]{1,5})?")


BATCH_IMAGES = 1024  # images per forward pass, at most; a request's n images always go in one
BATCH_WINDOW_S = 0.002  # how long the first request of a batch waits for others to join it
MAX_WAITING = 256  # queued generate requests per worker; past this, 503


class Busy(Exception):
    """The batcher's queue is full."""


@dataclass
class Job:
    """A request waiting in the queue; `caption` None: a same-style request of `n` rows."""

    pipe: Pipeline
    caption: str | None
    n: int
    seed: int
    settings: dict
    future: asyncio.Future
    prompt: list[str] | None = None  # a same-style request's captions (None: the ten digits)

    @property
    def images(self) -> int:
        return self.n * ((len(self.prompt) if self.prompt else 10) if self.caption is None else 1)

    @property
    def group(self) -> tuple:
        """Jobs of one group are drawn in one pass: same model, n and settings; same-style ones alone."""
        if self.caption is None:
            return (id(self),)
        return (id(self.pipe), self.n, tuple(sorted(self.settings.items())))


class Batcher:
    """Dynamic batching on the event loop: requests queue, and one task draws each group of
    requests for the same model and n in one pipeline call with one seed per caption (a list of
    generators), so a request's images do not depend on the others in its batch, up to float
    rounding (docs/http-api.md). The forward pass runs on the loop, as each request's did before:
    while it runs, new requests wait in the socket buffers and join the next batch."""

    def __init__(self, max_images=BATCH_IMAGES, window=BATCH_WINDOW_S, max_waiting=MAX_WAITING):
        self.max_images, self.window, self.max_waiting = max_images, window, max_waiting
        self.waiting: list[Job] = []
        self.task: asyncio.Task | None = None

    async def draw(
        self, pipe: Pipeline, caption: str, n: int, seed: int, settings: dict
    ) -> tuple[np.ndarray, int]:
        """The request's (n, 28, 28) images, and how many requests shared their forward pass."""
        return await self._queue(pipe, caption, n, seed, settings)

    async def same_style(
        self, pipe: Pipeline, n: int, seed: int, settings: dict, prompt: list[str] | None = None
    ) -> np.ndarray:
        """(n, 10, 28, 28), or (n, captions, 28, w) for `prompt`: a same-style request waits in the
        same queue, under the same limit."""
        return (await self._queue(pipe, None, n, seed, settings, prompt))[0]

    async def _queue(self, pipe, caption, n, seed, settings, prompt=None):
        if len(self.waiting) >= self.max_waiting:
            raise Busy
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(Job(pipe, caption, n, seed, settings, future, prompt))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run())
        return await future

    async def run(self) -> None:
        while self.waiting:
            await asyncio.sleep(self.window)  # requests that arrive together join this batch
            batch, images = [], 0
            while self.waiting and (not batch or images + self.waiting[0].images <= self.max_images):
                batch.append(self.waiting.pop(0))
                images += batch[-1].images
            groups: dict[tuple, list[Job]] = {}
            for job in batch:
                groups.setdefault(job.group, []).append(job)
            for jobs in groups.values():
                self.answer(jobs)

    @staticmethod
    def answer(jobs: list[Job]) -> None:
        first = jobs[0]
        try:
            with warnings.catch_warnings():  # each request said its own warning already
                warnings.simplefilter("ignore")
                if first.caption is None:
                    drawn = [
                        first.pipe.same_style(
                            first.n, generator=first.seed, prompt=first.prompt, **first.settings
                        )
                    ]
                else:
                    drawn = first.pipe(
                        [j.caption for j in jobs],
                        first.n,
                        generator=[j.seed for j in jobs],
                        output_type="mnist",
                        return_dict=False,
                        strict=False,
                        **first.settings,
                    )[0]
            results = [(j.future, (one_cell_if_blank(drawn[i]), len(jobs)), None) for i, j in enumerate(jobs)]
        except Exception as e:  # the requests' own error handlers answer it
            results = [(j.future, None, e) for j in jobs]
        for future, images, err in results:
            if not future.done():  # a client that hung up cancelled its future
                future.set_exception(err) if err else future.set_result(images)


def one_cell_if_blank(images: np.ndarray) -> np.ndarray:
    """A request's strips as it alone would get them: a numbers model draws a one-digit caption in
    one cell, and in a batch beside two-digit ones its strips come with a blank first cell (a drawn
    cell always has ink)."""
    return images[..., 28:] if images.shape[-1] > 28 and not images[..., :28].any() else images


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "3" is not 3, true is not 1

    caption: str = Field(max_length=MAX_CAPTION_CHARS)
    n: int = Field(DEFAULT_N, ge=1, le=64)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    model: str | None = Field(None, max_length=64, description="a shipped model name (no paths)")
    strict: bool = Field(True, description="false: also draw captions outside the model's grammar")
    settings: dict[str, int | float] | None = Field(
        None, max_length=8, description='the model\'s sampling settings, e.g. {"temperature": 0.8}'
    )

    @field_validator("caption", "model")
    @classmethod
    def text_only(cls, text: str | None) -> str | None:
        try:
            text is None or text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800") is valid JSON but no text
            raise ValueError("must be valid Unicode text") from None
        return text


class SameStyleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    n: int = Field(1, ge=1, le=8)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    model: str | None = Field(None, max_length=64, description="a shipped model name (no paths)")
    settings: dict[str, int | float] | None = Field(None, max_length=8, description="as in /api/generate")
    captions: list[str] | None = Field(
        None, min_length=1, max_length=10, description="written in each row's hand (default: the ten digits)"
    )

    @field_validator("model")
    @classmethod
    def text_only(cls, text: str | None) -> str | None:
        return GenerateRequest.text_only(text)

    @field_validator("captions")
    @classmethod
    def texts_only(cls, texts: list[str] | None) -> list[str] | None:
        for text in texts or []:
            if len(text) > MAX_CAPTION_CHARS:
                raise ValueError(f"a caption of at most {MAX_CAPTION_CHARS} characters")
            GenerateRequest.text_only(text)
        return texts


class SafeJSON(JSONResponse):
    """ASCII JSON that cannot fail to encode: no surrogate or NaN can turn an answer into a 500."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def error(status: int, detail: str, headers: dict | None = None, **extra) -> SafeJSON:
    return SafeJSON(status_code=status, content={"detail": shown(detail, 300), **extra}, headers=headers)


def too_large() -> SafeJSON:
    # The rest of the body stays unread, so this connection cannot carry another request: close it.
    return error(413, f"request body over {MAX_BODY_BYTES // 1024} KiB", headers={"Connection": "close"})


def validation_message(errors) -> str:
    """One line from pydantic's errors: the first field and what it needs, never the input."""
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{shown(where, 40)}: {message}{more}"


class Guard:
    """Pure ASGI, before anything else reads the request: Host check, body limit, security headers."""

    def __init__(self, app, allowed_hosts: list[str], frame_ancestors: str = ""):
        self.app, self.allowed = app, {_host_key(h) for h in allowed_hosts}
        self.headers = security_headers(frame_ancestors)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        headers = dict(scope["headers"])
        if not self.host_allowed([value for name, value in scope["headers"] if name == b"host"]):
            return await error(
                400,
                "unexpected Host header; the server answers only the names it was started "
                "for (ved serve --allow-host NAME)",
            )(scope, receive, send_with_headers)
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return await too_large()(scope, receive, send_with_headers)
        body, more = bytearray(), True
        while more:  # read whole, but never more than the limit, before the app parses it
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY_BYTES:
                return await too_large()(scope, receive, send_with_headers)
        if scope["method"] == "POST" and body and b"json" in headers.get(b"content-type", b"json"):
            try:  # what FastAPI would answer 400 to (deep nesting, a 5,000-digit integer, bad UTF-8)
                parse_json(bytes(body), "body")
            except VedError as e:
                return await error(422, str(e))(scope, receive, send_with_headers)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send_with_headers)

    def host_allowed(self, hosts: list[bytes]) -> bool:
        """Exactly one Host header, of a strict form (no user info, no brackets around a name), naming
        an allowed host."""
        match = HOST.fullmatch(hosts[0]) if len(hosts) == 1 else None
        if match is None:
            return False
        if match["v6"] is not None:
            try:
                return str(ipaddress.IPv6Address(match["v6"].decode())) in self.allowed
            except ValueError:
                return False
        return match["name"].decode().lower() in self.allowed


def settings_of(config: dict) -> dict:
    """A model's sampling settings for the page's sliders: default, bounds, and whole or not."""
    cls = configs.model_class(config["model"])
    kinds = cls.sample_defaults()
    return {
        key: {
            "default": value,
            "low": cls.setting_bounds[key][0],
            "high": cls.setting_bounds[key][1],
            "whole": isinstance(kinds[key], int),
        }
        for key, value in config["sample"].items()
    }


def _host_key(name: str) -> str:
    """A host name lower-cased, an IPv6 address in its one compressed spelling."""
    name = name.strip("[]").lower()
    try:
        return str(ipaddress.IPv6Address(name))
    except ValueError:
        return name


def create_app(
    model: str | None = None,
    device: str = "cpu",
    allowed_hosts: list[str] | None = None,
    max_waiting: int = MAX_WAITING,
    precision: str = "fp32",
    frame_ancestors: str = "",
):
    """The FastAPI app behind its Guard (an ASGI app too)."""
    app = FastAPI(
        title="ved",
        description="Captions to MNIST digits",
        docs_url=None,
        redoc_url=None,
        default_response_class=SafeJSON,
    )  # /docs would fetch Swagger UI from a CDN: off
    default_name = str(model or DEFAULT_MODEL)
    pipelines: dict[str, Pipeline] = {default_name: load(model, device=device, precision=precision)}
    lock = threading.Lock()

    def pipeline(name: str | None) -> Pipeline:
        name = name or default_name
        with lock:
            if name not in pipelines:
                pipelines[name] = load(name, device=device, allow_paths=False, precision=precision)
            return pipelines[name]

    add_error_handlers(app)
    add_page_routes(app)
    add_model_routes(app, pipelines[default_name], default_name)
    add_drawing_routes(app, pipeline, Batcher(max_waiting=max_waiting), default_name)
    return Guard(app, [*LOOPBACK_HOSTS, *(allowed_hosts or [])], frame_ancestors)


def add_error_handlers(app: FastAPI) -> None:
    """A client's mistake as a 4xx with one short line."""

    @app.exception_handler(StrictRefusal)
    async def refused(request, exc):
        return error(400, str(exc), strict_refusal=True)

    @app.exception_handler(CaptionError)
    @app.exception_handler(ModelError)
    async def bad_input(request, exc):
        return error(400, str(exc))

    @app.exception_handler(ArgumentError)
    async def out_of_bounds(request, exc):
        return error(422, f"settings: {exc}")

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        return error(422, validation_message(exc.errors()))


def add_page_routes(app: FastAPI) -> None:
    """The page and its two files (no external assets)."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.api_route("/app.js", methods=["GET", "HEAD"], include_in_schema=False)
    def script():
        return FileResponse(STATIC / "app.js", media_type="text/javascript")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)  # no icon: a browser's request for one is not an error

    @app.api_route("/style.css", methods=["GET", "HEAD"], include_in_schema=False)
    def style():
        return FileResponse(STATIC / "style.css", media_type="text/css")


def add_model_routes(app: FastAPI, default: Pipeline, default_name: str) -> None:
    """What the server can draw with: the models, their settings and cards (read once: the shipped
    models do not change while the server runs)."""
    served = {name: configs.of_folder(WEIGHTS_DIR / name) for name in shipped_models()}
    served.setdefault(default_name, default.config)
    families = {name: trained_family(config) for name, config in served.items()}
    settings = {name: settings_of(config) for name, config in served.items()}
    cards = {name: card.model_card(config, name) for name, config in served.items()}

    @app.get("/api/models")
    def list_models():
        return {
            "models": list(families),
            "default": default_name,
            "families": families,
            "settings": settings,
            "precision": default.precision,
        }

    @app.api_route("/models/{name}/card", methods=["GET", "HEAD"], include_in_schema=False)
    def model_card(name: str):
        """The model's card (README.md of its folder, with the Hub's metadata) as plain text."""
        if name not in cards:
            return error(404, f"no model '{shown(name, 60)}' here; see /api/models")
        return Response(cards[name], media_type="text/plain; charset=utf-8")


def add_drawing_routes(app: FastAPI, pipeline, batcher: Batcher, default_name: str) -> None:
    """Generate, same-style and parse; `pipeline(name)` gives a model's pipeline, loaded once."""
    app.state.batcher = batcher

    @app.post("/api/same-style")
    async def same_style(request: SameStyleRequest):
        """Same handwriting, every digit: `n` rows of the ten digits (or of `captions`, a numbers
        model's strips among them), each row one style."""
        pipe = pipeline(request.model)
        seed = request.seed if request.seed is not None else int(np.random.default_rng().integers(2**31))
        settings = pipe.resolve_settings(request.settings or {})  # 422 before it queues
        prompt = pipe.check(request.captions)[0] if request.captions else None  # 400 before it queues
        try:
            rows = await batcher.same_style(pipe, request.n, seed, settings, prompt)
        except Busy:
            return error(503, "the server is busy; retry in a moment", headers={"Retry-After": "1"})
        images = [[base64.b64encode(png_bytes(one_cell_if_blank(im))).decode() for im in row] for row in rows]
        return SafeJSON(
            {"n": request.n, "seed": seed, "model": request.model or default_name, "images": images}
        )

    @app.get("/api/parse")
    def parse(
        caption: str = Query(max_length=MAX_CAPTION_CHARS), model: str | None = Query(None, max_length=64)
    ):
        """The caption's value under the grammar: a digit, or for a model that draws numbers past
        nine (`model`, default the server's), a number up to captions.MAX_NUMBER."""
        numbers = pipeline(model).numbers
        return {"caption": caption, "digit": captions.check_caption(caption, None, numbers=numbers)}

    # async: the batcher draws on the event loop, which is cheaper than a thread pool for a few ms
    @app.post("/api/generate")
    async def generate(request: GenerateRequest, format: str = Query("json", pattern="^(json|png)$")):
        pipe = pipeline(request.model)
        try:
            _, loose = pipe.check([request.caption], request.strict)
        except StrictRefusal as e:
            raise StrictRefusal(f'{e}; send "strict": false to draw it anyway') from None
        warning = f"drawn outside the model's grammar (strict: false): {loose[0][1]}" if loose else None
        value = captions.number if pipe.numbers else captions.parse
        digit = None if loose else value(request.caption)  # a number past nine for a numbers model
        seed = request.seed if request.seed is not None else int(np.random.default_rng().integers(2**31))
        settings = pipe.resolve_settings(request.settings or {})  # 422 before it queues
        try:
            images, together = await batcher.draw(pipe, request.caption, request.n, seed, settings)
        except Busy:
            return error(503, "the server is busy; retry in a moment", headers={"Retry-After": "1"})
        headers = {"X-Ved-Batched": str(together)}  # requests drawn in the same forward pass
        if format == "png":
            if warning:
                headers["X-Ved-Warning"] = warning.encode("ascii", "backslashreplace").decode()
            return Response(png_bytes(wrapped_grid(images)), media_type="image/png", headers=headers)
        body = {
            "caption": request.caption,
            "digit": digit,
            "n": request.n,
            "seed": seed,
            "model": request.model or default_name,
            "strict": request.strict,
            "images": [base64.b64encode(png_bytes(im)).decode() for im in images],
        }
        if warning:
            body["warning"] = warning
        return SafeJSON(body, headers=headers)


def app_from_env():
    """What each uvicorn worker process builds: the model named in VED_SERVE_MODEL, loaded once."""
    import torch

    torch.set_num_threads(1)  # requests are tiny; extra intra-op threads only contend with the server
    hosts = [h for h in os.environ.get("VED_SERVE_HOSTS", "").split(",") if h]
    queue = int(os.environ.get("VED_SERVE_QUEUE") or MAX_WAITING)
    app = create_app(
        os.environ.get("VED_SERVE_MODEL") or None,
        allowed_hosts=hosts,
        max_waiting=queue,
        precision=os.environ.get("VED_SERVE_PRECISION") or "fp32",
        frame_ancestors=os.environ.get("VED_SERVE_FRAME_ANCESTORS", ""),
    )
    gc.freeze()  # the loaded model and app stay; collections need not scan them under load
    return app


class ServeError(VedError):
    """`ved serve` cannot start as asked; one line."""


def check_port_free(host: str, port: int) -> None:
    """A busy port is one line before anything says the demo is up (uvicorn would say it after)."""
    import socket

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(infos[0][4])
    except OSError as e:
        raise ServeError(
            f"--host {shown(host, 60)} --port {port}: cannot listen there ({e.strerror or e}); "
            "choose another --port"
        ) from None


def run(
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | None = None,
    workers: int = 1,
    allowed_hosts: list[str] | None = None,
    queue: int = MAX_WAITING,
    precision: str = "fp32",
    client_connections: int = http_guard.CLIENT_CONNECTIONS,
    request_seconds: int = http_guard.REQUEST_SECONDS,
    frame_ancestors: list[str] | None = None,
) -> None:
    import uvicorn

    load(model)  # a bad name or a broken folder fails here, in one line, before any worker starts
    check_port_free(host, port)
    hosts = list(allowed_hosts or [])
    if host not in ("0.0.0.0", "::", ""):
        hosts.append(host)
    elif not allowed_hosts:
        print(
            "ved serve: on all interfaces, but only loopback Host names are answered; add --allow-host NAME "
            "for each name clients use",
            flush=True,
        )
    os.environ["VED_SERVE_MODEL"] = model or ""
    os.environ["VED_SERVE_HOSTS"] = ",".join(hosts)
    os.environ["VED_SERVE_QUEUE"] = str(queue)
    os.environ["VED_SERVE_PRECISION"] = precision
    os.environ["VED_SERVE_CLIENT_CONNECTIONS"] = str(client_connections)
    os.environ["VED_SERVE_REQUEST_SECONDS"] = str(request_seconds)
    os.environ["VED_SERVE_FRAME_ANCESTORS"] = " ".join(frame_ancestors or [])
    print(
        f"ved demo on http://{host}:{port}/  (model {model or DEFAULT_MODEL}, {workers} worker(s))",
        flush=True,
    )
    uvicorn.run(
        "ved.serve:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        http=http_guard.GuardedHttpTools,  # a deadline for each request, a cap per client (http_guard.py)
    )
