#include "bench/egress_bench.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "bench/private_netns.h"
#include "bench/stats.h"
#include "common/logging.h"
#include "netsetup/dns_forwarder.h"
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

// Microseconds: a Learn batch or a DNS round trip is tens of them.
std::string Micros(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f µs", seconds * 1e6);
  return text;
}

// | what | median | percentile q | min | max | samples |
void Row(std::ostream& out, const std::string& what, const Samples& s, double q) {
  out << "| " << what << " | " << Micros(s.Median()) << " | " << Micros(s.Percentile(q)) << " | " << Micros(s.Min())
      << " | " << Micros(s.Max()) << " | " << s.size() << " |\n";
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
  auto row = [&](const std::string& what, const Samples& s) { Row(out, what, s, 0.9); };
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

// A query for `name`, type A, recursion desired.
std::vector<std::uint8_t> Query(std::uint16_t id, const std::string& name) {
  std::vector<std::uint8_t> q = {static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id), 0x01, 0x00, 0, 1,
                                 0, 0, 0, 0, 0, 0};
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    q.push_back(static_cast<std::uint8_t>(dot - start));
    q.insert(q.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  q.insert(q.end(), {0, 0, 1, 0, 1});
  return q;
}

int UdpSocket(const std::string& address, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &local.sin_addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    std::perror(("agentvm-bench egress-dns: bind " + address).c_str());
    std::_Exit(1);
  }
  return fd;
}

// The upstream: answers every question with one A record, TTL 300.
void ServeUpstream(int fd, const std::atomic<bool>& stop) {
  std::vector<std::uint8_t> buffer(512);
  while (!stop) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 100) != 1) continue;
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t got = ::recvfrom(fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    auto question = got > 0 ? net::ParseStandardQuery({buffer.data(), static_cast<std::size_t>(got)}) : std::nullopt;
    if (!question) continue;
    std::vector<std::uint8_t> reply(buffer.begin(), buffer.begin() + static_cast<long>(question->end));
    reply[2] = 0x81;  // QR, RD
    reply[3] = 0x80;  // RA, NOERROR
    reply[7] = 1;     // ANCOUNT
    reply[10] = reply[11] = 0;  // no additional records
    reply.insert(reply.end(), {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 198, 51, 100, 10});
    ::sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
  }
}

