"""The S3 servers the tests run against: moto, a mock, and Ceph's RADOS Gateway, a real one.

A test that touches S3 takes the `s3_server` fixture and runs once against each (ids `moto`
and `radosgw`). Each test gets an empty bucket of its own.

moto starts in a thread for every test, in a second. Ceph takes about 20 s to start, so one
cluster (`scripts/ceph-rgw`, on loopback, objects in memory) serves a whole machine's run:

* `.ci/run` starts it before the tests and names its directory in BACKLINE_TEST_CEPH_DIR;
  the tests use it and leave stopping it to `.ci/run`;
* otherwise the first test that needs it starts it, in a directory the pytest process made at
  start (`pytest_configure`) and handed to its xdist workers through the environment. A file
  lock in that directory lets exactly one worker start the cluster while the others wait, and
  all of them share it; the pytest process that made the directory stops the cluster by its
  pid files when the run ends (`pytest_unconfigure`), after every worker is done. A failure to
  start is written there too, so the other workers skip at once rather than try again.

The radosgw tests are also marked `slow`, so `make unit` runs them in its serial phase: one
process, one cluster. Where Ceph is not installed they skip with a reason (a failure with
BACKLINE_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
from moto.server import ThreadedMotoServer

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ceph-rgw"
STATE_VARIABLE = "BACKLINE_TEST_CEPH_DIR"
REGION = "us-east-1"
START_TIMEOUT = 180


@dataclass(frozen=True)
class S3Server:
    kind: str  # "moto" | "radosgw"
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def client(self, endpoint: str | None = None) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def keys(self) -> list[str]:
        """Every object in the bucket."""
        listed = self.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def objects(self) -> dict[str, bytes]:
        client = self.client()
        return {
            key: client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            for key in self.keys()
        }

    def unfinished_uploads(self) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        listed = self.client().list_multipart_uploads(Bucket=self.bucket)
        return sorted(item["Key"] for item in listed.get("Uploads", []))

    def empty(self) -> None:
        client = self.client()
        for key in self.keys():
            client.delete_object(Bucket=self.bucket, Key=key)
        for upload in client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )


# ----------------------------------------------------------------------------- moto


@contextmanager
def moto_server(port: int, bucket: str) -> Iterator[S3Server]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    httpx.post(f"{url}/moto-api/reset")  # moto keeps its state per process, not per server
    s3 = S3Server("moto", url, bucket, "testing", "testing-secret")
    s3.client().create_bucket(Bucket=bucket)
    try:
        yield s3
    finally:
        server.stop()


# ----------------------------------------------------------------------------- Ceph


def missing_ceph() -> str | None:
    absent = [name for name in ("ceph-mon", "ceph-osd", "radosgw") if shutil.which(name) is None]
    if absent:
        return (
            f"Ceph is not installed ({', '.join(absent)} missing; apt-get install "
            "ceph-mon ceph-osd ceph-mgr radosgw ceph-common)"
        )
    return None


def read_env(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


@dataclass(frozen=True)
class CephCluster:
    """A running cluster started by `scripts/ceph-rgw`, and its first gateway."""

    directory: Path
    endpoint: str
    access_key: str
    secret_key: str

    @classmethod
    def at(cls, directory: Path) -> CephCluster:
        env = read_env(directory / "s3.env")
        return cls(
            directory,
            env["BACKLINE_S3_ENDPOINT_URL"],
            env["AWS_ACCESS_KEY_ID"],
            env["AWS_SECRET_ACCESS_KEY"],
        )

    def bucket(self, name: str) -> S3Server:
        s3 = S3Server("radosgw", self.endpoint, name, self.access_key, self.secret_key)
        s3.client().create_bucket(Bucket=name)
        return s3

    def start_gateway(self, name: str, port: int) -> str:
        """One more radosgw on this cluster (own port, own pid file); its endpoint."""
        run_script("gateway", str(self.directory), name, str(port), timeout=90)
        return f"http://127.0.0.1:{port}"

    def kill_gateway(self, name: str) -> None:
        """The gateway dies at once, as in a crash: SIGKILL, then wait until it is gone."""
        pid_file = self.directory / "run" / f"client.rgw.{name}.pid"
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        pid_file.unlink()
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop_gateway(self, name: str) -> None:
        run_script("stop-gateway", str(self.directory), name, timeout=30)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def run_script(*args: str, timeout: float) -> str:
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/ceph-rgw {args[0]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def make_state_dir() -> Path:
    """Called once per run by the pytest process that owns the workers."""
    return Path(tempfile.mkdtemp(prefix="backline-ceph-"))


def shared_cluster() -> CephCluster | str:
    """The run's cluster, started on first use; or why there is none."""
    named = os.environ.get(STATE_VARIABLE)
    if not named:
        return f"{STATE_VARIABLE} is not set (the test run sets it)"
    directory = Path(named)
    if (directory / "s3.env").exists():
        return CephCluster.at(directory)  # started by .ci/run
    cluster = directory / "cluster"
    with (directory / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker starts it, the others wait here
        failed = directory / "failed"
        if failed.exists():
            return failed.read_text()
        if not (cluster / "s3.env").exists():
            if reason := missing_ceph():
                failed.write_text(reason)
                return reason
            try:
                run_script("start", str(cluster), "0", timeout=START_TIMEOUT)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failed.write_text(f"Ceph did not start: {exc}")
                return failed.read_text()
        return CephCluster.at(cluster)


def stop_shared_cluster(directory: Path) -> None:
    """At the end of the run, by the process that made the directory."""
    if (directory / "cluster").exists():
        subprocess.run([str(SCRIPT), "stop", str(directory / "cluster")], check=False, timeout=60)
    shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def radosgw_bucket(cluster: CephCluster) -> Iterator[S3Server]:
    """An empty bucket of the test's own, emptied and removed afterwards."""
    s3 = cluster.bucket(f"backline-test-{uuid.uuid4().hex[:12]}")
    try:
        yield s3
    finally:
        s3.empty()
        s3.client().delete_bucket(Bucket=s3.bucket)
