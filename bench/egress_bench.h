// Benchmark `agentvm-bench egress-learn`: what egress by name costs as VMs
// and learned names accumulate: the netlink batch that admits one answer's
// address (EgressByName::Learn, acknowledged before the guest sees the
// answer) and AddVm of a by-name VM, each at 1 VM with nothing learned and
// at N VMs × M learned names. The netsetup library alone, in a private
// network namespace of a child process, like `net-rules`.
#pragma once

namespace agentvm::bench {

// argv[0] is "egress-learn"; options --vms N (500), --names N (50).
// Prints a markdown report on stdout; returns the exit code.
int EgressLearnMain(int argc, char** argv);

// argv[0] is "egress-dns"; option --queries N (2000). The DNS round trip
// through the forwarder, in a private network namespace against a local
// upstream: a VM without a list, a VM with one (the answer's address learned
// before it is relayed) and a refused name, interleaved in one run.
int EgressDnsMain(int argc, char** argv);

}  // namespace agentvm::bench
