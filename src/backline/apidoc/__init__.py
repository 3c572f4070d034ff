"""The OpenAPI document as the server really behaves: problem responses, security, bodies.

`declare.raises(...)` marks a route or a dependency with the problems it can answer;
`build.install(app)` makes the document from those marks, from what every route implies (a
JSON body can be malformed, a signed-in route can be 401), and from FastAPI's own output.
"""
