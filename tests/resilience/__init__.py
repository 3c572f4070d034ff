"""Faults and crashes, each against `backline serve` / `backline worker` processes over real
sockets, every test marked `slow` and bounded in time. What proves each promise:

* PostgreSQL connections terminated mid-load: `test_postgres` (503 problems while it lasts,
  whole writes, recovery without a restart); `tests/test_db.py` (an idle pooled connection the
  server dropped is replaced unseen; statements time out).
* Redis stopped: `test_redis` (every policy served, revocation, recovery with an empty Redis);
  `tests/ratelimit/test_limiter.py` and `test_http.py` (the limiter's breaker, one warning per
  outage, in process); `tests/accounts/test_revocation.py` (a revocation that cannot be
  published changes nothing; markers restored after Redis lost its data).
* The S3 endpoint stopped mid-upload: `test_s3` (moto, served); `tests/tracks/test_faults.py`
  (a store down from the start, a client gone mid-body, a stalled body);
  `tests/tracks/test_radosgw_faults.py` (radosgw killed during a streamed, a direct and a
  multipart upload).
* SMTP down: `test_smtp` (served, with `backline worker`); `tests/email/test_smtp.py` (down
  mid-run then back, each message once; retries keep their Message-ID).
* A worker killed mid-delivery: `test_crashes` (SMTP holding the batch's answers until the
  kill); `tests/email/test_fault.py` (two workers, one killed while 300 messages go out).
* An app process killed mid-upload: `test_crashes`.
"""
