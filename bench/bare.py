"""The baseline of `bench.hotpaths`: a bare FastAPI app with one constant route, no middleware,
served by plain uvicorn (httptools, no access log). What any FastAPI route costs at least."""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
