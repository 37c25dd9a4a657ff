"""An example suite for the agentvm pytest plugin: each test gets a fresh VM.

Run it against a daemon (with a warm pool, each VM is a hand-over, not a boot):

    python3 -m pytest clients/python/examples/pytest_suite --agentvm-image tiny

(with the package installed; from the tree add ``-p agentvm.pytest_plugin``
and ``PYTHONPATH=clients/python/src``). The vm tier runs it too.
"""

from __future__ import annotations

import pytest

from agentvm import Vm


def test_runs_agent_code_and_reads_its_results(agentvm_vm: Vm) -> None:
    agentvm_vm.write_file("/tmp/agent.sh", "#!/bin/sh\necho thinking >&2\necho 42 > /tmp/answer\n", mode=0o755)
    result = agentvm_vm.exec(["/tmp/agent.sh"], timeout=30)
    assert result.ok, result.stderr_text
    assert result.stderr == b"thinking\n"
    assert agentvm_vm.read_file("/tmp/answer") == b"42\n"


def test_each_test_has_its_own_vm(agentvm_vm: Vm) -> None:
    # The file the previous test wrote is not here: that VM was released.
    assert not agentvm_vm.exec("test -e /tmp/answer").ok


def test_a_runaway_command_is_stopped_by_its_timeout(agentvm_vm: Vm) -> None:
    result = agentvm_vm.exec("while :; do :; done", timeout=1)
    assert result.timed_out and result.status == 124


@pytest.mark.agentvm(image="tiny", network="isolated")
def test_a_marker_chooses_how_the_vm_is_created(agentvm_vm: Vm) -> None:
    info = agentvm_vm.info()
    assert info.image == "tiny" and info.state == "running"
    assert info.network is not None and info.network.mode == "isolated"
