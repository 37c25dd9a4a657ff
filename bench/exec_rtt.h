// `agentvm-bench exec-rtt`: benchmark 2's exec round trip (a fresh connection,
// POST /v1/vms/{id}/exec {"argv":["/bin/true"]}, the NDJSON read to its exit
// event) against a VM that already runs in a daemon that already runs. It
// prints one sample per line, in seconds, so that another client's benchmark
// (bench/python_client_bench.py) can interleave it with its own round trips
// to the same VM and compare the two in one run.
#pragma once

namespace agentvm::bench {

// argv[0] is "exec-rtt"; --socket PATH --vm ID [--runs N (20)] [--warmups N (0)]
// [--on-request: one round trip per line read from stdin].
int ExecRttMain(int argc, char** argv);

}  // namespace agentvm::bench
