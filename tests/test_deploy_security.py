"""scripts/deploy_local.sh is secure by default: the SuperLink speaks TLS only (with a certificate from
the run's own CA), and a SuperNode whose key was not registered, or that has no key, is refused
(Flower 1.41's ``--enable-supernode-auth`` + ``flwr supernode register``), while the run goes on. Two
deployments share the machine: one finishes with the simulation's metrics while the other, with
fewer than min_clients answering, ends in one error line; neither leaves a process behind
(tests/procs.py)."""

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
from runs import private_dir, same_metrics

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


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


def _deploy(tmp_path: Path, name: str, k: int, overrides: list[str], hold: Path | None = None) -> subprocess.Popen:
    """deploy_local.sh K (secure by default) into <tmp_path>/<name>, optionally held before `flwr run`."""
    env = {**os.environ, "OUT_DIR": str(tmp_path / name), "PYTHON": sys.executable}
    if hold:
        env["FEDFAIR_DEPLOY_HOLD"] = str(hold)
    return subprocess.Popen(["bash", str(ROOT / "scripts" / "deploy_local.sh"), str(k), *overrides], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _probe(port: int, ca: str, work: str, logs: Path, tmp_path: Path) -> None:
    """The running deployment's TLS, key files and SuperNode authentication, from outside."""
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
    superlink_log = (logs / "superlink.log").read_text()
    assert "[/v1/fleet/activate-node][ApiError:2004]" in superlink_log  # refused by the SuperLink
    assert "[/v1/fleet/register-node][ApiError:2001]" in superlink_log


@pytest.mark.slow
def test_two_deployments_at_once_one_probed_and_finished_one_below_min_clients_in_one_line(
        reference, base_overrides, tmp_path):
    """Two deploy_local.sh runs side by side on their own ports, CA and private dirs.
    - a (K = 2) is held before `flwr run` while its SuperLink is probed (TLS; two SuperNodes without
      registered keys refused), then goes on with its two registered nodes and finishes with the
      simulation's metrics.
    - b (K = 3) has a partition whose ClientApp fails (54 training rows under the Dirichlet split, and
      stage1.ns1=100 asks for 100: the natural failure of test_deploy_faults.py's simulation test) with
      min_clients=3: it exits 2 with one error line and writes no results.json.
    Each stops all it started, keys and certificates included."""
    hold = tmp_path / "hold"
    hold.touch()
    a = _deploy(tmp_path, "a", 2, base_overrides, hold)
    b = _deploy(tmp_path, "b", 3, [*base_overrides, "partition=dirichlet", "stage1.ns1=100", "strategy.min_clients=3"])
    works = []
    try:
        lines = _read_until(a, "holding: ")
        match = re.match(r"deployment: superlink 127\.0\.0\.1:(\d+), TLS \(CA (\S+)\), "
                         r"SuperNode authentication on, private dir (\S+)$", lines[0])
        assert match, lines[0]
        works.append(match[3])
        _probe(int(match[1]), match[2], match[3], tmp_path / "a" / "deploy-logs", tmp_path)
        hold.unlink()  # let run a go on with the two registered nodes
        stdout, stderr = a.communicate(timeout=600)
        lines += stdout.strip().splitlines()
        b_out, b_err = b.communicate(timeout=600)
        works.append(private_dir(b_out.splitlines()[0]))
    finally:
        for proc in (a, b):
            if proc.poll() is None:  # a failed check: SIGTERM lets the script stop its processes
                proc.terminate()
                proc.communicate(timeout=60)
        left = procs.settle(*works, str(tmp_path / "a"), str(tmp_path / "b"))
        procs.stop(left)
    assert not left, left  # nothing of either run is left behind
    assert not any(Path(work).exists() for work in works)  # keys and certificates deleted

    assert a.returncode == 0, stdout[-2000:] + stderr[-2000:]
    assert lines[-1] == f"results: {tmp_path / 'a' / 'results.json'}"
    assert (tmp_path / "a" / "deploy-logs" / "supernode-1.log").exists()
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert [c["partition_id"] for c in results["per_client"]] == [0, 1]  # the registered nodes only
    same_metrics(results, reference)

    assert "TLS (CA " in b_out.splitlines()[0] and "SuperNode authentication on" in b_out.splitlines()[0]
    assert b.returncode == 2, b_out[-3000:] + b_err[-2000:]
    assert b_err == "error: upload: only 2 of 3 clients answered (min_clients=3); see the log for their errors\n"
    assert "Traceback" not in b_out
    assert "upload: partition 2 failed: stage-1 ns1=100 gives 100 rows" in b_out
    assert not (tmp_path / "b" / "results.json").exists()


def test_deploy_local_rejects_a_bad_insecure_value():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "deploy_local.sh"), "2"],
                          env={**os.environ, "INSECURE": "yes"}, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: INSECURE must be 0 or 1, got 'yes'"
