"""Rate limits that hold across every app process: Redis when configured, memory otherwise.

policies.py  what is limited: named policies, their limits, keys and failure mode
limiter.py   how: the `limits` library's sliding-window counter on Redis or memory, and what
             to do when Redis is away (fail open or closed per policy, one warning per outage)
clientip.py  who: the client's address, trusting X-Forwarded-For only from listed proxies
deps.py      where: `RateLimit("login")`, the dependency a route declares, and the IETF
             `RateLimit-Policy` / `RateLimit` response headers
"""
