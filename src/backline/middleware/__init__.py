"""Plain ASGI middleware wrapped around the whole application, outermost first:

`RequestContext` (request ID) -> `AccessLog` (one line and metrics per request) ->
`SecurityHeaders` -> `DeferredCookies` (cookies a page decided before its response existed) ->
`ProblemGuard` (every error body is problem+json) -> CORS ->
`RateLimitMiddleware` (the global per-address limit) -> `Deadline` (504 when a request
outlives its deadline) -> `HeadAsGet` -> FastAPI.

They sit outside FastAPI's own stack (see `backline.app.Backline`), so that responses made by
the framework itself, 500s included, still get a request ID, headers and a log line.
"""
