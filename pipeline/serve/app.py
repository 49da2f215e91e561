"""The HTTP service: routes on Starlette (a small, well-kept ASGI toolkit), served by uvicorn
(the reference ASGI server: HTTP/1.1 keep-alive, graceful shutdown on SIGTERM).

====================  ===========================================================================
``POST /predict``     task models: ``{"texts": [...]}`` (or ``"pairs"``) → ``{"predictions": [...]}``
``POST /embed``       encoders: ``{"texts": [...], "layers"|"mix", "pool"}`` → ``{"embeddings": [...]}``
``GET /health``       the process is up
``GET /ready``        the models are loaded and the service is not shutting down (else 503)
``GET /metadata``     each model: kind, task, labels, versions, the model card's first lines
``GET /openapi.json`` the API's description
``GET /``             a page to try a model by hand
====================  ===========================================================================

Every error is ``{"error": "<one line>"}`` with a 4xx/5xx status; the service keeps serving.
On SIGTERM it stops accepting connections, answers every request already accepted, then exits.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from pipeline.config import ServeConfig
from pipeline.errors import PipelineError
from pipeline.serve.batching import MicroBatcher, QueueFull
from pipeline.serve.models import Served, load_served
from pipeline.serve.page import PAGE
from pipeline.serve.requests import RequestError, parse_body
from pipeline.tasks.examples import example_length


class Service:
    """The served models, their batchers, the bounds, and whether it is shutting down."""

    def __init__(self, served: dict[str, Served], cfg: ServeConfig, log=print):
        self.served, self.cfg, self.log = served, cfg, log
        import torch

        # the model calls get every core but one; the event loop (HTTP, JSON) keeps one. Measured on
        # 2 cores (bench/serve_load.py, concurrency 32): 1 model thread 417 texts/s, 2 threads 109
        threads = max(1, torch.get_num_threads() - 1)
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="model", initializer=torch.set_num_threads, initargs=(threads,)
        )
        self.batchers: dict[str, MicroBatcher] = {}
        self.draining = False
        self.ready = False

    async def start(self) -> None:
        for name, s in self.served.items():
            b = MicroBatcher(s.run, self.executor, self.cfg.max_queue, self.cfg.max_wait_ms, self.cfg.batch_tokens)
            b.start()
            self.batchers[name] = b
        self.ready = True

    async def stop(self) -> None:
        self.draining = True
        await asyncio.gather(*(b.drain() for b in self.batchers.values()))
        self.executor.shutdown(wait=True)

    def model_for(self, data: dict, route: str) -> Served:
        """The served model a request names (``model``), or the only one on ``route``."""
        on_route = [s for s in self.served.values() if s.route == route]
        name = data.get("model")
        if name is None:
            if len(on_route) == 1:
                return on_route[0]
            if not on_route:
                raise RequestError(404, f"no model here answers /{route} (served: {self.describe()})")
            raise RequestError(422, f"several models answer /{route}: name one with 'model' ({self.describe()})")
        if not isinstance(name, str) or name not in self.served:
            raise RequestError(404, f"model: no served model named {name!r} (served: {self.describe()})")
        s = self.served[name]
        if s.route != route:
            raise RequestError(422, f"model {name!r} is {s.info['kind']}: it answers /{s.route}, not /{route}")
        return s

    def describe(self) -> str:
        return ", ".join(f"{n} (/{s.route})" for n, s in self.served.items())

    async def answer(self, request: Request, route: str) -> dict:
        if self.draining:
            raise RequestError(503, "the service is shutting down")
        data = parse_body(await read_body(request, self.cfg.max_body_bytes))
        served = self.model_for(data, route)
        examples = served.read(data, self.cfg)
        try:
            results = await self.batchers[served.name].submit(examples, [example_length(e) for e in examples])
        except QueueFull as e:
            raise RequestError(503, f"busy: {e}; retry later") from None
        except PipelineError as e:
            raise RequestError(422, str(e)) from None
        return {"model": served.name, **served.answer(data, results)}


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused past ``limit`` bytes before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise RequestError(400, f"Content-Length is not a number: {declared[:40]!r}")
    if declared is not None and int(declared) > limit:
        if int(declared) <= DRAINED_BYTES:  # read and dropped, so the client, still sending, gets the answer
            async for _ in request.stream():
                pass
        raise RequestError(413, f"the body is {int(declared):,} bytes, over the bound of {limit:,} (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is over the bound of {limit:,} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


# a body over the bound but under this many bytes is read (not kept) before the 413, so a client that
# sends it whole reads the answer; a larger one gets the answer at once, and its connection is closed
DRAINED_BYTES = 16 << 20


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def build_app(service: Service) -> Starlette:
    async def predict(request: Request) -> Response:
        return JSONResponse(await service.answer(request, "predict"))

    async def embed(request: Request) -> Response:
        return JSONResponse(await service.answer(request, "embed"))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        if service.draining or not service.ready:
            return error(503, "shutting down" if service.draining else "loading")
        return JSONResponse({"status": "ready", "models": list(service.served)})

    async def metadata(request: Request) -> Response:
        counts = {n: {"queued": b.pending, "batches": b.batches, "texts": b.texts} for n, b in service.batchers.items()}
        models = [s.metadata() | counts[n] for n, s in service.served.items()]
        return JSONResponse({"models": models, "bounds": bounds_of(service.cfg)})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_spec(service))

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    @asynccontextmanager
    async def lifespan(app):
        await service.start()
        yield
        await service.stop()

    routes = [
        Route("/predict", predict, methods=["POST"]),
        Route("/embed", embed, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metadata", metadata, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/", page, methods=["GET"]),
    ]
    handlers = {RequestError: _request_error, HTTPException: _http_error, ClientDisconnect: _gone, Exception: _internal}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)  # type: ignore[arg-type]
    app.add_middleware(RequestLog, log=service.log)
    return app


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return error(exc.status, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    what = {404: f"no such path: {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    return error(exc.status_code, what.get(exc.status_code, str(exc.detail)))


async def _gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # the client went away mid-request: nobody reads this


async def _internal(request: Request, exc: Exception) -> Response:
    print(f"error: {request.method} {request.url.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return error(500, f"internal error ({type(exc).__name__}); the service logged it and keeps serving")


class RequestLog:
    """One line per request: method, path, status, latency (pure ASGI: the body streams through)."""

    def __init__(self, app, log=print):
        self.app, self.log = app, log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [0]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            ms = (time.perf_counter() - start) * 1000
            self.log(f"{scope['method']} {scope['path']} {status[0]} {ms:.1f} ms")


def bounds_of(cfg: ServeConfig) -> dict:
    keys = ("max_body_bytes", "max_texts", "max_chars", "max_tokens", "max_queue", "max_embed_values")
    return {k: getattr(cfg, k) for k in keys} | {"max_wait_ms": cfg.max_wait_ms, "batch_tokens": cfg.batch_tokens}


def openapi_spec(service: Service) -> dict:
    """The OpenAPI 3.1 description of the routes and their bodies."""
    text = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    err = {
        "description": "a one-line error",
        "content": _json({"type": "object", "properties": {"error": {"type": "string"}}}),
    }
    errors = {str(s): err for s in (400, 404, 413, 422, 503)}

    def post(summary: str, body: dict, answer: str) -> dict:
        ok = {"description": answer, "content": _json({"type": "object"})}
        return {"post": {"summary": summary, "requestBody": {"required": True, "content": _json(body)},
                         "responses": {"200": ok, **errors}}}  # fmt: skip

    def get(summary: str) -> dict:
        return {"get": {"summary": summary, "responses": {"200": {"description": summary}}}}

    texts = {"type": "array", "items": text, "maxItems": service.cfg.max_texts}
    pairs = {"type": "array", "items": {"type": "array", "items": text, "minItems": 2, "maxItems": 2}}
    predict_body = {"type": "object", "properties": {"model": {"type": "string"}, "texts": texts, "pairs": pairs}}
    layers = {"oneOf": [{"enum": ["all", "top", "average"]}, {"type": "array", "items": {"type": "integer"}}]}
    embed_body = {
        "type": "object",
        "required": ["texts"],
        "properties": {
            "model": {"type": "string"},
            "texts": texts,
            "layers": layers,
            "mix": {"type": "array", "items": {"type": "number"}},
            "pool": {"enum": ["none", "mean", "max"]},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "elmo-pipeline serve", "version": "1", "description": f"models: {service.describe()}"},
        "paths": {
            "/predict": post("predictions of a task model", predict_body, "{model, predictions: [record per text]}"),
            "/embed": post("vectors of an encoder", embed_body, "{model, embeddings: [array per text]}"),
            "/health": get("the process is up"),
            "/ready": get("ready to answer (503 while loading or shutting down)"),
            "/metadata": get("the served models and the bounds"),
            "/": get("a page to try the models"),
        },
    }


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def serve(directories: list[str], cfg: ServeConfig, log=print) -> None:
    """Load ``directories`` and serve them until SIGTERM/SIGINT (answering what was accepted)."""
    cfg.validate()
    served = load_served(directories, log)
    for s in served.values():  # the first call sets up lazily (caches, threads): not a user's request
        s.run([(["warm"], ["up"])] if getattr(s.model, "pairs", False) else [["warm", "up"]])
    service = Service(served, cfg, log)
    config = uvicorn.Config(build_app(service), host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=60, lifespan="on")  # fmt: skip
    DrainingServer(config, service).run()


class DrainingServer(uvicorn.Server):
    """uvicorn's server that marks the service as shutting down (``/ready`` 503, new requests
    refused) the moment a signal arrives, and says where it listens once it does."""

    def __init__(self, config: uvicorn.Config, service: Service):
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig, frame) -> None:
        self.service.draining = True
        super().handle_exit(sig, frame)

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                self.service.log(f"serving {', '.join(self.service.served)} at http://{host}:{port} (Ctrl-C stops)")