// One query from `fd` to the forwarder and its answer: how long, or a
// negative duration when no answer came with `rcode`.
Clock::duration RoundTrip(int fd, std::uint16_t id, const std::string& name, int rcode) {
  const std::vector<std::uint8_t> query = Query(id, name);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(53);
  ::inet_pton(AF_INET, "10.101.0.1", &to.sin_addr);
  std::uint8_t reply[512];
  const auto start = Clock::now();
  ::sendto(fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  while (::poll(&p, 1, 2000) == 1) {
    const ssize_t got = ::recv(fd, reply, sizeof reply, 0);
    if (got >= 12 && reply[0] == query[0] && reply[1] == query[1]) {
      const auto took = Clock::now() - start;
      return (reply[3] & 0x0f) == rcode ? took : -took;
    }
  }
  return -Clock::duration(1);
}

int RunDns(int queries) {
  for (const char* command : {"ip link set lo up", "ip addr add 10.101.0.1/32 dev lo", "ip addr add 10.101.0.2/32 dev lo",
                              "ip addr add 10.101.0.3/32 dev lo"}) {
    if (std::system(command) != 0) {
      std::cerr << "agentvm-bench egress-dns: " << command << " failed\n";
      return 1;
    }
  }
  auto firewall = net::Firewall::Create(Config());
  if (!firewall) {
    std::cerr << "agentvm-bench egress-dns: " << firewall.error().message << "\n";
    return 1;
  }
  // Loopback stands in for the bridge here, and the VMs' masquerade (for
  // anything not leaving through the bridge) would rewrite their source
  // address on it: the forwarder would not know them.
  if (std::system("nft flush chain inet agentvm postrouting") != 0) {
    std::cerr << "agentvm-bench egress-dns: nft flush chain inet agentvm postrouting failed\n";
    return 1;
  }
  // VM 1 (10.101.0.2) resolves by list; VM 2 (10.101.0.3) has none.
  if (auto added = (*firewall)->AddVm(ByNameVm(1)); !added) {
    std::cerr << "agentvm-bench egress-dns: " << added.error().message << "\n";
    return 1;
  }
  net::EgressByName egress(**firewall);
  egress.SetList(VmAddress(1), {"bench.test"});
  const int upstream = UdpSocket("127.0.0.1", 5353);
  std::atomic<bool> stop = false;
  std::thread upstream_thread([&] { ServeUpstream(upstream, stop); });
  boost::asio::io_context io;
  DnsForwarderOptions options;
  options.listen = boost::asio::ip::udp::endpoint(boost::asio::ip::make_address_v4("10.101.0.1"), 53);
  options.upstream = boost::asio::ip::udp::endpoint(boost::asio::ip::make_address_v4("127.0.0.1"), 5353);
  options.serve_tcp = false;
  options.policy = &egress;
  auto forwarder = std::make_unique<DnsForwarder>(io.get_executor(), options);
  if (auto started = forwarder->Start(); !started) {
    std::cerr << "agentvm-bench egress-dns: " << started.error().message << "\n";
    return 1;
  }
  std::thread io_thread([&] { io.run(); });
  const int listed = UdpSocket("10.101.0.2", 0);
  const int unlisted = UdpSocket("10.101.0.3", 0);
  Samples plain, learned, refused;
  int failures = 0;
  std::string failed;
  auto take = [&](Samples& samples, Clock::duration took, const char* what) {
    if (took < Clock::duration::zero()) {
      if (failures++ == 0) failed = what;
    } else {
      samples.Add(took);
    }
  };
  std::uint16_t id = 1;
  for (int i = 0; i < queries; ++i) {
    // Interleaved, so load from elsewhere falls on all three alike.
    take(plain, RoundTrip(unlisted, id++, "bench.test", 0), "without a list");
    take(learned, RoundTrip(listed, id++, "bench.test", 0), "with a list");
    take(refused, RoundTrip(listed, id++, "other.test", 5), "refused");
  }
  io.stop();
  io_thread.join();
  forwarder.reset();
  stop = true;
  upstream_thread.join();
  if (failures > 0) {
    std::cerr << "agentvm-bench egress-dns: " << failures << " queries got no or the wrong answer, the first "
              << failed << "\n";
    return 1;
  }
  std::ostringstream out;
  out << "## Egress by name: DNS round trip through the forwarder (private netns, local upstream)\n\n"
      << queries << " queries of each kind, interleaved; UDP over loopback, the upstream answers at once.\n\n"
      << "| | p50 | p99 | min | max | samples |\n|---|---|---|---|---|---|\n";
  auto row = [&](const std::string& what, const Samples& s) { Row(out, what, s, 0.99); };
  row("VM without a list (forwarded)", plain);
  row("VM with a list, allowed name (forwarded, address learned before relaying)", learned);
  row("VM with a list, other name (REFUSED, never forwarded)", refused);
  out << "\n**p50 with a list / without: " << FormatRatio(learned.Median(), plain.Median()) << ".**\n";
  std::cout << out.str() << std::flush;
  return 0;
}

}  // namespace

int EgressDnsMain(int argc, char** argv) {
  int queries = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--queries" && i + 1 < argc) {
      queries = std::atoi(argv[++i]);
    } else if (arg == "-h" || arg == "--help") {
      std::cout << "agentvm-bench egress-dns [--queries N (2000)]: DNS round trips through the forwarder for a VM "
                   "without a list, with one (learning) and a refused name, interleaved, in a private network "
                   "namespace (needs root)\n";
      return 0;
    } else {
      std::cerr << "agentvm-bench egress-dns: unknown argument " << arg << "\n";
      return 2;
    }
  }
  if (queries < 100 || queries > 100000) {
    std::cerr << "agentvm-bench egress-dns: need --queries in 100..100000\n";
    return 2;
  }
  SetLogLevel("warn");
  return RunInPrivateNetns("agentvm-bench egress-dns", [&] { return RunDns(queries); });
}

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
