"""``elmo serve``: task models and encoders behind an HTTP JSON service.

- :mod:`pipeline.serve.requests`: reading and checking request bodies (one-line errors).
- :mod:`pipeline.serve.batching`: dynamic micro-batching of concurrent requests.
- :mod:`pipeline.serve.models`: what each served directory answers (predict, embed).
- :mod:`pipeline.serve.app`: the routes (Starlette), the page, the OpenAPI description, the server (uvicorn).
"""
