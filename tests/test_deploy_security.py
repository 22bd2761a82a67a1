"""scripts/deploy_local.sh is secure by default: the SuperLink speaks TLS only (with a certificate from
the run's own CA), and a SuperNode whose key was not registered, or that has no key, is refused
(Flower 1.41's ``--enable-supernode-auth`` + ``flwr supernode register``), while the run goes on."""

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import procs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OVERRIDES = ["dataset=synthetic", "dataset.rows=600", "stage1.k_max=20", "stage2=none", "progress=false"]


def _read_until(proc: subprocess.Popen, prefix: str, timeout: float = 300) -> list[str]:
    """Lines of ``proc``'s stdout up to and including the first that starts with ``prefix``."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"deploy_local.sh ended before '{prefix}': {lines} {proc.stderr.read()[-2000:]}")
        lines.append(line.rstrip("\n"))
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no '{prefix}' within {timeout} s: {lines}")


def _supernode(port: int, log: Path, *args: str) -> tuple[int, str]:
    """A SuperNode that tries to join the deployment: its exit status and log. (Output goes to a file:
    its detached flower-superexec child keeps inherited pipes open long after the node exits; that
    child is stopped here too.)"""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    own = f"127.0.0.1:{_free_port()}"
    cmd = [str(BIN / "flower-supernode"), "--superlink", f"127.0.0.1:{port}", "--port", own.split(":")[1],
           "--max-retries", "2", "--max-wait-time", "20", "--node-config", "partition-id=0 num-partitions=2", *args]
    with open(log, "w") as f:
        status = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=120).returncode
    procs.stop(procs.leftovers(own))
    return status, log.read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_local_deployment_speaks_tls_and_refuses_unregistered_supernodes(tmp_path):
    out, hold = tmp_path / "out", tmp_path / "hold"
    hold.touch()
    env = {**os.environ, "OUT_DIR": str(out), "PYTHON": sys.executable, "FEDFAIR_DEPLOY_HOLD": str(hold)}
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "deploy_local.sh"), "2", *OVERRIDES], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    work = str(out)  # replaced by the private dir the script announces
    try:
        lines = _read_until(proc, "holding: ")
        match = re.match(r"deployment: superlink 127\.0\.0\.1:(\d+), TLS \(CA (\S+)\), "
                         r"SuperNode authentication on, private dir (\S+)$", lines[0])
        assert match, lines[0]
        port, ca, work = int(match[1]), match[2], match[3]
        assert os.stat(work).st_mode & 0o777 == 0o700
        for key in ("ca.key", "server.key", "node-0", "node-1"):
            assert os.stat(Path(work) / "creds" / key).st_mode & 0o777 == 0o600, key

        # (a) TLS: the handshake succeeds against the run's CA, for the name 127.0.0.1 ...
        context = ssl.create_default_context(cafile=ca)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                assert ("IP Address", "127.0.0.1") in tls.getpeercert()["subjectAltName"]
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=context, timeout=10) as resp:
            assert resp.status == 200
        # ... fails without it (a certificate no one else trusts), and plain HTTP gets no answer.
        with pytest.raises(urllib.error.URLError) as refused:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/health", timeout=10)
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10)

        # (b) SuperNodes without the right credentials are refused: a key nobody registered, no key.
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_credentials.py"), str(tmp_path / "intruder"),
                        "--nodes", "1"], check=True)
        status, log = _supernode(port, tmp_path / "stranger.log", "--root-certificates", ca,
                                 "--auth-supernode-private-key", str(tmp_path / "intruder" / "node-0"))
        assert status == 1 and "Failed to activate SuperNode" in log, log[-2000:]
        status, log = _supernode(port, tmp_path / "keyless.log", "--root-certificates", ca)
        assert status == 1 and "All SuperNodes must be registered" in log, log[-2000:]
        superlink_log = (out / "deploy-logs" / "superlink.log").read_text()
        assert "[/v1/fleet/activate-node][ApiError:2004]" in superlink_log  # refused by the SuperLink
        assert "[/v1/fleet/register-node][ApiError:2001]" in superlink_log

        hold.unlink()  # let the run go on with the two registered nodes
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:  # a failed check: SIGTERM lets the script stop its processes
            proc.terminate()
            proc.communicate(timeout=60)
        left = procs.settle(str(out), work)
        procs.stop(left)
    assert proc.returncode == 0, stdout[-2000:] + stderr[-2000:]
    assert not left, left
    results = json.loads((out / "results.json").read_text())
    assert [c["partition_id"] for c in results["per_client"]] == [0, 1]  # the registered nodes only


def test_deploy_local_rejects_a_bad_insecure_value():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "deploy_local.sh"), "2"],
                          env={**os.environ, "INSECURE": "yes"}, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: INSECURE must be 0 or 1, got 'yes'"
