#include "tests/support/net_world.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace agentvm::testing {
namespace {

using namespace std::chrono_literals;

std::atomic<int> next_serial{0};

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string Join(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& arg : argv) line += (line.empty() ? "" : " ") + arg;
  return line;
}

void Must(const std::vector<std::string>& argv) {
  auto result = RunCommand(argv, 10s);
  if (result.exit_code != 0) {
    throw std::runtime_error("net world: " + Join(argv) + ": exit " + std::to_string(result.exit_code) + ": " +
                             result.err);
  }
}

bool Reaped(pid_t pid) {
  int status = 0;
  const pid_t r = ::waitpid(pid, &status, WNOHANG);
  return r == pid || (r < 0 && errno == ECHILD);
}

}  // namespace

std::string NetWorld::HttpBody(int port) { return "hello from " + std::to_string(port) + "\n"; }

NetWorld::NetWorld() : dir_("avmnet"), serial_(next_serial++) {
  try {
    Build();
  } catch (...) {
    Teardown();
    throw;
  }
}

NetWorld::~NetWorld() { Teardown(); }

const std::string& NetWorld::daemon_ns() const { return daemon_->name(); }
const std::string& NetWorld::internet_ns() const { return internet_->name(); }

CommandResult NetWorld::Exec(const std::string& ns, const std::vector<std::string>& argv,
                             std::chrono::seconds timeout) {
  std::vector<std::string> full = {"ip", "netns", "exec", ns};
  full.insert(full.end(), argv.begin(), argv.end());
  return RunCommand(full, timeout);
}

CommandResult NetWorld::InDaemon(const std::vector<std::string>& argv, std::chrono::seconds timeout) const {
  return Exec(daemon_ns(), argv, timeout);
}

CommandResult NetWorld::InInternet(const std::vector<std::string>& argv, std::chrono::seconds timeout) const {
  return Exec(internet_ns(), argv, timeout);
}

std::vector<pid_t> NetWorld::server_pids() const {
  std::vector<pid_t> pids;
  for (const auto& server : servers_) pids.push_back(server.pid);
  return pids;
}

std::string NetWorld::DnsLog(const std::string& address) const {
  for (const auto& server : servers_) {
    if (server.name == "dns-" + address) return Slurp(server.log);
  }
  return "";
}

