// allow_domains through the whole daemon with a real guest: POST /v1/vms
// with a list (or PATCH .../network on a running VM), then what the guest
// can resolve and reach in the test world.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/command.h"
#include "tests/support/daemon.h"
#include "tests/support/net_world.h"

namespace agentvm::testing {
namespace {

using nlohmann::json;

// `agentvm egress ID -f --json` running against the daemon, its output read
// as it comes: what a user following a VM's log sees, and when.
class EgressFollower {
 public:
  EgressFollower(const Daemon& daemon, const std::string& id) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    std::vector<std::string> args = {BinPath("agentvm"), "--socket", daemon.socket(), "egress", id, "-f", "--json"};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    if (::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
  }
  ~EgressFollower() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
  }

  // Waits up to `limit` for `needle` in what it printed; all of it so far.
  std::string WaitFor(const std::string& needle, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (text_.find(needle) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{.fd = out_, .events = POLLIN, .revents = 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
      char buffer[4096];
      const ssize_t n = ::read(out_, buffer, sizeof buffer);
      if (n <= 0) break;
      text_.append(buffer, static_cast<std::size_t>(n));
    }
    return text_;
  }
  // Its exit status once it ends by itself within `limit`; -1 otherwise.
  int Exit(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      ::usleep(20'000);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_ = false;
  std::string text_;
};

TEST(NetworkDomainsVmTest, AGuestResolvesAndReachesOnlyItsListedNames) {
  ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root";
  NetWorld world;
  Daemon daemon({.netns = world.daemon_ns(), .extra_args = {"--dns-upstream", std::string(NetWorld::kDnsAddress)}});
  auto [status, text] = daemon.Http("POST", "/v1/vms", R"({"network": {"allow_domains": ["WEB.test."]}})");
  ASSERT_EQ(status, 201) << text << daemon.Log();
  const json vm = json::parse(text);
  const std::string id = vm["id"];
  EXPECT_EQ(vm["network"]["allow_domains"], json::array({"web.test"}));
  auto guest = [&](const std::string& script) { return daemon.Cli({"exec", id, "--", "sh", "-c", script}); };
  const std::string url = "http://" + std::string(NetWorld::kWebAddress) + ":80/";

  auto by_ip = guest("timeout 5 wget -q -O- " + url);
  EXPECT_NE(by_ip.exit_code, 0) << "nothing learned yet: " << by_ip.out;

  auto allowed = guest("nslookup web.test");
  EXPECT_EQ(allowed.exit_code, 0) << allowed.out << allowed.err;
  EXPECT_NE(allowed.out.find(NetWorld::kWebAddress), std::string::npos) << allowed.out;
  auto fetched = guest("timeout 5 wget -q -O- " + url);
  EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_EQ(fetched.out, NetWorld::HttpBody(80));

  auto refused = guest("nslookup secret-data.exfil.test");
  EXPECT_EQ(refused.out.find("Address: 1"), std::string::npos) << refused.out;
  EXPECT_EQ(world.DnsLog(NetWorld::kDnsAddress).find("exfil"), std::string::npos)
      << "a refused name must never reach upstream";
  EXPECT_NE(world.DnsLog(NetWorld::kDnsAddress).find("web.test"), std::string::npos);

  // Every question is in the VM's egress log with its verdict, counted in
  // inspect and written to the JSONL file in its run dir.
  auto [log_status, log] = daemon.Http("GET", "/v1/vms/" + id + "/egress", "");
  ASSERT_EQ(log_status, 200) << log;
  EXPECT_NE(log.find(R"("name":"secret-data.exfil.test","type":1,"verdict":"refused")"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("name":"web.test","type":1,"verdict":"allowed","answers":["198.51.100.10"])"),
            std::string::npos)
      << log;
  auto [got, shown] = daemon.Http("GET", "/v1/vms/" + id, "");
  ASSERT_EQ(got, 200) << shown;
  EXPECT_GE(json::parse(shown)["network"]["dns_queries"]["refused"].get<int>(), 1) << shown;
  EXPECT_GE(json::parse(shown)["network"]["dns_queries"]["allowed"].get<int>(), 1) << shown;
  auto table = daemon.Cli({"egress", id});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  const std::size_t row = table.out.find("secret-data.exfil.test");
  ASSERT_NE(row, std::string::npos) << table.out;
  EXPECT_NE(table.out.substr(row, table.out.find('\n', row) - row).find("refused"), std::string::npos) << table.out;
  EXPECT_TRUE(std::filesystem::exists(daemon.run_dir() + "/vms/" + id + "/egress.jsonl"));
  auto [metrics_status, metrics] = daemon.Http("GET", "/metrics", "");
  ASSERT_EQ(metrics_status, 200);
  const std::string refused_series = "agentvm_dns_queries_total{verdict=\"refused\"} ";
  const std::size_t series = metrics.find(refused_series);
  ASSERT_NE(series, std::string::npos) << metrics;
  EXPECT_GE(std::stod(metrics.substr(series + refused_series.size())), 1) << "counted in the metrics too";

  // Refused connections are in the log too, within a second, with the name
  // that taught the address when one did: the connect by IP before any
  // answer had none, one to a port the policy refuses came from web.test.
  // `agentvm egress -f` streams it as it happens (agentvmd pushes it; the
  // CLI does not poll).
  EgressFollower follow(daemon, id);
  EXPECT_NE(follow.WaitFor("secret-data.exfil.test", std::chrono::seconds(5)).find("secret-data.exfil.test"),
            std::string::npos)
      << "the follow starts with what the log holds";
  auto wrong_port = guest("timeout 5 wget -q -O- http://" + std::string(NetWorld::kWebAddress) + ":8080/");
  EXPECT_NE(wrong_port.exit_code, 0) << wrong_port.out;
  const auto refused_at = std::chrono::steady_clock::now();
  const std::string to_8080 = R"("destination":"198.51.100.10","port":8080,"protocol":"tcp","verdict":"refused",)"
                              R"("learned_from":"web.test")";
  const std::string followed = follow.WaitFor(to_8080, std::chrono::seconds(1));
  EXPECT_NE(followed.find(to_8080), std::string::npos) << "not streamed within 1 s: " << followed;
  std::cout << "refused connect streamed by egress -f after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - refused_at).count()
            << " ms\n";
  std::string connections;
  while (connections.find(to_8080) == std::string::npos &&
         std::chrono::steady_clock::now() - refused_at < std::chrono::seconds(1)) {
    connections = daemon.Http("GET", "/v1/vms/" + id + "/egress", "").second;
    if (connections.find(to_8080) == std::string::npos) ::usleep(50'000);
  }
  EXPECT_NE(connections.find(to_8080), std::string::npos) << "not in the log within 1 s: " << connections;
  EXPECT_NE(connections.find(R"("kind":"refused","destination":"198.51.100.10","port":80,"protocol":"tcp",)"
                             R"("verdict":"refused","learned_from":"")"),
            std::string::npos)
      << connections;
  auto rows = daemon.Cli({"egress", id});
  EXPECT_NE(rows.out.find("198.51.100.10:8080"), std::string::npos) << rows.out;
  const std::string logged_series = "\nagentvm_egress_log_refused_total ";  // not the HELP line
  const std::string now = daemon.Http("GET", "/metrics", "").second;
  ASSERT_NE(now.find(logged_series), std::string::npos) << now;
  EXPECT_GE(std::stod(now.substr(now.find(logged_series) + logged_series.size())), 2);
  EXPECT_EQ(daemon.Cli({"rm", "-f", id}).exit_code, 0) << daemon.Log();
  EXPECT_EQ(follow.Exit(std::chrono::seconds(5)), 0) << "the stream ends, cleanly, when the VM is removed";
}

// --preset claude-code: the preset's names resolve through the forwarder
// (the test world serves api.anthropic.com) and reach their address; names
// outside the preset, web.test among them, are refused. The VM shows the
// preset it came from.
TEST(NetworkDomainsVmTest, APresetVmResolvesThePresetsNamesAndNothingElse) {
  ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root";
  NetWorld world;
  Daemon daemon({.netns = world.daemon_ns(), .extra_args = {"--dns-upstream", std::string(NetWorld::kDnsAddress)}});
  auto created = daemon.Cli({"create", "--preset", "claude-code"});
  ASSERT_EQ(created.exit_code, 0) << created.err << daemon.Log();
  const std::string id = created.out.substr(0, created.out.find('\n'));
  auto [got, shown] = daemon.Http("GET", "/v1/vms/" + id, "");
  ASSERT_EQ(got, 200) << shown;
  const json network = json::parse(shown)["network"];
  EXPECT_EQ(network["presets"], json::array({"claude-code"}));
  EXPECT_NE(network["preset_domains"].dump().find(NetWorld::kPresetName), std::string::npos) << network.dump();
  EXPECT_EQ(network["allow_domains"], json::array()) << "the VM's own names are a list apart";
  auto guest = [&](const std::string& script) { return daemon.Cli({"exec", id, "--", "sh", "-c", script}); };

  auto resolved = guest(std::string("nslookup ") + NetWorld::kPresetName);
  EXPECT_EQ(resolved.exit_code, 0) << resolved.out << resolved.err;
  EXPECT_NE(resolved.out.find(NetWorld::kWebAddress), std::string::npos) << resolved.out;
  auto fetched = guest(std::string("timeout 5 wget -q -O- http://") + NetWorld::kPresetName + "/");
  EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_EQ(fetched.out, NetWorld::HttpBody(80));

  // web.test exists upstream (the world itself asks for it, so it is in
  // the upstream log anyway); a name of our own shows nothing reaches it.
  auto refused = guest(std::string("nslookup ") + NetWorld::kWebName);
  EXPECT_EQ(refused.out.find(NetWorld::kWebAddress), std::string::npos) << refused.out;
  guest("nslookup not-in-the-preset.test");
  EXPECT_EQ(world.DnsLog(NetWorld::kDnsAddress).find("not-in-the-preset"), std::string::npos)
      << "a name outside the preset never reaches upstream";
  EXPECT_NE(world.DnsLog(NetWorld::kDnsAddress).find(NetWorld::kPresetName), std::string::npos);

  auto unknown = daemon.Cli({"create", "--preset", "no-such-preset"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("known: claude-code"), std::string::npos) << unknown.err;
  EXPECT_EQ(daemon.Cli({"rm", "-f", id}).exit_code, 0) << daemon.Log();
}

// PATCH /v1/vms/{id}/network on a running guest: what it opens works at
// once, what it takes back is refused for new connections.
TEST(NetworkDomainsVmTest, APolicyChangedLiveOpensAndClosesAtOnce) {
  ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root";
  NetWorld world;
  Daemon daemon({.netns = world.daemon_ns(), .extra_args = {"--dns-upstream", std::string(NetWorld::kDnsAddress)}});
  auto [status, text] = daemon.Http("POST", "/v1/vms", R"({"network": {"allow_domains": ["nothing.test"]}})");
  ASSERT_EQ(status, 201) << text << daemon.Log();
  const std::string id = json::parse(text)["id"];
  auto guest = [&](const std::string& script) { return daemon.Cli({"exec", id, "--", "sh", "-c", script}); };
  auto patch = [&](const std::string& body) {
    auto [code, reply] = daemon.Http("PATCH", "/v1/vms/" + id + "/network", body);
    EXPECT_EQ(code, 200) << reply << daemon.Log();
    return code == 200 ? json::parse(reply) : json();
  };
  const std::string web = "http://" + std::string(NetWorld::kWebAddress);
  const std::string fetch = "nslookup web.test >/dev/null && timeout 5 wget -q -O- ";

  EXPECT_NE(guest(fetch + web + ":80/").exit_code, 0) << "web.test is not on the list yet";

  json vm = patch(R"({"allow_domains": ["nothing.test", "web.test"], "allow_tcp_ports": [8080]})");
  EXPECT_EQ(vm["network"]["allow_domains"], json::array({"nothing.test", "web.test"}));
  EXPECT_EQ(vm["network"]["allow_tcp_ports"], json::array({8080}));
  auto on_80 = guest(fetch + web + ":80/");
  EXPECT_EQ(on_80.exit_code, 0) << on_80.out << on_80.err;
  EXPECT_EQ(on_80.out, NetWorld::HttpBody(80));
  auto on_8080 = guest("timeout 5 wget -q -O- " + web + ":8080/");
  EXPECT_EQ(on_8080.exit_code, 0) << on_8080.err;
  EXPECT_EQ(on_8080.out, NetWorld::HttpBody(8080));

  vm = patch(R"({"allow_tcp_ports": []})");
  EXPECT_EQ(vm["network"]["allow_domains"], json::array({"nothing.test", "web.test"})) << "untouched";
  EXPECT_NE(guest("timeout 5 wget -q -O- " + web + ":8080/").exit_code, 0) << "port 8080 closed again";
  EXPECT_EQ(guest("timeout 5 wget -q -O- " + web + ":80/").exit_code, 0) << "web.test still allowed";

  vm = patch(R"({"allow_domains": ["nothing.test"]})");
  auto taken_back = guest("timeout 5 wget -q -O- " + web + ":80/");
  EXPECT_NE(taken_back.exit_code, 0) << "what web.test taught is taken back: " << taken_back.out;
  auto refused = guest("nslookup web.test");
  EXPECT_EQ(refused.out.find(NetWorld::kWebAddress), std::string::npos) << refused.out;

  // The change is the VM's policy now: inspect shows it.
  auto [got, shown] = daemon.Http("GET", "/v1/vms/" + id, "");
  ASSERT_EQ(got, 200);
  EXPECT_EQ(json::parse(shown)["network"]["allow_domains"], json::array({"nothing.test"}));
  EXPECT_EQ(json::parse(shown)["network"]["allow_tcp_ports"], json::array());

  // A preset added live: its names resolve and connect; taken off, they are
  // refused again while the VM's own name stays.
  const std::string preset_fetch =
      std::string("nslookup ") + NetWorld::kPresetName + " >/dev/null && timeout 5 wget -q -O- http://" +
      NetWorld::kPresetName + "/";
  EXPECT_NE(guest(preset_fetch).exit_code, 0) << "not on the list yet";
  auto added = daemon.Cli({"net", id, "--preset", "claude-code"});
  ASSERT_EQ(added.exit_code, 0) << added.err;
  EXPECT_NE(added.out.find("presets:         claude-code"), std::string::npos) << added.out;
  auto via_preset = guest(preset_fetch);
  EXPECT_EQ(via_preset.exit_code, 0) << via_preset.out << via_preset.err;
  EXPECT_EQ(via_preset.out, NetWorld::HttpBody(80));
  auto removed = daemon.Cli({"net", id, "--no-preset", "claude-code"});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_NE(guest("timeout 5 wget -q -O- http://" + std::string(NetWorld::kWebAddress) + ":80/").exit_code, 0)
      << "what the preset's names taught is taken back";
  auto [after_status, after] = daemon.Http("GET", "/v1/vms/" + id, "");
  ASSERT_EQ(after_status, 200);
  EXPECT_EQ(json::parse(after)["network"]["allow_domains"], json::array({"nothing.test"}));
  EXPECT_EQ(json::parse(after)["network"]["presets"], json::array());
  EXPECT_EQ(json::parse(after)["network"]["preset_domains"], json::array());
  auto unknown = daemon.Http("PATCH", "/v1/vms/" + id + "/network", R"({"presets": ["no-such-preset"]})");
  EXPECT_EQ(unknown.first, 400) << unknown.second;
  EXPECT_EQ(daemon.Cli({"rm", "-f", id}).exit_code, 0) << daemon.Log();
}

}  // namespace
}  // namespace agentvm::testing
