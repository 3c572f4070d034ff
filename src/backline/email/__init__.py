"""Transactional email through an outbox: never lost, never making a request wait.

A change that causes an email writes an `email_outbox` row in its own transaction
(`service.enqueue`); a worker (`worker.Worker`) delivers rows through the configured backend
with retries, exponential backoff and jitter for about a day, then marks a row dead with its
last error. Delivery is at-least-once; each message carries a stable idempotency key (Resend's
`Idempotency-Key`, a fixed SMTP `Message-ID`) so a retry after a crash is deduplicated by
providers that do so.
"""