void NetWorld::Build() {
  // "avmtest-" first: scripts/test reports any namespace so named as a leak.
  const std::string tag = std::to_string(serial_);
  daemon_.emplace("avmtest-d" + tag);
  internet_.emplace("avmtest-i" + tag);
  const std::string& d = daemon_->name();
  const std::string& i = internet_->name();

  // Created inside the daemon namespace with its peer placed straight into
  // the internet one: the root namespace never holds either end.
  Must({"ip", "-n", d, "link", "add", kUplink, "type", "veth", "peer", "name", "inet0", "netns", i});

  const auto daemon_batch = dir_.path() / "daemon.ip";
  WriteFile(daemon_batch, std::string("link set lo up\n") +
                              "addr add " + kUplinkAddress + "/24 dev " + kUplink + "\n" +
                              "link set " + kUplink + " up\n" +
                              "route add default via " + kInternetAddress + "\n");
  Must({"ip", "-n", d, "-batch", daemon_batch.string()});

  const auto internet_batch = dir_.path() / "internet.ip";
  WriteFile(internet_batch, std::string("link set lo up\n") +
                                "addr add " + kInternetAddress + "/24 dev inet0\n" +
                                "link set inet0 up\n" +
                                "addr add " + kWebAddress + "/32 dev lo\n" +
                                "addr add " + kDnsAddress + "/32 dev lo\n" +
                                "addr add " + kOtherDnsAddress + "/32 dev lo\n" +
                                "route add " + kVmSubnet + " via " + kUplinkAddress + "\n");
  Must({"ip", "-n", i, "-batch", internet_batch.string()});

  for (int port : kHttpPorts) {
    const auto root = dir_.path() / ("www" + std::to_string(port));
    std::filesystem::create_directory(root);
    WriteFile(root / "index.html", HttpBody(port));
    StartServer("http-" + std::to_string(port),
                {"busybox", "httpd", "-f", "-p", std::string(kWebAddress) + ":" + std::to_string(port), "-h",
                 root.string()});
  }
  for (const std::string address : {kDnsAddress, kOtherDnsAddress}) {
    // --local makes .test (and the preset name) ours: a name it lacks, or
    // web.test's AAAA, gets a plain negative answer instead of REFUSED for
    // want of an upstream.
    StartServer("dns-" + address,
                {"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                 "--bind-interfaces", "--listen-address=" + address, "--port=53", "--local=/test/",
                 std::string("--host-record=") + kWebName + "," + kWebAddress,
                 std::string("--host-record=") + kPresetName + "," + kWebAddress,
                 std::string("--local=/") + kPresetName + "/", "--log-facility=-",
                 "--log-queries", "--pid-file=" + (dir_.path() / ("dns-" + address + ".pid")).string()});
  }

  const auto deadline = std::chrono::steady_clock::now() + 15s;
  for (int port : kHttpPorts) {
    const std::string url = "http://" + std::string(kWebAddress) + ":" + std::to_string(port) + "/";
    // No wget -T: Debian's busybox-static 1.35 crashes on it.
    WaitUntil("http server on port " + std::to_string(port),
              [&] { return InInternet({"busybox", "wget", "-q", "-O-", url}, 5s).out == HttpBody(port); },
              deadline);
  }
  for (const std::string address : {kDnsAddress, kOtherDnsAddress}) {
    WaitUntil("dns server on " + address, [&] {
      auto answer = InInternet({"busybox", "nslookup", "-type=a", kWebName, address}, 5s);
      return answer.exit_code == 0 && answer.out.find(kWebAddress) != std::string::npos;
    }, deadline);
  }
}

void NetWorld::StartServer(const std::string& name, const std::vector<std::string>& argv) {
  Server server{name, -1, dir_.path() / (name + ".log")};
  std::vector<std::string> full = {"ip", "netns", "exec", internet_->name()};
  full.insert(full.end(), argv.begin(), argv.end());
  std::vector<char*> args;
  for (auto& arg : full) args.push_back(arg.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, server.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  // Its own process group, so teardown reaches whatever the server forks.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  const int err = ::posix_spawnp(&server.pid, "ip", &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) throw std::runtime_error("net world: cannot start " + name + ": " + std::strerror(err));
  servers_.push_back(server);
}

void NetWorld::WaitUntil(const std::string& what, const std::function<bool()>& probe,
                         std::chrono::steady_clock::time_point deadline) const {
  for (;;) {
    // A server that died (bad flag, address in use) fails at once, with its log.
    for (const auto& server : servers_) {
      if (::kill(server.pid, 0) != 0 || Reaped(server.pid)) {
        throw std::runtime_error("net world: " + server.name + " exited: " + Slurp(server.log));
      }
    }
    if (probe()) return;
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("net world: " + what + " did not answer in time");
    }
    std::this_thread::sleep_for(20ms);
  }
}

void NetWorld::KillGroup(const Server& server) noexcept {
  ::kill(-server.pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  bool reaped = false;
  // Done when the leader is reaped and nothing is left in its group.
  while (std::chrono::steady_clock::now() < deadline) {
    reaped = reaped || Reaped(server.pid);
    if (reaped && ::kill(-server.pid, 0) != 0) return;
    std::this_thread::sleep_for(5ms);
  }
  ::kill(-server.pid, SIGKILL);
  if (!reaped) ::waitpid(server.pid, nullptr, 0);
}

void NetWorld::Teardown() noexcept {
  for (const auto& server : servers_) KillGroup(server);
  servers_.clear();
  // Deleting a namespace deletes the veth pair with it.
  try {
    internet_.reset();
    daemon_.reset();
  } catch (...) {
  }
}

}  // namespace agentvm::testing
