// Benchmark `agentvm-bench net-rules`: what adding a VM to the firewall costs
// as VMs accumulate (the 1st against the 500th), and the size of the ruleset
// at 1 and at 500 VMs. The netsetup library alone, no VM boots, all of it in
// a private network namespace of a child process.
#pragma once

namespace agentvm::bench {

// argv[0] is "net-rules"; options --vms N (default 500), --rounds N (default
// 5). Prints a markdown report on stdout; returns the exit code.
int NetRulesMain(int argc, char** argv);

}  // namespace agentvm::bench
