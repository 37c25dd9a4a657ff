"""Both clients against the fake daemon: every test here runs once with the
sync Client and once with the AsyncClient (through tests/unit/synced.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import agentvm
from agentvm import errors
from tests.unit.conftest import MakeClient
from tests.unit.fake_daemon import FakeDaemon, Received, Reply, vm_json

EXEC = "/v1/vms/vm-1/exec"


def serve_vm(fake: FakeDaemon, vm_id: str = "vm-1", **overrides: Any) -> None:
    fake.json_route("POST", "/v1/vms", 201, vm_json(vm_id, **overrides))
    fake.json_route("GET", f"/v1/vms/{vm_id}", 200, vm_json(vm_id, **overrides))


def get_vm(client: Any, fake: FakeDaemon) -> Any:
    serve_vm(fake)
    return client.get("vm-1")


def stream(*events: dict[str, Any]) -> Any:
    def handler(_request: Received, reply: Reply) -> None:
        reply.begin_stream()
        for event in events:
            reply.event(**event)
        reply.end_stream()
    return handler


EXIT_0 = {"type": "exit", "exit_code": 0, "signal": None, "timed_out": False, "status": 0}


# -- socket, create, list, get, pools ------------------------------------

@pytest.mark.parametrize("cls", [agentvm.Client, agentvm.AsyncClient])
def test_socket_is_the_argument_then_the_environment_then_the_default(
        cls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTVM_SOCKET", raising=False)
    assert cls().socket == "/run/agentvm/agentvm.sock"
    monkeypatch.setenv("AGENTVM_SOCKET", "/tmp/from-env.sock")
    assert cls().socket == "/tmp/from-env.sock"
    assert cls("/tmp/explicit.sock").socket == "/tmp/explicit.sock"


def test_create_sends_only_what_was_given(client: Any, fake: FakeDaemon) -> None:
    serve_vm(fake)
    vm = client.create()
    assert fake.received("POST", "/v1/vms")[-1].json() == {}
    assert vm.id == "vm-1"
    info = vm.last_info
    assert (info.state, info.image, info.cpus, info.memory_mib, info.pid, info.boot, info.pool) == (
        "running", "tiny", 1, 256, 4242, "pool", "tiny-1c-256m-isolated")
    assert info.network is not None and info.network.mode == "isolated"

    client.create(image="tiny", cpus=2, memory_mib=512, network="isolated", boot="cold")
    assert fake.received("POST", "/v1/vms")[-1].json() == {
        "image": "tiny", "cpus": 2, "memory_mib": 512, "network": {"mode": "isolated"}, "boot": "cold"}
    client.create(network={"mode": "nat-filtered", "allow_tcp_ports": [8080]})
    assert fake.received("POST", "/v1/vms")[-1].json() == {
        "network": {"mode": "nat-filtered", "allow_tcp_ports": [8080]}}
    assert fake.received("POST", "/v1/vms")[-1].headers["content-type"] == "application/json"


def test_list_get_and_pools(client: Any, fake: FakeDaemon) -> None:
    fake.json_route("GET", "/v1/vms", 200, {"vms": [vm_json("vm-a"), vm_json("vm-b", state="stopped", pid=None)]})
    vms = client.list()
    assert [(vm.id, vm.last_info.state, vm.last_info.pid) for vm in vms] == [
        ("vm-a", "running", 4242), ("vm-b", "stopped", None)]

    fake.json_route("GET", "/v1/vms/vm-a", 200, vm_json("vm-a", reason="", accel="tcg"))
    assert client.get("vm-a").last_info.accel == "tcg"

    pool = {"name": "tiny-1c-256m-isolated", "image": "tiny", "cpus": 1, "memory_mib": 256, "network": "isolated",
            "min_ready": 2, "max_total": 4, "ready": 2, "starting": 0, "in_use": 1, "taken": 7, "replaced": 0,
            "failed": 0, "golden_ready": True, "last_error": "", "something_new": 1}
    fake.json_route("GET", "/v1/pools", 200, {"pools": [pool]})
    [info] = client.pools()
    assert (info.name, info.image, info.network, info.ready, info.taken, info.golden_ready) == (
        "tiny-1c-256m-isolated", "tiny", "isolated", 2, 7, True)
    assert info.raw["something_new"] == 1


def test_an_older_daemon_without_newer_fields_is_understood(client: Any, fake: FakeDaemon) -> None:
    fake.json_route("GET", "/v1/vms/vm-1", 200, {"id": "vm-1", "state": "running"})
    info = client.get("vm-1").last_info
    assert (info.image, info.boot, info.network, info.pid) == ("", "", None, None)


def test_a_malformed_answer_is_a_protocol_error(client: Any, fake: FakeDaemon) -> None:
    fake.route("GET", "/v1/vms", lambda _r, reply: reply.send(200, b"{not json"))
    with pytest.raises(agentvm.ProtocolError):
        client.list()
    fake.json_route("GET", "/v1/vms", 200, {"vms": [{"state": "running"}]})
    with pytest.raises(agentvm.ProtocolError, match="id"):
        client.list()


# -- errors ----------------------------------------------------------------

@pytest.mark.parametrize("status,code,cls", [
    (400, "invalid_argument", agentvm.InvalidArgument),
    (404, "not_found", agentvm.NotFound),
    (405, "invalid_argument", agentvm.InvalidArgument),
    (409, "conflict", agentvm.Conflict),
    (413, "too_large", agentvm.TooLarge),
    (431, "too_large", agentvm.TooLarge),
    (500, "internal", agentvm.ServerError),
    (503, "unavailable", agentvm.Unavailable),
    (504, "timeout", agentvm.Timeout),
])
def test_api_errors_are_typed_and_carry_message_code_and_status(
        client: Any, fake: FakeDaemon, status: int, code: str, cls: type[agentvm.ApiError]) -> None:
    fake.route("GET", "/v1/vms/vm-x", lambda _r, reply: reply.error(status, code, f"it went {code}"))
    with pytest.raises(cls) as raised:
        client.get("vm-x")
    error = raised.value
    assert isinstance(error, agentvm.ApiError) and isinstance(error, agentvm.AgentvmError)
    assert (error.message, error.code, error.status, str(error)) == (f"it went {code}", code, status, f"it went {code}")


def test_an_error_without_a_json_body_is_typed_by_its_status(client: Any, fake: FakeDaemon) -> None:
    fake.route("GET", "/v1/vms/vm-x", lambda _r, reply: reply.send(404, b"nope", "text/plain"))
    with pytest.raises(agentvm.NotFound) as raised:
        client.get("vm-x")
    assert (raised.value.code, raised.value.status) == ("not_found", 404)
    assert "nope" in raised.value.message
    fake.route("GET", "/v1/vms/vm-x", lambda _r, reply: reply.send(502, b""))
    with pytest.raises(agentvm.ServerError) as server:
        client.get("vm-x")
    assert server.value.status == 502


def test_the_daemon_timeout_is_also_a_builtin_timeout_error(client: Any, fake: FakeDaemon) -> None:
    fake.route("GET", "/v1/vms/vm-x", lambda _r, reply: reply.error(504, "timeout", "agent did not answer"))
    with pytest.raises(TimeoutError):
        client.get("vm-x")


# -- exec ------------------------------------------------------------------

def test_exec_returns_the_output_bytes_and_how_it_ended(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    fake.route("POST", EXEC, stream(
        {"type": "stdout", "data": "out\n"},
        {"type": "stderr", "data": "err\n"},
        # "é" split across two chunks: neither half is UTF-8 on its own.
        {"type": "stdout", "data_b64": "ww=="},
        {"type": "stdout", "data_b64": "qQ=="},
        {"type": "stdout", "data_b64": "AP8="},
        {"type": "exit", "exit_code": 7, "signal": None, "timed_out": False, "status": 7},
    ))
    result = vm.exec(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert fake.received("POST", EXEC)[-1].json() == {"argv": ["sh", "-c", "echo out; echo err >&2; exit 7"]}
    assert result.stdout == b"out\n\xc3\xa9\x00\xff"
    assert result.stderr == b"err\n"
    assert (result.exit_code, result.signal, result.timed_out, result.status, result.ok) == (7, None, False, 7, False)
    assert result.stdout_text.startswith("out\né")
    assert result.duration > 0


def test_exec_sends_its_options_and_a_string_runs_under_sh(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    fake.route("POST", EXEC, stream(EXIT_0))
    vm.exec("echo $FOO | wc -c", env={"FOO": "bar"}, cwd="/tmp", stdin="text in", timeout=2.5, user="agent")
    assert fake.received("POST", EXEC)[-1].json() == {
        "argv": ["sh", "-c", "echo $FOO | wc -c"], "env": {"FOO": "bar"}, "cwd": "/tmp", "user": "agent",
        "timeout_sec": 2.5, "stdin": "text in"}
    vm.exec(["cat"], stdin=b"\x00\xffbytes")
    assert fake.received("POST", EXEC)[-1].json() == {"argv": ["cat"], "stdin_b64": "AP9ieXRlcw=="}
    with pytest.raises(ValueError):
        vm.exec([])


def test_a_guest_timeout_is_a_result_not_an_exception(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    fake.route("POST", EXEC, stream(
        {"type": "stdout", "data": "started\n"},
        {"type": "exit", "exit_code": None, "signal": 9, "timed_out": True, "status": 124}))
    result = vm.exec("echo started; sleep 60", timeout=1)
    assert fake.received("POST", EXEC)[-1].json()["timeout_sec"] == 1
    assert (result.timed_out, result.status, result.exit_code, result.signal) == (True, 124, None, 9)
    assert result.stdout == b"started\n"
    with pytest.raises(agentvm.CommandFailed, match="timed out") as failed:
        vm.exec("sleep 60", timeout=1, check=True)
    assert failed.value.result.status == 124


def test_check_passes_a_zero_status_and_names_a_signal(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    fake.route("POST", EXEC, stream(EXIT_0))
    assert vm.exec("true", check=True).ok
    fake.route("POST", EXEC, stream({"type": "stderr", "data": "Killed\n"},
                                    {"type": "exit", "exit_code": None, "signal": 9, "timed_out": False,
                                     "status": 137}))
    with pytest.raises(agentvm.CommandFailed, match="signal 9.*Killed"):
        vm.exec("kill -9 $$", check=True)


def test_an_exec_refused_before_any_output_raises_at_once(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    fake.route("POST", EXEC, lambda _r, reply: reply.error(409, "conflict", "vm-1 is stopped"))
    with pytest.raises(agentvm.Conflict, match="vm-1 is stopped"):
        vm.exec_stream(["true"])
    with pytest.raises(agentvm.Conflict):
        vm.exec(["true"])


def test_an_error_event_after_output_raises_its_type(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    fake.route("POST", EXEC, stream({"type": "stdout", "data": "partial"},
                                    {"type": "error", "error": "the guest agent went away", "code": "unavailable"}))
    seen = []
    with pytest.raises(agentvm.Unavailable, match="went away") as raised:
        with vm.exec_stream("long job") as output:
            for chunk in output:
                seen.append(chunk)
    assert seen == [agentvm.OutputChunk("stdout", b"partial")]
    assert (raised.value.code, raised.value.status) == ("unavailable", 200)


def test_streaming_delivers_chunks_before_the_command_ends(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    first_seen = threading.Event()
    exit_sent = threading.Event()

    def handler(_request: Received, reply: Reply) -> None:
        reply.begin_stream()
        reply.event(type="stdout", data="tick 1\n")
        # The "command" goes on until the test has seen its first output.
        first_seen.wait(5)
        reply.event(type="stderr", data="tick 2\n")
        reply.exit(0)
        exit_sent.set()
        reply.end_stream()

    fake.route("POST", EXEC, handler)
    chunks: list[agentvm.OutputChunk] = []
    with vm.exec_stream("tick") as output:
        for chunk in output:
            if not chunks:
                assert not exit_sent.is_set(), "the first chunk came only after the command ended"
                assert not output.done
                first_seen.set()
            chunks.append(chunk)
    assert chunks == [agentvm.OutputChunk("stdout", b"tick 1\n"), agentvm.OutputChunk("stderr", b"tick 2\n")]
    assert output.result.exit_code == 0
    assert output.result.stdout == b""  # a stream's output is in its chunks


def test_events_are_found_across_and_within_http_chunks(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)

    def handler(_request: Received, reply: Reply) -> None:
        reply.begin_stream()
        lines = (b'{"type":"stdout","data":"a"}\n{"type":"stdout","data":"b"}\n'
                 b'{"type":"stderr","data":"c"}\n{"type":"exit","exit_code":0,"signal":null,'
                 b'"timed_out":false,"status":0}\n')
        for i in range(0, len(lines), 7):  # cuts events anywhere, several per chunk elsewhere
            reply.chunk(lines[i:i + 7])
        reply.end_stream()

    fake.route("POST", EXEC, handler)
    result = vm.exec("x")
    assert (result.stdout, result.stderr, result.status) == (b"ab", b"c", 0)


def test_a_stream_ended_by_closing_the_connection_is_read(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)

    def handler(_request: Received, reply: Reply) -> None:
        reply.begin_stream(chunked=False)  # as to an HTTP/1.0 client
        reply.event(type="stdout", data="plain\n")
        reply.exit(3)
        reply.end_stream()

    fake.route("POST", EXEC, handler)
    result = vm.exec("x")
    assert (result.stdout, result.exit_code) == (b"plain\n", 3)


def test_unknown_event_types_from_a_newer_daemon_are_ignored(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    fake.route("POST", EXEC, stream({"type": "progress", "percent": 50}, {"type": "stdout", "data": "x"}, EXIT_0))
    assert vm.exec("x").stdout == b"x"


# -- the daemon going away, timeouts ---------------------------------------

def test_the_daemon_going_away_mid_stream_is_a_connection_error(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)

    def handler(_request: Received, reply: Reply) -> None:
        reply.begin_stream()
        reply.event(type="stdout", data="before the crash\n")
        reply.drop()

    fake.route("POST", EXEC, handler)
    seen = []
    with pytest.raises(agentvm.ConnectionLost) as raised:
        for chunk in vm.exec_stream("x"):
            seen.append(chunk.data)
    assert seen == [b"before the crash\n"]
    assert isinstance(raised.value, ConnectionError) and isinstance(raised.value, agentvm.ConnectionFailed)
    assert raised.value.code == "disconnected"

    with pytest.raises(agentvm.ConnectionLost):
        vm.exec("x")


def test_the_daemon_closing_the_stream_cleanly_without_an_exit_is_an_error(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)

    def handler(_request: Received, reply: Reply) -> None:
        reply.begin_stream()
        reply.event(type="stdout", data="x")
        reply.end_stream()

    fake.route("POST", EXEC, handler)
    with pytest.raises(agentvm.ConnectionLost, match="exit event"):
        vm.exec("x")


def test_the_daemon_going_away_before_answering(client: Any, fake: FakeDaemon) -> None:
    fake.route("GET", "/v1/vms", lambda _r, reply: reply.drop())
    with pytest.raises(agentvm.ConnectionLost):
        client.list()

    def truncated(_request: Received, reply: Reply) -> None:
        reply.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        reply.drop()

    fake.route("GET", "/v1/vms", truncated)
    with pytest.raises(agentvm.ConnectionLost):
        client.list()


def test_no_daemon_is_unreachable(make_client: MakeClient, fake: FakeDaemon) -> None:
    client = make_client(socket=fake.socket_path + ".missing")
    with pytest.raises(agentvm.DaemonUnreachable, match="cannot connect to agentvmd at .*missing") as raised:
        client.list()
    assert isinstance(raised.value, ConnectionError) and raised.value.code == "unreachable"
    assert raised.value.status is None


def test_the_client_timeout_bounds_a_wait_for_the_daemon(make_client: MakeClient, fake: FakeDaemon) -> None:

    def silent(_request: Received, reply: Reply) -> None:
        fake.stopping.wait(3)

    fake.route("GET", "/v1/vms", silent)
    client = make_client(timeout=0.2)
    started = time.monotonic()
    with pytest.raises(agentvm.ClientTimeout) as raised:
        client.list()
    assert time.monotonic() - started < 2
    assert isinstance(raised.value, TimeoutError) and raised.value.code == "client_timeout"


def test_an_exec_waits_past_the_client_timeout_for_as_long_as_its_command_may_run(
        make_client: MakeClient, fake: FakeDaemon) -> None:
    client = make_client(timeout=0.2)
    vm = get_vm(client, fake)

    def slow(_request: Received, reply: Reply) -> None:
        fake.stopping.wait(0.6)  # a silent command, longer than the client timeout
        reply.begin_stream()
        reply.exit(0)
        reply.end_stream()

    fake.route("POST", EXEC, slow)
    assert vm.exec("sleep 0.6", timeout=30).ok
    assert vm.exec("sleep 0.6").ok  # no guest timeout: no client limit either
    with pytest.raises(agentvm.ClientTimeout, match="within 0.2 s"):
        vm.exec("sleep 0.6", timeout=30, client_timeout=0.2)
    assert fake.received("POST", EXEC)[-1].json()["timeout_sec"] == 30


# -- files, snapshots, lifecycle -------------------------------------------

def test_files_go_in_and_out_with_the_path_escaped(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    fake.route("PUT", "/v1/vms/vm-1/files", lambda _r, reply: reply.send(204))
    vm.write_file("/tmp/a b+c.sh", b"#!/bin/sh\n\x00", mode=0o755)
    put = fake.received("PUT", "/v1/vms/vm-1/files")[-1]
    assert put.target == "/v1/vms/vm-1/files?path=/tmp/a%20b%2Bc.sh&mode=0755"
    assert put.query == {"path": ["/tmp/a b+c.sh"], "mode": ["0755"]}
    assert put.body == b"#!/bin/sh\n\x00"
    vm.write_file("/tmp/t.txt", "héllo")
    put = fake.received("PUT", "/v1/vms/vm-1/files")[-1]
    assert put.body == "héllo".encode() and "mode" not in put.query

    fake.route("GET", "/v1/vms/vm-1/files", lambda r, reply: reply.send(200, b"\x00\x01" + r.query["path"][0].encode(),
                                                                        "application/octet-stream"))
    assert vm.read_file("/etc/os-release") == b"\x00\x01/etc/os-release"
    fake.route("GET", "/v1/vms/vm-1/files", lambda _r, reply: reply.error(404, "not_found", "no such file"))
    with pytest.raises(agentvm.NotFound):
        vm.read_file("/nope")


def test_an_upload_refused_before_its_body_is_read_gets_the_daemons_answer(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    fake.route("PUT", "/v1/vms/vm-1/files",
               lambda _r, reply: reply.error(413, "too_large", "request body larger than 67108864 bytes"),
               before_body=True)
    with pytest.raises(agentvm.TooLarge, match="larger than"):
        vm.write_file("/tmp/big", b"x" * (8 * 1024 * 1024))


def test_snapshots(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    snap = {"name": "before", "vm_state_bytes": 100663296, "created_at": 1732400000}
    fake.json_route("POST", "/v1/vms/vm-1/snapshots", 201, snap)
    fake.json_route("GET", "/v1/vms/vm-1/snapshots", 200, {"snapshots": [snap]})
    fake.route("POST", "/v1/vms/vm-1/snapshots/before/restore", lambda _r, reply: reply.send(204))
    fake.route("DELETE", "/v1/vms/vm-1/snapshots/before", lambda _r, reply: reply.send(204))

    info = vm.snapshot("before")
    assert fake.received("POST", "/v1/vms/vm-1/snapshots")[-1].json() == {"name": "before"}
    assert (info.name, info.vm_state_bytes, info.created_at) == ("before", 100663296, 1732400000)
    assert [s.name for s in vm.snapshots()] == ["before"]
    vm.restore("before")
    vm.delete_snapshot("before")
    assert len(fake.received("POST", "/v1/vms/vm-1/snapshots/before/restore")) == 1
    assert len(fake.received("DELETE", "/v1/vms/vm-1/snapshots/before")) == 1
    # A name is one path segment, escaped: the daemon refuses "a/b" by itself.
    fake.route("DELETE", "/v1/vms/vm-1/snapshots/a/b", lambda _r, reply: reply.error(400, "invalid_argument", "bad"))
    with pytest.raises(agentvm.InvalidArgument):
        vm.delete_snapshot("a/b")
    assert fake.requests[-1].target == "/v1/vms/vm-1/snapshots/a%2Fb"


def test_stop_remove_release_info_and_console(client: Any, fake: FakeDaemon) -> None:
    vm = get_vm(client, fake)
    fake.json_route("POST", "/v1/vms/vm-1/stop", 200, vm_json("vm-1", state="stopped", pid=None))
    fake.route("DELETE", "/v1/vms/vm-1", lambda _r, reply: reply.send(204))
    fake.route("POST", "/v1/vms/vm-1/release", lambda _r, reply: reply.send(204))
    fake.route("GET", "/v1/vms/vm-1/console", lambda _r, reply: reply.send(200, b"Linux booting\n\xff", "text/plain"))

    assert vm.stop().state == "stopped" and vm.last_info.state == "stopped"
    assert vm.info().state == "running"  # what GET says now
    vm.remove()
    vm.remove(force=True)
    assert [r.target for r in fake.received("DELETE", "/v1/vms/vm-1")] == ["/v1/vms/vm-1", "/v1/vms/vm-1?force=true"]
    vm.release()
    assert fake.received("POST", "/v1/vms/vm-1/release")[-1].body == b""
    assert vm.console().startswith("Linux booting\n")
    vm.console(max_bytes=100)
    assert fake.requests[-1].target == "/v1/vms/vm-1/console?max_bytes=100"


def test_a_vm_block_releases_its_vm_however_it_ends(client: Any, fake: FakeDaemon) -> None:
    serve_vm(fake)
    release_status = [204]
    fake.route("POST", "/v1/vms/vm-1/release",
               lambda _r, reply: reply.send(204) if release_status[0] == 204 else reply.error(
                   release_status[0], "internal" if release_status[0] == 500 else "not_found", "release failed"))

    def releases() -> int:
        return len(fake.received("POST", "/v1/vms/vm-1/release"))

    with client.vm(image="tiny", network="isolated") as vm:
        assert vm.id == "vm-1"
    assert releases() == 1
    assert fake.received("POST", "/v1/vms")[-1].json() == {"image": "tiny", "network": {"mode": "isolated"}}

    with pytest.raises(RuntimeError, match="the test failed"):
        with client.vm():
            raise RuntimeError("the test failed")
    assert releases() == 2

    release_status[0] = 404  # already removed in the block: fine
    with client.vm() as vm:
        pass
    assert releases() == 3

    release_status[0] = 500  # the block's own error wins; the release failure is a note on it
    with pytest.raises(KeyError) as raised:
        with client.vm():
            raise KeyError("mine")
    assert "releasing vm-1 afterwards failed too" in "".join(getattr(raised.value, "__notes__", []))
    with pytest.raises(agentvm.ServerError):
        with client.vm():
            pass


def test_errors_module_maps_codes_and_statuses() -> None:
    assert type(errors.api_error("m", "conflict", 409)) is agentvm.Conflict
    assert type(errors.api_error("m", "something_new", 418)) is agentvm.ApiError
    assert type(errors.api_error("m", None, 599)) is agentvm.ServerError
    assert errors.api_error("m", None, 404).code == "not_found"
