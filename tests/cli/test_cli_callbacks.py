"""``evolink ... --callbacks URL --listen HOST:PORT``: the batch takes its tasks' callbacks itself.

The CLI runs as a subprocess against a sandbox in another process, which delivers callbacks to
loopback URLs; every wait is bounded, every port is on 127.0.0.1 and found free by binding to 0.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from evolink_async._callbacks.receiver import CallbackReceiver
from evolink_async.cli._callbacks import CallbackUsageError, callback_options, start_listening
from tests.helpers.cli import (
    CLI,
    RESUME_HINT,
    make_inputs,
    run_cli,
    sandbox_process,
    start_under_pty,
    summary_of,
    wait_for,
)

COUNT = 16
SCALE = 0.03  # remove-bg: 30 API s -> 0.9 s estimated; tasks end by 0.9 s, the safety-net query comes at 1.4 s
# Tasks end by 1.0x their estimate (not the default 1.5x): the callback then always has 0.6x the
# estimate (~0.5 s) to arrive before the safety-net query, even on a loaded machine.
SPREAD = ("--duration-spread", "0.5", "1.0")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def callback_flags(port: int, *, path: str = "/hooks") -> list[str]:
    return ["--callbacks", f"http://127.0.0.1:{port}{path}", "--listen", f"127.0.0.1:{port}", "--allow-local-callbacks"]


def _result_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and ".result-" in p.name] if out.is_dir() else []


def test_every_input_completes_by_callback_with_almost_no_queries(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", COUNT)
    out = tmp_path / "out"
    with sandbox_process(*SPREAD, time_scale=SCALE, seed=5) as sandbox:
        done = run_cli(["remove-bg", str(tmp_path / "in"), "--out", str(out), "--json",
                        *callback_flags(free_port()), *sandbox.connect(poll_scale=SCALE)], bound=90)  # fmt: skip
        ledger = sandbox.ledger()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = summary_of(done.stdout)
    assert summary["downloaded"] == COUNT
    assert summary["failed"] == []
    assert len(_result_files(out)) == COUNT
    updates = summary["updates"]
    # Polling alone needs at least one query per task (about three, in practice).
    assert updates["by_callback"] >= COUNT, updates
    assert updates["by_query"] <= COUNT // 4, updates
    # The sandbox delivered every task's callback, and the receiver answered each with a 2xx.
    assert sorted(set(ledger["callbacks_delivered"])) == sorted(ledger["billed"])
    assert len(ledger["billed"]) == COUNT
    assert ledger["callbacks"]
    assert all(200 <= (c["status"] or 0) < 300 for c in ledger["callbacks"]), ledger["callbacks"]


def test_the_summary_line_counts_updates_in_plain_output(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 3)
    with sandbox_process(*SPREAD, time_scale=SCALE, seed=6) as sandbox:
        done = run_cli(["remove-bg", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                        *callback_flags(free_port(), path=""), *sandbox.connect(poll_scale=SCALE)], bound=60)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "callbacks: http://127.0.0.1:" in done.stdout
    assert "by callback" in done.stdout.splitlines()[-1], done.stdout[-500:]


def test_dropped_callbacks_cost_queries_never_inputs(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", COUNT)
    out = tmp_path / "out"
    with sandbox_process(*SPREAD, "--callback-drop-rate", "0.3", time_scale=SCALE, seed=7) as sandbox:
        done = run_cli(["remove-bg", str(tmp_path / "in"), "--out", str(out), "--json",
                        *callback_flags(free_port()), *sandbox.connect(poll_scale=SCALE)], bound=120)  # fmt: skip
        ledger = sandbox.ledger()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = summary_of(done.stdout)
    assert summary["downloaded"] == COUNT
    assert summary["failed"] == []
    assert len(_result_files(out)) == COUNT
    assert len(ledger["billed"]) == len(set(ledger["billed"])) == COUNT  # nothing paid twice
    dropped = [c for c in ledger["callbacks"] if c["error"] == "dropped (sandbox fault)"]
    assert dropped, "the seed dropped no callback: the test proves nothing"
    assert summary["updates"]["by_query"] >= 1, summary["updates"]


def test_an_unreachable_public_url_falls_back_to_queries_and_says_so(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 4)
    nowhere = free_port()  # the public URL names a port nobody listens on
    flags = ["--callbacks", f"http://127.0.0.1:{nowhere}/hooks", "--listen", f"127.0.0.1:{free_port()}",
             "--allow-local-callbacks"]  # fmt: skip
    with sandbox_process(*SPREAD, time_scale=SCALE, seed=9) as sandbox:
        done = run_cli(["remove-bg", str(tmp_path / "in"), "--out", str(tmp_path / "out"), *flags,
                        *sandbox.connect(poll_scale=SCALE)], bound=90)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "updates: 0 by callback" in done.stdout, done.stdout[-800:]
    assert "no callback arrived" in done.stdout, done.stdout[-800:]


# --- usage errors: exit 2, a clear message, nothing contacted ----------------------------------------


def _usage(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    make_inputs(tmp_path / "in", 1)
    # Nothing listens on the discard port: a usage error must come before any request.
    return run_cli(["remove-bg", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--api-key", "sk-evo-unused-key",
                    "--base-url", "http://127.0.0.1:9", "--files-base-url", "http://127.0.0.1:9", *flags], bound=30)  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--callbacks", "https://hooks.example.com/evolink"], "--callbacks needs --listen"),
        (["--listen", "127.0.0.1:8080"], "--listen needs --callbacks"),
        (["--allow-local-callbacks"], "--allow-local-callbacks needs --callbacks"),
        (["--callbacks", "http://127.0.0.1:8080/hooks", "--listen", "127.0.0.1:8080"], "--allow-local-callbacks"),
        (["--callbacks", "ftp://hooks.example.com/x", "--listen", "8080", "--allow-local-callbacks"], "--callbacks: must"),
        (["--callbacks", "https://hooks.example.com/x", "--listen", "127.0.0.1:http"], "--listen 127.0.0.1:http"),
        (["--callbacks", "https://hooks.example.com/x", "--listen", "127.0.0.1:70000"], "1..65535"),
        (["--callbacks", "https://hooks.example.com/x", "--listen", "::1:8080"], "write [::1]:8080"),
        (["--callbacks", "https://hooks.example.com/x", "--listen", ":8080"], "--listen :8080: the host is empty"),
    ],
)
def test_callback_usage_errors_exit_2(tmp_path: Path, flags: list[str], message: str) -> None:
    done = _usage(tmp_path, *flags)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# --- --listen HOST:PORT, parsed without running anything ----------------------------------------------


def _namespace(listen: str) -> argparse.Namespace:
    return argparse.Namespace(callbacks="http://127.0.0.1:9/hooks", listen=listen, callback_secret_file=None,
                              allow_local_callbacks=True)  # fmt: skip


def _listen(text: str) -> tuple[str, int]:
    options = callback_options(_namespace(text))
    assert options is not None
    return options.host, options.port


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("8080", ("127.0.0.1", 8080)),  # PORT alone: this machine only
        ("localhost:1", ("localhost", 1)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),  # parsed only: nothing listens
        ("[::1]:8080", ("::1", 8080)),
        ("[fe80::1%eth0]:8080", ("fe80::1%eth0", 8080)),
    ],
)
def test_listen_addresses_that_parse(text: str, address: tuple[str, int]) -> None:
    assert _listen(text) == address


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # An unbracketed IPv6 address: "::1:8080" is ::1 port 8080, or the address ::1:8080. Never guessed.
        ("::1:8080", "--listen ::1:8080: an IPv6 address with a port is ambiguous without brackets; write [::1]:8080"),
        ("::1", "--listen ::1: needs a port, and an IPv6 address needs brackets; write [::1]:PORT"),
        ("fe80::1", "write [fe80::1]:PORT"),
        ("a:b:c", "--listen a:b:c: expected HOST:PORT (an IPv6 host in brackets, e.g. [::1]:8080)"),
        ("[::1]", "--listen [::1]: needs a port; write [::1]:PORT"),
        ("[::1", "--listen [::1: expected [IPV6]:PORT"),
        ("[::1]8080", "--listen [::1]8080: expected [IPV6]:PORT"),
        ("[127.0.0.1]:8080", "brackets are for an IPv6 address only; write 127.0.0.1:8080"),
        # An empty host: every interface to some tools, this machine to others.
        (":8080", "--listen :8080: the host is empty; write 127.0.0.1:8080 (this machine only), 0.0.0.0:8080"),
        ("[]:8080", "--listen []:8080: the host is empty"),
        ("", "--listen: empty"),
        ("localhost", "--listen localhost: needs a port; write localhost:PORT"),
        ("127.0.0.1:", "--listen 127.0.0.1:: the port is missing"),
        ("127.0.0.1:0", "--listen 127.0.0.1:0: the port 0 is out of range"),
        ("127.0.0.1:65536", "the port 65536 is out of range; expected HOST:PORT with a port in 1..65535"),
        ("127.0.0.1:" + "9" * 5000, "is out of range"),  # int() alone would raise its own ValueError
        ("127.0.0.1:http", "--listen 127.0.0.1:http: the port 'http' is not a number"),
        ("127.0.0.1:+80", "the port '+80' is not a number"),  # int() takes these three
        ("127.0.0.1:8_0", "the port '8_0' is not a number"),
        ("127.0.0.1:\u0668\u0660", "is not a number"),
        ("local host:8080", "--listen 'local host:8080': spaces and control characters are not allowed"),
        (" 127.0.0.1:8080", "--listen ' 127.0.0.1:8080': spaces"),  # int() and strip() forgave these
        ("127.0.0.1: 8080", "spaces and control characters are not allowed"),
        ("127.0.0.1:8080\n", "--listen '127.0.0.1:8080\\n': spaces and control characters"),
        ("evil\x1b[31m:80", "--listen 'evil\\x1b[31m:80': spaces and control characters"),
        ("a/b:80", "--listen a/b:80: 'a/b' is not a host name or an IP address"),
    ],
)
def test_bad_listen_addresses_are_usage_errors_naming_listen(text: str, message: str) -> None:
    with pytest.raises(CallbackUsageError) as caught:
        _listen(text)
    assert message in str(caught.value)
    assert str(caught.value).startswith("--listen")
    assert str(caught.value).isprintable()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_an_ipv6_listen_address_binds_and_a_port_in_use_is_shown_in_brackets() -> None:
    receiver = CallbackReceiver("http://127.0.0.1:9/hooks", allow_local=True)
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CallbackUsageError, match=re.escape(f"--listen [::1]:{port}: the port is in use")):
            await start_listening(receiver, callback_options(_namespace(f"[::1]:{port}")))
    listener = await start_listening(receiver, callback_options(_namespace("[::1]:" + str(port))))
    assert listener is not None
    try:
        with socket.create_connection(("::1", port), timeout=5):
            pass
    finally:
        await listener.stop()


def test_a_short_or_missing_secret_file_is_a_usage_error(tmp_path: Path) -> None:
    short = tmp_path / "secret"
    short.write_text("too short\n")
    flags = ["--callbacks", "https://hooks.example.com/x", "--listen", f"127.0.0.1:{free_port()}"]
    done = _usage(tmp_path, *flags, "--callback-secret-file", str(short))
    assert done.returncode == 2
    assert "--callback-secret-file: must be at least 16 bytes" in done.stderr, done.stderr
    done = _usage(tmp_path, *flags, "--callback-secret-file", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert "cannot be read" in done.stderr, done.stderr


def test_a_port_in_use_exits_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _usage(tmp_path, *callback_flags(port))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--listen 127.0.0.1:{port}: the port is in use" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# --- Ctrl-C ------------------------------------------------------------------------------------------


def test_ctrl_c_with_callbacks_exits_130_promptly(tmp_path: Path) -> None:
    scale = 0.1  # 3 s per task: the batch is mid-run when Ctrl-C comes
    make_inputs(tmp_path / "in", 12)
    port = free_port()
    with sandbox_process(time_scale=scale, seed=8) as sandbox:
        argv = [*CLI, "remove-bg", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--max-in-flight", "4",
                *callback_flags(port), *sandbox.connect(poll_scale=scale)]  # fmt: skip
        process, reader, master = start_under_pty(argv)
        try:
            wait_for(lambda: len(sandbox.ledger()["billed"]) >= 1, 30, "a first submit", process=process)
            assert process.poll() is None, "the batch ended before the Ctrl-C"
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                pytest.fail("still running 10 s after SIGINT")
            billed = len(sandbox.ledger()["billed"])
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            reader.join(5)
            os.close(master)
    shown = reader.data.decode("utf-8", "replace")
    assert process.returncode == 130, f"exit status {process.returncode}, output:\n{shown[-800:]}"
    # Promptly: it stopped at the Ctrl-C instead of running the batch out (12 inputs, 4 at a time).
    assert billed < 12, f"all {billed} inputs were submitted before the exit"
    assert shown.count(RESUME_HINT) == 1, shown[-800:]
    assert "by callback" in shown, shown[-800:]  # the interrupted summary still counts updates
