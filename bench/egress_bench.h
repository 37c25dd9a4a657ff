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

}  // namespace agentvm::bench
