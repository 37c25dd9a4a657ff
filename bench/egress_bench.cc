#include "bench/egress_bench.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bench/private_netns.h"
#include "bench/stats.h"
#include "common/logging.h"
#include "netsetup/dns_message.h"
#include "netsetup/domain_list.h"
#include "netsetup/egress_by_name.h"
#include "netsetup/firewall.h"

namespace agentvm::bench {
namespace {

constexpr int kEdge = 10;  // timed operations at each end

struct Options {
  int vms = 500;
  int names = 50;
};

net::FirewallConfig Config() {
  return net::FirewallConfig{.bridge = "agentvm0",
                             .subnet = *net::Ipv4Subnet::Parse("10.101.0.0/16"),
                             .gateway = *net::Ipv4Address::Parse("10.101.0.1")};
}

net::Ipv4Address VmAddress(int vm) { return net::Ipv4Address{Config().subnet.network.value + 1 + static_cast<unsigned>(vm)}; }

net::VmNetRules ByNameVm(int vm) {
  return net::VmNetRules{.tap = "avm-" + std::to_string(10000000000ll + vm), .address = VmAddress(vm), .by_name = true};
}

std::string Name(int vm, int name) { return "n" + std::to_string(name) + ".vm" + std::to_string(vm) + ".test"; }

// A distinct public-looking destination per (vm, name): 25,000 elements are
// 25,000 different addresses, as the worst case.
net::DnsAddress Destination(int vm, int name) {
  return net::DnsAddress{net::Ipv4Address{(100u << 24) + static_cast<unsigned>(vm) * 1000 + static_cast<unsigned>(name)},
                         300};
}

int Run(const Options& options) {
  auto firewall = net::Firewall::Create(Config());
  if (!firewall) {
    std::cerr << "agentvm-bench egress-learn: " << firewall.error().message << "\n";
    return 1;
  }
  net::EgressByName egress(**firewall);
  Samples add_first, add_last, learn_first, learn_last;
  for (int vm = 1; vm <= options.vms; ++vm) {
    std::vector<std::string> names;
    for (int n = 1; n <= options.names; ++n) names.push_back(Name(vm, n));
    auto canonical = net::CanonicalDomainPatterns(names, "bench");
    if (!canonical) {
      std::cerr << "agentvm-bench egress-learn: " << canonical.error().message << "\n";
      return 1;
    }
    auto start = Clock::now();
    auto added = (*firewall)->AddVm(ByNameVm(vm));
    auto took = Clock::now() - start;
    if (!added) {
      std::cerr << "agentvm-bench egress-learn: VM " << vm << ": " << added.error().message << "\n";
      return 1;
    }
    if (vm <= kEdge) add_first.Add(took);
    if (vm > options.vms - kEdge) add_last.Add(took);
    egress.SetList(VmAddress(vm), *canonical);
    for (int n = 1; n <= options.names; ++n) {
      const net::DnsAddress answer[] = {Destination(vm, n)};
      start = Clock::now();
      auto learned = egress.Learn(VmAddress(vm), Name(vm, n), answer);
      took = Clock::now() - start;
      if (!learned) {
        std::cerr << "agentvm-bench egress-learn: learn " << Name(vm, n) << ": " << learned.error().message << "\n";
        return 1;
      }
      // The first VM's first names: nearly empty sets. The last VM's last
      // names: everything else already learned.
      if (vm == 1 && n <= kEdge) learn_first.Add(took);
      if (vm == options.vms && n > options.names - kEdge) learn_last.Add(took);
    }
  }
  const int total = options.vms * options.names;
  // What was timed must have reached the kernel: the set holds every element.
  std::size_t in_kernel = 0;
  if (FILE* pipe = ::popen("nft list set inet agentvm vm_learned 2>/dev/null | grep -o ' \\. [0-9]' | wc -l", "r")) {
    if (std::fscanf(pipe, "%zu", &in_kernel) != 1) in_kernel = 0;
    ::pclose(pipe);
  }
  if (in_kernel != static_cast<std::size_t>(total)) {
    std::cerr << "agentvm-bench egress-learn: the kernel's vm_learned holds " << in_kernel << " elements, not "
              << total << "\n";
    return 1;
  }
  std::ostringstream out;
  out << "## Egress by name: learning an answer's address (netsetup alone, private netns)\n\n"
      << options.vms << " by-name VMs, each with a list of " << options.names
      << " names and one learned address per name (" << total
      << " elements in `vm_learned` at the end); each Learn is one netlink batch, acknowledged.\n\n"
      << "| | median | p90 | min | max | samples |\n|---|---|---|---|---|---|\n";
  // Microseconds: a Learn batch is tens of them.
  auto us = [](double seconds) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f µs", seconds * 1e6);
    return std::string(text);
  };
  auto row = [&](const std::string& what, const Samples& s) {
    out << "| " << what << " | " << us(s.Median()) << " | " << us(s.Percentile(0.9)) << " | " << us(s.Min())
        << " | " << us(s.Max()) << " | " << s.size() << " |\n";
  };
  row("Learn, VM 1, names 1-" + std::to_string(kEdge) + " (nothing else learned)", learn_first);
  row("Learn, VM " + std::to_string(options.vms) + ", its last " + std::to_string(kEdge) + " names (" +
          std::to_string(total - kEdge) + "+ learned)",
      learn_last);
  row("AddVm by name, VMs 1-" + std::to_string(kEdge), add_first);
  row("AddVm by name, VMs " + std::to_string(options.vms - kEdge + 1) + "-" + std::to_string(options.vms), add_last);
  out << "\n**Ratios (medians), at " << options.vms << " × " << options.names << " against 1 VM: Learn "
      << FormatRatio(learn_last.Median(), learn_first.Median()) << ", AddVm "
      << FormatRatio(add_last.Median(), add_first.Median()) << ".**\n";
  std::cout << out.str() << std::flush;
  return 0;
}

}  // namespace

int EgressLearnMain(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "--vms" || arg == "--names") && i + 1 < argc) {
      (arg == "--vms" ? options.vms : options.names) = std::atoi(argv[++i]);
    } else if (arg == "-h" || arg == "--help") {
      std::cout << "agentvm-bench egress-learn [--vms N (500)] [--names N (50)]: time EgressByName::Learn and "
                   "AddVm of a by-name VM at 1 VM and at N VMs x M learned names, in a private network "
                   "namespace (needs root)\n";
      return 0;
    } else {
      std::cerr << "agentvm-bench egress-learn: unknown argument " << arg << "\n";
      return 2;
    }
  }
  if (options.vms < 2 * kEdge || options.vms > 900 || options.names < kEdge || options.names > 256) {
    std::cerr << "agentvm-bench egress-learn: need --vms in " << 2 * kEdge << "..900 and --names in " << kEdge
              << "..256\n";
    return 2;
  }
  SetLogLevel("warn");
  return RunInPrivateNetns("agentvm-bench egress-learn", [&] { return Run(options); });
}

}  // namespace agentvm::bench
