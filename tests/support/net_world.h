#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/command.h"
#include "tests/support/netns.h"
#include "tests/support/temp_dir.h"

namespace agentvm::testing {

// The world the privileged network tests run in: a "daemon" namespace (where
// agentvmd, its bridge and its VMs live) and an "internet" namespace joined to
// it by a veth pair and routed as its uplink, running real HTTP and DNS
// servers. Nothing else is reachable, so whatever the daemon's firewall lets
// out lands here and nowhere else.
//
//   daemon ns                              internet ns
//   uplink0 192.0.2.1/24  <--- veth --->   inet0 192.0.2.2/24
//   default via 192.0.2.2                  lo: 198.51.100.10 (HTTP on 80, 443, 8080)
//                                              198.51.100.53 (DNS, the allowed upstream)
//                                              198.51.100.54 (DNS guests must not reach)
//                                          10.101.0.0/16 via 192.0.2.1
//
// The route back to the VM subnet is there so an unsolicited connection from
// the internet to a VM really is delivered to the daemon's namespace: only
// the daemon's firewall may stop it. The daemon namespace starts with IPv4
// forwarding off and no nftables rules; both are the daemon's job.
//
// The root namespace is touched only to add and delete the two namespaces:
// the veth pair is created inside them. Every server runs in its own process
// group and is killed with it; the destructor removes everything, also after
// a failed construction or a failed test.
class NetWorld {
 public:
  static constexpr char kUplink[] = "uplink0";
  static constexpr char kUplinkAddress[] = "192.0.2.1";  // the daemon's side, /24
  static constexpr char kInternetAddress[] = "192.0.2.2";  // the daemon's default gateway
  static constexpr char kWebAddress[] = "198.51.100.10";
  static constexpr char kDnsAddress[] = "198.51.100.53";
  static constexpr char kOtherDnsAddress[] = "198.51.100.54";
  static constexpr char kWebName[] = "web.test";  // resolves to kWebAddress on both DNS servers
  // A vendor's endpoint in the claude-code preset, served here (to
  // kWebAddress, on both DNS servers) so a --preset VM can resolve it.
  static constexpr char kPresetName[] = "api.anthropic.com";
  static constexpr char kVmSubnet[] = "10.101.0.0/16";
  static constexpr std::array<int, 3> kHttpPorts = {80, 443, 8080};

  // What the HTTP server on `port` answers for "/": "hello from <port>\n".
  static std::string HttpBody(int port);

  // Builds the namespaces, links, routes and servers, and returns once every
  // server answers. Throws std::runtime_error (having torn down what it
  // built) when any step fails.
  NetWorld();
  ~NetWorld();
  NetWorld(const NetWorld&) = delete;
  NetWorld& operator=(const NetWorld&) = delete;

  const std::string& daemon_ns() const;
  const std::string& internet_ns() const;

  // Runs argv inside namespace `ns` (`ip netns exec`).
  static CommandResult Exec(const std::string& ns, const std::vector<std::string>& argv,
                            std::chrono::seconds timeout = std::chrono::seconds(30));
  CommandResult InDaemon(const std::vector<std::string>& argv,
                         std::chrono::seconds timeout = std::chrono::seconds(30)) const;
  CommandResult InInternet(const std::vector<std::string>& argv,
                           std::chrono::seconds timeout = std::chrono::seconds(30)) const;

  // Every server's pid (each leads its own process group).
  std::vector<pid_t> server_pids() const;
  // What the DNS server on `address` has logged so far: a line such as
  // "query[A] web.test from 192.0.2.1" per query it received.
  std::string DnsLog(const std::string& address) const;
  // The world's scratch directory; every server's command line names it.
  // The HTTP server on port P serves dir()/wwwP.
  const std::filesystem::path& dir() const { return dir_.path(); }

  // Starts argv in the internet namespace as one more server of the world:
  // its own process group, output in dir()/<name>.log, killed with the
  // world. Returns at once; the caller waits until it answers.
  void StartServer(const std::string& name, const std::vector<std::string>& argv);

 private:
  struct Server {
    std::string name;
    pid_t pid = -1;
    std::filesystem::path log;
  };

  void Build();
  void Teardown() noexcept;
  // Polls `probe` until it returns true; throws naming `what` (and the log
  // of a server that died meanwhile) at the deadline.
  void WaitUntil(const std::string& what, const std::function<bool()>& probe,
                 std::chrono::steady_clock::time_point deadline) const;
  static void KillGroup(const Server& server) noexcept;

  TempDir dir_;
  int serial_;
  std::optional<NetNamespace> daemon_;
  std::optional<NetNamespace> internet_;
  std::vector<Server> servers_;
};

}  // namespace agentvm::testing
