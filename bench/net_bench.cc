#include "bench/net_bench.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bench/private_netns.h"
#include "bench/stats.h"
#include "common/logging.h"
#include "netsetup/firewall.h"

namespace agentvm::bench {
namespace {

constexpr int kEdge = 10;  // adds timed at each end: VMs 1..10 and N-9..N

struct Options {
  int vms = 500;
  int rounds = 5;
};

net::FirewallConfig Config() {
  return net::FirewallConfig{.bridge = "agentvm0",
                             .subnet = *net::Ipv4Subnet::Parse("10.101.0.0/16"),
                             .gateway = *net::Ipv4Address::Parse("10.101.0.1")};
}

// VM n with everything a VM can have (an extra port, an extra CIDR, a
// bandwidth limit): the largest batch AddVm sends.
net::VmNetRules FullVm(int n) {
  return net::VmNetRules{.tap = "avm-" + std::to_string(10000000000ll + n),
                         .address = net::Ipv4Address{Config().subnet.network.value + 1 + static_cast<unsigned>(n)},
                         .extra_tcp_ports = {8080},
                         .extra_cidrs = {*net::Ipv4Subnet::Parse("140.82.112.0/20")},
                         .bytes_per_second = 10'000'000};
}

struct RulesetSize {
  std::optional<std::size_t> bytes;  // of `nft list ruleset`; nullopt without nft
  std::size_t rules = 0;
};

RulesetSize RulesetSizeOf(const net::Firewall& firewall) {
  RulesetSize size;
  size.rules = firewall.RuleCount().value_or(0);
  // nft inherits this process's (private) network namespace.
  if (FILE* pipe = ::popen("nft list ruleset 2>/dev/null", "r")) {
    std::size_t bytes = 0;
    char buffer[4096];
    while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) bytes += n;
    if (::pclose(pipe) == 0) size.bytes = bytes;
  }
  return size;
}

std::string Bytes(const RulesetSize& size) { return size.bytes ? std::to_string(*size.bytes) : "n/a (no nft)"; }

// The measurement itself; runs in the child, inside its own namespace.
int Run(const Options& options) {
  Samples first;  // AddVm of VMs 1..10, every round
  Samples last;   // AddVm of VMs N-9..N, every round
  Samples remove_first;  // RemoveVm of VMs 10..1, the last ones left, every round
  Samples remove_last;   // RemoveVm of VMs N..N-9, the first ones removed, every round
  Samples all;
  RulesetSize at_one;
  RulesetSize at_n;
  for (int round = 0; round < options.rounds; ++round) {
    auto firewall = net::Firewall::Create(Config());
    if (!firewall) {
      std::cerr << "agentvm-bench net-rules: " << firewall.error().message << "\n";
      return 1;
    }
    for (int n = 1; n <= options.vms; ++n) {
      const net::VmNetRules rules = FullVm(n);
      const auto start = Clock::now();
      auto added = (*firewall)->AddVm(rules);
      const auto took = Clock::now() - start;
      if (!added) {
        std::cerr << "agentvm-bench net-rules: VM " << n << ": " << added.error().message << "\n";
        return 1;
      }
      all.Add(took);
      if (n <= kEdge) first.Add(took);
      if (n > options.vms - kEdge) last.Add(took);
      if (round == 0 && n == 1) at_one = RulesetSizeOf(**firewall);
    }
    if (round == 0) at_n = RulesetSizeOf(**firewall);
    for (int n = options.vms; n >= 1; --n) {
      const net::VmNetRules rules = FullVm(n);
      const auto start = Clock::now();
      auto removed = (*firewall)->RemoveVm(rules.tap, rules.address);
      const auto took = Clock::now() - start;
      if (!removed) {
        std::cerr << "agentvm-bench net-rules: remove VM " << n << ": " << removed.error().message << "\n";
        return 1;
      }
      if (n > options.vms - kEdge) remove_last.Add(took);
      if (n <= kEdge) remove_first.Add(took);
    }
    std::cerr << "agentvm-bench net-rules: round " << round + 1 << "/" << options.rounds << " done\n";
  }

  const double ratio = first.Median() > 0 ? last.Median() / first.Median() : 0;
  std::ostringstream out;
  out << "## Firewall: adding the rules of one VM (netsetup alone, private netns)\n\n"
      << "Each VM has an extra TCP port, an extra CIDR and a bandwidth limit (the largest AddVm batch: "
      << "3 objects + 8 set-element messages, one netlink transaction). " << options.rounds << " rounds of "
      << options.vms << " VMs on a fresh ruleset; " << kEdge << " adds of each end per round.\n\n"
      << "| AddVm | median | p90 | min | max | samples |\n"
      << "|---|---|---|---|---|---|\n"
      << "| VMs 1-" << kEdge << " | " << FormatMillis(first.Median()) << " | " << FormatMillis(first.Percentile(0.9))
      << " | " << FormatMillis(first.Min()) << " | " << FormatMillis(first.Max()) << " | " << first.size() << " |\n"
      << "| VMs " << options.vms - kEdge + 1 << "-" << options.vms << " | " << FormatMillis(last.Median()) << " | "
      << FormatMillis(last.Percentile(0.9)) << " | " << FormatMillis(last.Min()) << " | "
      << FormatMillis(last.Max()) << " | " << last.size() << " |\n"
      << "| all " << options.vms << " | " << FormatMillis(all.Median()) << " | " << FormatMillis(all.Percentile(0.9))
      << " | " << FormatMillis(all.Min()) << " | " << FormatMillis(all.Max()) << " | " << all.size() << " |\n"
      << "| RemoveVm, VMs " << options.vms << "-" << options.vms - kEdge + 1 << " (" << options.vms
      << " present) | " << FormatMillis(remove_last.Median()) << " | " << FormatMillis(remove_last.Percentile(0.9))
      << " | " << FormatMillis(remove_last.Min()) << " | " << FormatMillis(remove_last.Max()) << " | "
      << remove_last.size() << " |\n"
      << "| RemoveVm, VMs " << kEdge << "-1 (" << kEdge << " present) | " << FormatMillis(remove_first.Median())
      << " | " << FormatMillis(remove_first.Percentile(0.9)) << " | " << FormatMillis(remove_first.Min()) << " | "
      << FormatMillis(remove_first.Max()) << " | " << remove_first.size() << " |\n\n"
      << "**Ratio, AddVm of VMs " << options.vms - kEdge + 1 << "-" << options.vms << " / VMs 1-" << kEdge
      << " (medians): " << FormatRatio(last.Median(), first.Median()) << "** (goal: at most 1.5; "
      << (ratio > 0 && ratio <= 1.5 ? "met" : "NOT met") << "). RemoveVm, many present / few present: "
      << FormatRatio(remove_last.Median(), remove_first.Median()) << ".\n\n"
      << "| Ruleset | `nft list ruleset` bytes | rules |\n"
      << "|---|---|---|\n"
      << "| 1 VM | " << Bytes(at_one) << " | " << at_one.rules << " |\n"
      << "| " << options.vms << " VMs | " << Bytes(at_n) << " | " << at_n.rules << " |\n";
  std::cout << out.str() << std::flush;
  return 0;
}

}  // namespace

int NetRulesMain(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "--vms" || arg == "--rounds") && i + 1 < argc) {
      (arg == "--vms" ? options.vms : options.rounds) = std::atoi(argv[++i]);
    } else if (arg == "--quick") {
      options.rounds = 2;
    } else if (arg == "-h" || arg == "--help") {
      std::cout << "agentvm-bench net-rules [--vms N (500)] [--rounds N (5)] [--quick]: time Firewall::AddVm of the "
                   "first and the last VMs, and the ruleset size, in a private network namespace (needs root)\n";
      return 0;
    } else {
      std::cerr << "agentvm-bench net-rules: unknown argument " << arg << "\n";
      return 2;
    }
  }
  if (options.vms < 2 * kEdge || options.vms > 60000 || options.rounds < 1) {
    std::cerr << "agentvm-bench net-rules: need --vms of at least " << 2 * kEdge << " and --rounds of at least 1\n";
    return 2;
  }
  SetLogLevel("warn");
  return RunInPrivateNetns("agentvm-bench net-rules", [&] { return Run(options); });
}

}  // namespace agentvm::bench
