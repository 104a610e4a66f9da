"""HTTP API and the demo page: `ved serve`.

The default model loads once at start; other shipped models load on first use.
Each request is one forward pass for all its images. Torch inference under
no_grad is safe from several threads; the model cache has a lock.
"""
from __future__ import annotations

import base64
import gc
import io
import os
import threading
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from . import captions
from .captions import CaptionError
from .pipeline import DEFAULT_MODEL, ModelError, Pipeline, load, shipped_models
from .report import grid_image

STATIC = Path(__file__).parent / "static"
MAX_CAPTION_CHARS = 256


class GenerateRequest(BaseModel):
    caption: str = Field(max_length=MAX_CAPTION_CHARS)
    n: int = Field(16, ge=1, le=64)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    model: str | None = Field(None, max_length=64, description="a shipped model name (no paths)")


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)  # 28x28: speed over a few bytes
    return buf.getvalue()


def grid(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) -> one row-major mosaic, up to 8 digits a row, blank cells black."""
    cols = min(8, len(images))
    rows = -(-len(images) // cols)
    cells = np.zeros((rows * cols, 28, 28), dtype=np.uint8)
    cells[: len(images)] = images
    return grid_image(cells.reshape(rows, cols, 28, 28), pad=0)


def create_app(model: str | None = None, device: str = "cpu") -> FastAPI:
    app = FastAPI(title="ved", description="Captions to MNIST digits")
    default_name = str(model or DEFAULT_MODEL)
    pipelines: dict[str, Pipeline] = {default_name: load(model, device=device)}
    lock = threading.Lock()

    def pipeline(name: str | None) -> Pipeline:
        name = name or default_name
        with lock:
            if name not in pipelines:
                pipelines[name] = load(name, device=device, allow_paths=False)
            return pipelines[name]

    @app.exception_handler(CaptionError)
    @app.exception_handler(ModelError)
    async def bad_input(request, exc):
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/models")
    def list_models():
        return {"models": shipped_models(), "default": default_name}

    @app.get("/api/parse")
    def parse(caption: str = Query(max_length=MAX_CAPTION_CHARS)):
        return {"caption": caption, "digit": captions.parse(caption)}

    # async: each request is a few ms of torch work, cheaper inline than handed to a thread pool
    @app.post("/api/generate")
    async def generate(request: GenerateRequest, format: str = Query("json", pattern="^(json|png)$")):
        captions.words(request.caption)  # the same one-line message as the CLI, before any work
        try:
            digit = captions.parse(request.caption)
        except CaptionError:
            digit = None  # known words in no known form: the model still draws, the value is unknown
        seed = request.seed if request.seed is not None else int(np.random.default_rng().integers(2**31))
        images = pipeline(request.model).generate([request.caption], request.n, seed)[0]
        if format == "png":
            return Response(png_bytes(grid(images)), media_type="image/png")
        # A plain JSONResponse: FastAPI's encoder would walk the 16 strings again for nothing.
        return JSONResponse({"caption": request.caption, "digit": digit, "n": request.n, "seed": seed,
                             "model": request.model or default_name,
                             "images": [base64.b64encode(png_bytes(im)).decode() for im in images]})

    return app


def app_from_env() -> FastAPI:
    """What each uvicorn worker process builds: the model named in VED_SERVE_MODEL, loaded once."""
    import torch

    torch.set_num_threads(1)  # requests are tiny; extra intra-op threads only contend with the server
    app = create_app(os.environ.get("VED_SERVE_MODEL") or None)
    gc.freeze()  # the loaded model and app stay; collections need not scan them under load
    return app


def run(host: str = "127.0.0.1", port: int = 8000, model: str | None = None, workers: int = 1) -> None:
    import uvicorn

    from .pipeline import resolve_model

    resolve_model(model)  # a bad name fails here, in one line, before any worker starts
    os.environ["VED_SERVE_MODEL"] = model or ""
    print(f"ved demo on http://{host}:{port}/  (model {model or DEFAULT_MODEL}, {workers} worker(s))", flush=True)
    uvicorn.run("ved.serve:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="warning")
