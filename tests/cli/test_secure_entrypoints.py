"""The console scripts with TLS, client certificates and a bearer token, as processes.

``dragonflybot-grpc-server --tls-cert/--tls-key/--tls-client-ca/--token-file`` and
``dragonflybot-grpc-client --tls-ca/--tls-cert/--tls-key/--token-file``: a client
configured like the server gets books; one missing the token, the CA or its
certificate fails with one line and exit 1 (exit 2 for the missing token: the server
refused the request); a bad flag combination is exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from .test_entrypoints import run, script, server

TOKEN = "e2e-token-abcdefghijklmnop"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("e2e-pki")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client.example")
    out = {name: str(tmp / name) for name in ("ca", "cert", "key", "ccert", "ckey", "token")}
    ca.cert_pem.write_to_path(out["ca"])
    cert.private_key_pem.write_to_path(out["key"])
    for i, blob in enumerate(cert.cert_chain_pems):
        blob.write_to_path(out["cert"], append=i > 0)
    client.private_key_pem.write_to_path(out["ckey"])
    client.cert_chain_pems[0].write_to_path(out["ccert"])
    Path(out["token"]).write_text(TOKEN + "\n")
    yield out


def client(port: int, *flags: str) -> tuple[int, str, str]:
    done = run(
        script("dragonflybot-grpc-client"),
        "--server",
        f"127.0.0.1:{port}",
        "--count",
        "2",
        "--format",
        "json",
        "--connect-timeout",
        "5",
        *flags,
    )
    return done.returncode, done.stdout, done.stderr


def test_tls_with_client_certificates_and_a_token_end_to_end(files: dict[str, str]) -> None:
    with server(
        "--tls-cert",
        files["cert"],
        "--tls-key",
        files["key"],
        "--tls-client-ca",
        files["ca"],
        "--token-file",
        files["token"],
        "--log-level",
        "DEBUG",
    ) as (proc, port):
        full = ("--tls-ca", files["ca"], "--tls-cert", files["ccert"], "--tls-key", files["ckey"])
        code, stdout, stderr = client(port, *full, "--token-file", files["token"])
        assert code == 0, stderr
        assert len([json.loads(line) for line in stdout.splitlines()]) == 2

        # No token: a refused request, as a wrong instrument is (exit 2; --retry cannot help).
        code, _, stderr = client(port, *full)
        assert code == 2
        assert "UNAUTHENTICATED" in stderr and "Traceback" not in stderr
        assert stderr.count("\n") == 1

        # The v1 stream (an instrument named) carries the token and TLS the same way.
        v1 = ("--instrument", "ETH-BTC")
        code, stdout, stderr = client(port, *full, "--token-file", files["token"], *v1)
        assert code == 0, stderr
        assert [json.loads(line)["instrument"] for line in stdout.splitlines()] == ["ETH-BTC"] * 2
        code, _, stderr = client(port, *full, *v1)
        assert code == 2
        assert "UNAUTHENTICATED" in stderr and "Traceback" not in stderr
        assert stderr.count("\n") == 1

        # Health needs no token, but the TLS it asks for.
        where = ("--server", f"127.0.0.1:{port}", "--timeout", "5")
        probe = run(script("dragonflybot"), "health", *where, *full)
        assert (probe.returncode, probe.stdout.strip()) == (0, "SERVING"), probe.stderr
        probe = run(script("dragonflybot"), "health", *where)
        assert probe.returncode == 1 and "Traceback" not in probe.stderr

        code, _, stderr = client(port, "--tls-ca", files["ca"], "--token-file", files["token"])
        assert code == 1, stderr  # no client certificate: the handshake is refused
        assert "error:" in stderr and "Traceback" not in stderr

        code, _, stderr = client(port, "--token-file", files["token"])
        assert code == 1, stderr  # plaintext to a TLS server
        proc.popen.terminate()
        code, _, server_log = proc.finish()
    assert code == 0
    assert TOKEN not in server_log  # not even at DEBUG
    at = server_log.find("Traceback")
    assert at < 0, server_log[max(0, at - 1500) : at + 3000]  # what failed, when it does


@pytest.mark.parametrize(
    "flags",
    [
        ("--tls-cert", "x.pem"),
        ("--tls-client-ca", "ca.pem"),
    ],
)
def test_half_a_tls_configuration_is_a_usage_error(flags: tuple[str, ...]) -> None:
    done = run(
        script("dragonflybot-grpc-server"), "--instrument-name", "ethbtc", "--simulate", *flags
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--tls-" in done.stderr


def test_a_missing_token_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-token")
    done = run(
        script("dragonflybot-grpc-server"),
        "--instrument-name",
        "ethbtc",
        "--simulate",
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        missing,
    )
    assert done.returncode == 2
    assert f"auth.token_file: {missing}: no such file" in done.stderr
    done = run(script("dragonflybot-grpc-client"), "--count", "1", "--token-file", missing, "--tls")
    assert done.returncode == 2
    assert f"--token-file: {missing}: no such file" in done.stderr
