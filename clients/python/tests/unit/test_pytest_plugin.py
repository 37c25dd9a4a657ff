"""The pytest plugin's fixtures, in an inner pytest run against the fake daemon."""

from __future__ import annotations

import pytest

from tests.unit.fake_daemon import FakeDaemon, Received, Reply, vm_json

POOL = {"name": "tiny-2c-512m-isolated", "image": "tiny", "cpus": 2, "memory_mib": 512, "network": "isolated",
        "min_ready": 2, "max_total": 4, "ready": 2, "starting": 0, "in_use": 0, "taken": 0, "replaced": 0,
        "failed": 0, "golden_ready": True, "last_error": ""}

SUITE = """
import pytest

def test_gets_a_vm(agentvm_vm):
    assert agentvm_vm.id.startswith("vm-")
    assert agentvm_vm.exec("echo hi").stdout == b"hi\\n"

def test_failing_still_releases(agentvm_vm):
    assert False, "this test fails on purpose"

@pytest.mark.agentvm(cpus=4, boot="cold")
def test_marker_chooses_the_create(agentvm_vm):
    pass

def test_client_fixture(agentvm_client):
    assert [p.name for p in agentvm_client.pools()] == ["tiny-2c-512m-isolated"]
"""


def serve(fake: FakeDaemon, pools: list[dict[str, object]]) -> None:
    count = [0]

    def create(_request: Received, reply: Reply) -> None:
        count[0] += 1
        reply.json(201, vm_json(f"vm-{count[0]}"))

    def exec_(_request: Received, reply: Reply) -> None:
        reply.begin_stream()
        reply.event(type="stdout", data="hi\n")
        reply.exit(0)
        reply.end_stream()

    fake.route("POST", "/v1/vms", create)
    fake.json_route("GET", "/v1/pools", 200, {"pools": pools})
    for n in range(1, 10):
        fake.route("POST", f"/v1/vms/vm-{n}/release", lambda _r, reply: reply.send(204))
        fake.route("POST", f"/v1/vms/vm-{n}/exec", exec_)


def test_fixtures_create_from_the_pool_profile_and_release(pytester: pytest.Pytester, fake: FakeDaemon) -> None:
    serve(fake, [POOL])
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "agentvm.pytest_plugin", "--agentvm-socket", fake.socket_path,
                                "--agentvm-image", "tiny")
    result.assert_outcomes(passed=3, failed=1)
    creates = [r.json() for r in fake.received("POST", "/v1/vms")]
    pool_profile = {"image": "tiny", "cpus": 2, "memory_mib": 512, "network": {"mode": "isolated"}}
    assert creates == [pool_profile, pool_profile, {"cpus": 4, "boot": "cold", "image": "tiny"}]
    released = sorted(r.path for r in fake.requests if r.path.endswith("/release"))
    assert released == ["/v1/vms/vm-1/release", "/v1/vms/vm-2/release", "/v1/vms/vm-3/release"]


def test_without_pools_the_image_alone_is_asked_for(pytester: pytest.Pytester, fake: FakeDaemon) -> None:
    serve(fake, [])
    pytester.makepyfile(test_one="def test_one(agentvm_vm):\n    pass\n")
    pytester.runpytest("-p", "agentvm.pytest_plugin", "--agentvm-socket", fake.socket_path,
                       "--agentvm-image", "debian").assert_outcomes(passed=1)
    assert fake.received("POST", "/v1/vms")[-1].json() == {"image": "debian"}


def test_the_socket_comes_from_the_environment(
        pytester: pytest.Pytester, fake: FakeDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(fake, [POOL])
    monkeypatch.setenv("AGENTVM_SOCKET", fake.socket_path)
    pytester.makepyfile(test_one="def test_one(agentvm_vm):\n    pass\n")
    pytester.runpytest("-p", "agentvm.pytest_plugin").assert_outcomes(passed=1)
    assert len(fake.received("POST", "/v1/vms")) == 1


def test_an_unreachable_daemon_is_an_error_not_a_skip(pytester: pytest.Pytester, fake: FakeDaemon) -> None:
    pytester.makepyfile(test_one="def test_one(agentvm_vm):\n    pass\n")
    result = pytester.runpytest("-p", "agentvm.pytest_plugin", "--agentvm-socket", fake.socket_path + ".missing")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*DaemonUnreachable*cannot connect to agentvmd*"])
