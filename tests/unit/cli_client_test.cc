// The agentvm CLI in-process against an in-process ApiServer backed by the
// FakeVmService: what a user sees (stdout, stderr, exit status) per command.
#include "cli/cli.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/api/api_server.h"
#include "supervisor/api/testing/fake_vm_service.h"
#include "supervisor/api/testing/in_process_server_test.h"
#include "cli/api_client.h"

namespace agentvm::cli {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace std::string_literals;

// An in-memory file standing in for stdout, stderr or stdin.
class MemFile {
 public:
  explicit MemFile(const char* name) : fd_(::memfd_create(name, MFD_CLOEXEC)) {}
  ~MemFile() { ::close(fd_); }
  int fd() const { return fd_; }
  std::string Contents() const {
    std::string data;
    char buffer[4096];
    for (off_t offset = 0;;) {
      ssize_t n = ::pread(fd_, buffer, sizeof buffer, offset);
      if (n <= 0) break;
      data.append(buffer, static_cast<std::size_t>(n));
      offset += n;
    }
    return data;
  }
  void Set(const std::string& data) {
    EXPECT_EQ(::pwrite(fd_, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
    ::lseek(fd_, 0, SEEK_SET);
  }

 private:
  int fd_;
};

struct Outcome {
  int status = -1;
  std::string out;
  std::string err;
};

// A command that streams (events -f, egress -f) run on its own thread, its
// stdout read line by line as it comes.
class StreamingCli {
 public:
  StreamingCli(const std::string& socket_path, std::vector<std::string> args) : err_("stderr") {
    if (::pipe(pipe_fds_) != 0) return;
    context_.env_socket = socket_path;
    context_.out_fd = pipe_fds_[1];
    context_.err_fd = err_.fd();
    thread_ = std::thread([this, args = std::move(args)] { status_ = RunCli(args, context_); });
    out_ = ::fdopen(pipe_fds_[0], "r");
  }
  ~StreamingCli() {
    if (thread_.joinable()) thread_.join();
    if (out_) std::fclose(out_);
  }
  // The next line it printed ("" once it ended).
  std::string NextLine() {
    char buffer[512];
    return std::string(out_ && std::fgets(buffer, sizeof buffer, out_) ? buffer : "");
  }
  // Waits for it to end: its status; the rest of its output is then "".
  int Wait() {
    thread_.join();
    ::close(pipe_fds_[1]);
    return status_;
  }
  std::string err() { return err_.Contents(); }

 private:
  int pipe_fds_[2] = {-1, -1};
  MemFile err_;
  CliContext context_;
  int status_ = -1;
  std::thread thread_;
  FILE* out_ = nullptr;
};

class CliTest : public api::testing::InProcessServerTest {
 protected:
  void SetUp() override {
    InProcessServerTest::SetUp();
    StartServer();
  }

  Outcome Cli(std::vector<std::string> args, const std::string& stdin_data = "",
              bool handle_signals = false) {
    MemFile in("stdin"), out("stdout"), err("stderr");
    in.Set(stdin_data);
    CliContext context;
    context.env_socket = options_.socket_path;
    context.in_fd = in.fd();
    context.out_fd = out.fd();
    context.err_fd = err.fd();
    context.handle_signals = handle_signals;
    Outcome outcome;
    outcome.status = RunCli(args, context);
    outcome.out = out.Contents();
    outcome.err = err.Contents();
    return outcome;
  }

  std::size_t VmCount() {
    std::size_t count = 0;
    OnIo([&] { count = fake_.vms.size(); });
    return count;
  }

};

TEST_F(CliTest, RunRelaysOutputAndExitStatusAndReleasesTheVm) {
  Outcome outcome = Cli({"run", "--", "out:out\n", "err:err\n", "exit:7"});
  EXPECT_EQ(outcome.status, 7);
  EXPECT_EQ(outcome.out, "out\n");
  EXPECT_EQ(outcome.err, "err\n");
  EXPECT_EQ(VmCount(), 0u) << "run always hands its VM back";
  OnIo([&] {
    EXPECT_EQ(fake_.released, std::vector<std::string>{"vm-1"}) << "released, so a pool recycles it";
    EXPECT_TRUE(fake_.destroyed.empty());
  });
}

TEST_F(CliTest, RunTakesAPooledVmAndGivesItBack) {
  OnIo([&] {
    PoolInfo pool;
    pool.name = "tiny-1c-256m-nat-filtered";
    pool.image = "tiny";
    pool.network = NetworkMode::kNatFiltered;
    pool.min_ready = 1;
    pool.max_total = 2;
    pool.ready = 1;
    fake_.pools.push_back(pool);
  });
  Outcome outcome = Cli({"run", "--", "out:hi\n"});
  EXPECT_EQ(outcome.status, 0) << outcome.err;
  OnIo([&] {
    EXPECT_EQ(fake_.last_create->boot, BootMode::kAuto);
    EXPECT_EQ(fake_.pools[0].taken, 1u);
    EXPECT_EQ(fake_.pools[0].in_use, 0) << "back in the pool";
    EXPECT_EQ(fake_.pools[0].ready, 1);
  });
}

TEST_F(CliTest, BootOptionReachesTheDaemonAndLsShowsIt) {
  ASSERT_EQ(Cli({"create", "--boot", "cold"}).status, 0);
  OnIo([&] { EXPECT_EQ(fake_.last_create->boot, BootMode::kCold); });
  EXPECT_EQ(Cli({"run", "--boot", "restore", "--", "true"}).status, 0);
  OnIo([&] { EXPECT_EQ(fake_.last_create->boot, BootMode::kRestore); });
  Outcome list = Cli({"ls"});
  EXPECT_NE(list.out.find("vm-1  tiny   running  cold"), std::string::npos) << list.out;
  EXPECT_EQ(nlohmann::json::parse(Cli({"inspect", "vm-1"}).out)["boot"], "cold");

  int calls = fake_.calls();
  Outcome bad = Cli({"create", "--boot", "warm"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_EQ(bad.err, "agentvm: --boot expects auto, restore or cold, not \"warm\"\n"
                     "See 'agentvm create --help'.\n");
  EXPECT_EQ(Cli({"run", "--boot", "warm", "--", "true"}).status, 125);
  EXPECT_EQ(fake_.calls(), calls) << "refused before any request";
}

TEST_F(CliTest, NetChangesTheRunningVmsPolicyRelativeToWhatItIs) {
  ASSERT_EQ(Cli({"create", "--allow-domain", "api.anthropic.com", "--allow-port", "8080"}).status, 0);
  Outcome changed = Cli({"net", "vm-1", "--allow-domain", "registry.npmjs.org", "--deny-port", "8080",
                         "--bandwidth", "1M"});
  ASSERT_EQ(changed.status, 0) << changed.err;
  EXPECT_EQ(changed.out,
            "mode:            nat-filtered\n"
            "allow_domains:   api.anthropic.com, registry.npmjs.org\n"
            "presets:         -\n"
            "preset_domains:  -\n"
            "allow_tcp_ports: -\n"
            "allow_cidrs:     -\n"
            "bandwidth:       1000000 B/s each way\n");
  OnIo([&] {
    ASSERT_TRUE(fake_.last_network_update.has_value());
    EXPECT_FALSE(fake_.last_network_update->allow_cidrs.has_value()) << "only changed lists are sent";
    EXPECT_EQ(fake_.vms["vm-1"].network.allow_tcp_ports, std::vector<std::uint16_t>{});
  });
  auto network = nlohmann::json::parse(Cli({"inspect", "vm-1"}).out)["network"];
  EXPECT_EQ(network["allow_domains"], nlohmann::json::array({"api.anthropic.com", "registry.npmjs.org"}));

  // Taking off every name would lift the filter: refused, nothing sent.
  const int calls = fake_.calls();
  Outcome emptied = Cli({"net", "vm-1", "--deny-domain", "api.anthropic.com", "--deny-domain", "registry.npmjs.org"});
  EXPECT_EQ(emptied.status, 1);
  EXPECT_NE(emptied.err.find("lets it resolve every name"), std::string::npos) << emptied.err;
  EXPECT_EQ(fake_.calls(), calls + 1) << "only the read";
  EXPECT_EQ(Cli({"net", "vm-9", "--allow-port", "80"}).status, 1) << "an unknown VM";
}

TEST_F(CliTest, ReleaseTakesSeveralIdsAndGoesOnPastFailures) {
  ASSERT_EQ(Cli({"create"}).status, 0);
  ASSERT_EQ(Cli({"create"}).status, 0);
  Outcome released = Cli({"release", "vm-1", "vm-nope", "vm-2"});
  EXPECT_EQ(released.status, 1);
  EXPECT_EQ(released.out, "vm-1\nvm-2\n");
  EXPECT_EQ(released.err, "agentvm: no such VM: vm-nope\n");
  EXPECT_EQ(VmCount(), 0u);
  EXPECT_EQ(Cli({"release"}).status, 2);
}

TEST_F(CliTest, PoolsTableAndJson) {
  Outcome empty = Cli({"pools"});
  EXPECT_EQ(empty.status, 0);
  EXPECT_EQ(empty.out,
            "NAME  READY  STARTING  IN_USE  MIN  MAX  TAKEN  REPLACED  FAILED  GOLDEN  LAST_ERROR\n");
  OnIo([&] {
    PoolInfo pool;
    pool.name = "tiny-1c-256m-isolated";
    pool.image = "tiny";
    pool.network = NetworkMode::kIsolated;
    pool.min_ready = 3;
    pool.max_total = 6;
    pool.ready = 3;
    pool.taken = 12;
    pool.golden_ready = true;
    fake_.pools.push_back(pool);
    pool.name = "big-4c-4096m-nat-filtered";
    pool.ready = 0;
    pool.starting = 1;
    pool.failed = 2;
    pool.taken = 0;
    pool.golden_ready = false;
    pool.last_error = "golden snapshot: guest agent did not answer";
    fake_.pools.push_back(pool);
  });
  Outcome table = Cli({"pools"});
  EXPECT_EQ(table.status, 0) << table.err;
  EXPECT_EQ(table.out,
            "NAME                       READY  STARTING  IN_USE  MIN  MAX  TAKEN  REPLACED  FAILED  GOLDEN  LAST_ERROR\n"
            "tiny-1c-256m-isolated      3      0         0       3    6    12     0         0       yes\n"
            "big-4c-4096m-nat-filtered  0      1         0       3    6    0      0         2       no      "
            "golden snapshot: guest agent did not answer\n");
  auto json = nlohmann::json::parse(Cli({"pools", "--json"}).out);
  EXPECT_EQ(json["pools"][1]["last_error"], "golden snapshot: guest agent did not answer");
  EXPECT_EQ(Cli({"pools", "extra"}).status, 2);
}

TEST_F(CliTest, SnapshotSaveListRestoreRemove) {
  ASSERT_EQ(Cli({"create"}).status, 0);
  ASSERT_EQ(Cli({"cp", "-", "vm-1:/work/state"}, "clean").status, 0);

  Outcome saved = Cli({"snapshot", "save", "vm-1", "clean"});
  EXPECT_EQ(saved.status, 0) << saved.err;
  EXPECT_EQ(saved.out, "clean\n");
  Outcome duplicate = Cli({"snapshot", "save", "vm-1", "clean"});
  EXPECT_EQ(duplicate.status, 1);
  EXPECT_EQ(duplicate.err, "agentvm: VM vm-1 already has a snapshot named clean\n");

  Outcome list = Cli({"snapshot", "ls", "vm-1"});
  EXPECT_EQ(list.status, 0);
  EXPECT_EQ(list.out.substr(0, list.out.find('\n')), "NAME   SIZE   AGE");
  EXPECT_NE(list.out.find("clean  96MiB  "), std::string::npos) << list.out;
  auto json = nlohmann::json::parse(Cli({"snapshot", "ls", "vm-1", "--json"}).out);
  EXPECT_EQ(json["snapshots"][0]["name"], "clean");

  ASSERT_EQ(Cli({"cp", "-", "vm-1:/work/state"}, "dirty").status, 0);
  Outcome restored = Cli({"snapshot", "restore", "vm-1", "clean"});
  EXPECT_EQ(restored.status, 0) << restored.err;
  EXPECT_EQ(restored.out, "clean\n");
  EXPECT_EQ(Cli({"cp", "vm-1:/work/state", "-"}).out, "clean");

  Outcome removed = Cli({"snapshot", "rm", "vm-1", "clean"});
  EXPECT_EQ(removed.status, 0) << removed.err;
  EXPECT_EQ(Cli({"snapshot", "ls", "vm-1"}).out, "NAME  SIZE  AGE\n");
  Outcome missing = Cli({"snapshot", "restore", "vm-1", "clean"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.err, "agentvm: VM vm-1 has no snapshot named clean\n");
  EXPECT_EQ(Cli({"snapshot", "ls", "vm-nope"}).err, "agentvm: no such VM: vm-nope\n");
}

TEST_F(CliTest, BadSnapshotNamesAreRefusedBeforeAnyRequest) {
  ASSERT_EQ(Cli({"create"}).status, 0);
  int calls = fake_.calls();
  for (std::string name : {std::string(".."), std::string("a/b"), std::string(), std::string(".hidden"),
                           std::string(65, 'n')}) {
    Outcome refused = Cli({"snapshot", "save", "vm-1", name});
    EXPECT_EQ(refused.status, 2) << name;
    EXPECT_NE(refused.err.find("invalid snapshot name"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("See 'agentvm snapshot --help'"), std::string::npos) << refused.err;
  }
  // "-rf" would be read as an option; after "--" it is a name, and refused as one.
  EXPECT_NE(Cli({"snapshot", "rm", "vm-1", "--", "-rf"}).err.find("invalid snapshot name"),
            std::string::npos);
  EXPECT_EQ(fake_.calls(), calls);
}

TEST_F(CliTest, RunPassesVmAndExecOptions) {
  Outcome outcome = Cli({"run", "--cpus", "2", "--memory", "512", "--timeout", "2.5", "--env",
                         "FOO=bar", "--workdir", "/src", "-i", "--", "cat"},
                        "input");
  EXPECT_EQ(outcome.status, 0) << outcome.err;
  EXPECT_EQ(outcome.out, "input") << "stdin streams to the command";
  OnIo([&] {
    ASSERT_TRUE(fake_.last_create);
    EXPECT_EQ(fake_.last_create->cpus, 2);
    EXPECT_EQ(fake_.last_create->memory_mib, 512);
    ASSERT_TRUE(fake_.last_exec);
    EXPECT_EQ(fake_.last_exec->argv, (std::vector<std::string>{"cat"}));
    EXPECT_EQ(fake_.last_exec->env.at("FOO"), "bar");
    EXPECT_EQ(fake_.last_exec->cwd, "/src");
    EXPECT_EQ(fake_.last_exec->timeout, 2500ms);
  });
}

TEST_F(CliTest, RunStatusesForTimeoutSignalAndBinaryOutput) {
  EXPECT_EQ(Cli({"run", "--timeout", "1", "--", "timeout"}).status, 124);
  EXPECT_EQ(Cli({"run", "--", "signal:9"}).status, 137);
  Outcome binary = Cli({"run", "--", "bin"});
  EXPECT_EQ(binary.status, 0);
  EXPECT_EQ(binary.out, "\xff\xfe\x00\x80"s);
  EXPECT_EQ(VmCount(), 0u);
}

TEST_F(CliTest, RunFailuresUse125AndNameTheCause) {
  Outcome unknown = Cli({"run", "--image", "nope", "--", "true"});
  EXPECT_EQ(unknown.status, 125);
  EXPECT_EQ(unknown.err, "agentvm: cannot create VM: unknown image: nope\n");

  Outcome failed = Cli({"run", "--", "out:partial\n", "fail:guest went away"});
  EXPECT_EQ(failed.status, 125);
  EXPECT_EQ(failed.out, "partial\n");
  EXPECT_EQ(failed.err, "agentvm: guest went away\n");
  EXPECT_EQ(VmCount(), 0u) << "removed even when the exec failed";

  Outcome usage = Cli({"run", "--cpus", "x", "--", "true"});
  EXPECT_EQ(usage.status, 125);
  EXPECT_NE(usage.err.find("See 'agentvm run --help'"), std::string::npos);
}

TEST_F(CliTest, NoDaemonIsAClearError) {
  CliContext context;
  MemFile err("stderr");
  context.env_socket = dir_ + "/missing.sock";
  context.err_fd = err.fd();
  EXPECT_EQ(RunCli({"ls"}, context), 1);
  EXPECT_EQ(err.Contents(), "agentvm: cannot connect to " + dir_ +
                                "/missing.sock: No such file or directory (is agentvmd running?)\n");
}

TEST_F(CliTest, CreateListInspectStopRemove) {
  Outcome created = Cli({"create", "--memory", "128"});
  ASSERT_EQ(created.status, 0) << created.err;
  EXPECT_EQ(created.out, "vm-1\n");

  Outcome list = Cli({"ls"});
  EXPECT_EQ(list.status, 0);
  EXPECT_EQ(list.out.substr(0, list.out.find('\n')),
            "ID    IMAGE  STATE    BOOT     ADDRESS     CPUS  MEMORY  AGE  REASON");
  EXPECT_NE(list.out.find("vm-1  tiny   running  restore  10.101.0.2  1     128MiB"), std::string::npos)
      << list.out;

  auto json = nlohmann::json::parse(Cli({"ls", "--json"}).out);
  EXPECT_EQ(json["vms"][0]["id"], "vm-1");
  auto inspected = nlohmann::json::parse(Cli({"inspect", "vm-1"}).out);
  EXPECT_EQ(inspected["memory_mib"], 128);
  EXPECT_EQ(inspected["state"], "running");

  Outcome refused = Cli({"rm", "vm-1"});
  EXPECT_EQ(refused.status, 1);
  EXPECT_EQ(refused.err, "agentvm: VM vm-1 is running; stop it first or force\n");

  Outcome stopped = Cli({"stop", "vm-1"});
  EXPECT_EQ(stopped.status, 0);
  EXPECT_EQ(stopped.out, "vm-1\n");
  EXPECT_NE(Cli({"ls"}).out.find("stopped by request"), std::string::npos);

  Outcome removed = Cli({"rm", "vm-1"});
  EXPECT_EQ(removed.status, 0) << removed.err;
  EXPECT_EQ(VmCount(), 0u);
}

TEST_F(CliTest, NetworkOptionsReachTheDaemonAndInspectShowsThem) {
  Outcome created = Cli({"create", "--net", "nat-filtered", "--allow-port", "8080",
                         "--allow-cidr", "203.0.113.0/24", "--bandwidth", "1M"});
  ASSERT_EQ(created.status, 0) << created.err;
  OnIo([&] {
    ASSERT_TRUE(fake_.last_create);
    const NetworkRequest& network = fake_.last_create->network;
    EXPECT_EQ(network.mode, NetworkMode::kNatFiltered);
    EXPECT_EQ(network.allow_tcp_ports, (std::vector<std::uint16_t>{8080}));
    EXPECT_EQ(network.allow_cidrs, (std::vector<std::string>{"203.0.113.0/24"}));
    EXPECT_EQ(network.bandwidth_bytes_per_sec, 1'000'000u);
  });
  auto inspected = nlohmann::json::parse(Cli({"inspect", "vm-1"}).out);
  const auto& network = inspected["network"];
  EXPECT_EQ(network["mode"], "nat-filtered");
  EXPECT_EQ(network["address"], "10.101.0.2");
  EXPECT_EQ(network["allow_tcp_ports"], nlohmann::json::array({8080}));
  EXPECT_EQ(network["allow_cidrs"], nlohmann::json::array({"203.0.113.0/24"}));
  EXPECT_EQ(network["bandwidth_bytes_per_sec"], 1000000);
  EXPECT_EQ(network["dropped_connections"], 0);

  ASSERT_EQ(Cli({"create", "--net", "isolated"}).status, 0);
  Outcome list = Cli({"ls"});
  EXPECT_NE(list.out.find("vm-2  tiny   running  restore  -           1"), std::string::npos) << list.out;

  Outcome run = Cli({"run", "--net", "bridge", "--bridge", "br-lab", "--", "exit:0"});
  EXPECT_EQ(run.status, 0) << run.err;
  OnIo([&] { EXPECT_EQ(fake_.last_create->network.bridge, "br-lab"); });
}

TEST_F(CliTest, PresetsExpandInTheDaemonAndInspectShowsWhereNamesCameFrom) {
  Outcome created = Cli({"create", "--preset", "npm", "--preset", "pypi", "--allow-domain", "a.test"});
  ASSERT_EQ(created.status, 0) << created.err;
  OnIo([&] {
    ASSERT_TRUE(fake_.last_create);
    EXPECT_EQ(fake_.last_create->network.presets, (std::vector<std::string>{"npm", "pypi"}));
  });
  auto network = nlohmann::json::parse(Cli({"inspect", "vm-1"}).out)["network"];
  EXPECT_EQ(network["presets"], nlohmann::json::array({"npm", "pypi"}));
  EXPECT_EQ(network["allow_domains"], nlohmann::json::array({"a.test"}));
  EXPECT_EQ(network["preset_domains"],
            nlohmann::json::array({"registry.npmjs.org", "pypi.org", "files.pythonhosted.org"}));

  // Live: a preset taken off takes only its own names off.
  Outcome dropped = Cli({"net", "vm-1", "--no-preset", "npm", "--preset", "github"});
  ASSERT_EQ(dropped.status, 0) << dropped.err;
  EXPECT_NE(dropped.out.find("presets:         pypi, github\n"), std::string::npos) << dropped.out;
  network = nlohmann::json::parse(Cli({"inspect", "vm-1"}).out)["network"];
  EXPECT_EQ(network["allow_domains"], nlohmann::json::array({"a.test"}));
  EXPECT_EQ(network["preset_domains"][0], "pypi.org");
  EXPECT_EQ(network["preset_domains"].dump().find("npmjs"), std::string::npos) << network.dump();
  Outcome last = Cli({"net", "vm-1", "--no-preset", "pypi", "--no-preset", "github", "--deny-domain", "a.test"});
  EXPECT_EQ(last.status, 1);
  EXPECT_NE(last.err.find("would take the last name off"), std::string::npos) << last.err;
  Outcome unknown_live = Cli({"net", "vm-1", "--preset", "nope"});
  EXPECT_EQ(unknown_live.status, 1);
  EXPECT_NE(unknown_live.err.find("no preset \"nope\""), std::string::npos) << unknown_live.err;

  Outcome unknown = Cli({"create", "--preset", "nope"});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("network.presets: no preset \"nope\" (known: claude-code, codex, debian, github, "
                             "npm, pypi)"),
            std::string::npos)
      << unknown.err;
  Outcome bad = Cli({"run", "--preset", "Not_A_Name", "--", "true"});
  EXPECT_EQ(bad.status, 125);
  EXPECT_NE(bad.err.find("--preset: \"Not_A_Name\" is not a preset name"), std::string::npos) << bad.err;
  EXPECT_EQ(VmCount(), 1u);
}

TEST_F(CliTest, PresetsTableAndJson) {
  OnIo([&] { fake_.egress_presets = net::EgressPresets::Make({{"corp", {"git.corp.example"}}}).value(); });
  Outcome table = Cli({"presets"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_NE(table.out.find("NAME         SOURCE   DOMAINS\n"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("\npypi         builtin  pypi.org,files.pythonhosted.org\n"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("\ncorp         config   git.corp.example\n"), std::string::npos) << table.out;
  auto json = nlohmann::json::parse(Cli({"presets", "--json"}).out);
  EXPECT_EQ(json["presets"].back()["name"], "corp");
  EXPECT_EQ(json["presets"].back()["source"], "config");
  EXPECT_EQ(Cli({"presets", "extra"}).status, 2);
}

TEST_F(CliTest, EgressPrintsTheVmsQuestionsAsATableOrNdjson) {
  ASSERT_EQ(Cli({"create", "--allow-domain", "a.test"}).status, 0);
  OnIo([&] {
    fake_.egress["vm-1"] = {
        {.seq = 1, .time_ms = 3'600'000 + 61'000, .kind = "dns", .name = "a.test", .dns_type = 1,
         .verdict = "allowed", .answers = {"198.51.100.10"}},
        {.seq = 2, .time_ms = 3'600'000 + 62'000, .kind = "dns", .name = "exfil.evil.test", .dns_type = 16,
         .verdict = "refused"},
        {.seq = 3, .time_ms = 3'600'000 + 63'000, .kind = "refused", .verdict = "refused",
         .destination = "198.51.100.10", .port = 8080, .protocol = "tcp", .learned_from = "a.test"},
        {.seq = 4, .time_ms = 3'600'000 + 64'000, .kind = "refused", .verdict = "refused",
         .destination = "198.51.100.11", .protocol = "icmp"},
    };
  });
  Outcome table = Cli({"egress", "vm-1"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_EQ(table.out,
            "TIME      TYPE  NAME             VERDICT  ADDRESSES\n"
            "01:01:01  A     a.test           allowed  198.51.100.10\n"
            "01:01:02  TXT   exfil.evil.test  refused  -\n"
            "01:01:03  TCP   a.test           refused  198.51.100.10:8080\n"
            "01:01:04  ICMP  -                refused  198.51.100.11\n");
  Outcome json = Cli({"egress", "vm-1", "--json"});
  ASSERT_EQ(json.status, 0) << json.err;
  EXPECT_EQ(std::count(json.out.begin(), json.out.end(), '\n'), 4);
  EXPECT_EQ(nlohmann::json::parse(json.out.substr(0, json.out.find('\n')))["verdict"], "allowed");
  Outcome unknown = Cli({"egress", "vm-9"});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("vm-9"), std::string::npos) << unknown.err;
  EXPECT_EQ(Cli({"egress"}).status, 2);
}

TEST_F(CliTest, EgressFollowStreamsEachNewEntryUntilTheVmsNetworkGoes) {
  ASSERT_EQ(Cli({"create", "--allow-domain", "a.test"}).status, 0);
  OnIo([&] {
    fake_.egress_logs["vm-1"] = std::make_unique<net::VmEgressLog>(dir_ + "/egress.jsonl");
    fake_.egress_logs["vm-1"]->Add({.kind = "dns", .name = "a.test", .dns_type = 1, .verdict = "allowed",
                                     .answers = {"198.51.100.10"}});
  });
  StreamingCli follow(options_.socket_path, {"egress", "vm-1", "-f"});
  // Fixed columns: a stream cannot be measured first.
  EXPECT_EQ(follow.NextLine(), "TIME      TYPE   NAME                            VERDICT       ADDRESSES\n");
  EXPECT_NE(follow.NextLine().find("A      a.test                          allowed       198.51.100.10"),
            std::string::npos);
  OnIo([&] {
    fake_.egress_logs["vm-1"]->Add({.kind = "refused", .verdict = "refused", .destination = "198.51.100.11",
                                     .port = 443, .protocol = "tcp"});
  });
  EXPECT_NE(follow.NextLine().find("TCP    -                               refused       198.51.100.11:443"),
            std::string::npos);
  OnIo([&] { fake_.egress_logs.erase("vm-1"); });  // stopped or removed
  EXPECT_EQ(follow.Wait(), 0);
  EXPECT_EQ(follow.NextLine(), "");
  EXPECT_NE(follow.err().find("the egress log of vm-1 ended"), std::string::npos) << follow.err();
}

TEST_F(CliTest, BadNetworkOptionsAreRefusedBeforeAnyRequest) {
  Outcome refused = Cli({"run", "--allow-port", "53", "--", "true"});
  EXPECT_EQ(refused.status, 125);
  EXPECT_EQ(refused.err,
            "agentvm: --allow-port: port 53 is refused: DNS goes only to the daemon's resolver\n"
            "See 'agentvm run --help'.\n");
  Outcome create = Cli({"create", "--net", "isolated", "--allow-cidr", "10.0.0.0/8"});
  EXPECT_EQ(create.status, 2);
  EXPECT_NE(create.err.find("--allow-cidr is refused when --net is isolated"), std::string::npos)
      << create.err;
  EXPECT_EQ(fake_.calls(), 0) << "nothing was sent";
}

TEST_F(CliTest, UnknownVmIsNamed) {
  Outcome inspect = Cli({"inspect", "vm-x"});
  EXPECT_EQ(inspect.status, 1);
  EXPECT_EQ(inspect.err, "agentvm: no such VM: vm-x\n");

  Outcome exec = Cli({"exec", "vm-x", "--", "true"});
  EXPECT_EQ(exec.status, 125);
  EXPECT_EQ(exec.err, "agentvm: no such VM: vm-x\n");

  Outcome remove = Cli({"rm", "-f", "vm-x", "vm-y"});
  EXPECT_EQ(remove.status, 1);
  EXPECT_EQ(remove.err, "agentvm: no such VM: vm-x\nagentvm: no such VM: vm-y\n");

  Outcome hostile = Cli({"inspect", "../../etc/passwd"});
  EXPECT_EQ(hostile.status, 1);
  EXPECT_NE(hostile.err.find("invalid VM id"), std::string::npos) << hostile.err;
}

TEST_F(CliTest, ExecRelaysStatusInARunningVm) {
  ASSERT_EQ(Cli({"create"}).status, 0);
  Outcome outcome = Cli({"exec", "vm-1", "--", "out:hi\n", "exit:3"});
  EXPECT_EQ(outcome.status, 3);
  EXPECT_EQ(outcome.out, "hi\n");
  EXPECT_EQ(VmCount(), 1u) << "exec leaves the VM alone";
}

TEST_F(CliTest, ExecDeliversEveryByteToAReaderSlowerThanTheCommand) {
  // More than agentvmd ever buffered for a lagging client before flow
  // control (32 MiB): a reader that stalls, then crawls, still gets it all.
  constexpr std::uint64_t kTotal = 36 * 1000 * 1000;
  ASSERT_EQ(Cli({"create"}).status, 0);
  ApiClient client(options_.socket_path);
  protocol::ExecRequest request;
  request.argv = {"bulk:" + std::to_string(kTotal), "exit:0"};
  std::uint64_t received = 0;
  bool in_order = true;
  int chunks = 0;
  auto slow = [&](protocol::OutputStream, std::string_view data) {
    if (chunks++ == 0) std::this_thread::sleep_for(700ms);
    if (chunks % 64 == 0) std::this_thread::sleep_for(2ms);
    for (std::size_t i = 0; i < data.size() && in_order; ++i) {
      in_order = data[i] == static_cast<char>('a' + (received + i) % 26);
    }
    received += data.size();
    return true;
  };
  auto result = client.Exec("vm-1", request, slow);
  ASSERT_TRUE(result.has_value()) << result.error().message;
  EXPECT_EQ(result->ShellStatus(), 0);
  EXPECT_EQ(received, kTotal);
  EXPECT_TRUE(in_order);
}

TEST_F(CliTest, CopyRoundTripKeepsBytesAndMode) {
  ASSERT_EQ(Cli({"create"}).status, 0);
  std::string local = dir_ + "/script.sh";
  std::string content = "#!/bin/sh\necho hi\n\0\xff"s;
  std::ofstream(local, std::ios::binary) << content;
  ::chmod(local.c_str(), 0750);

  Outcome in = Cli({"cp", local, "vm-1:/tmp/script.sh"});
  ASSERT_EQ(in.status, 0) << in.err;
  OnIo([&] { EXPECT_EQ(fake_.files["vm-1"]["/tmp/script.sh"].mode, 0750u); });

  std::filesystem::create_directory(dir_ + "/out");
  Outcome out = Cli({"cp", "vm-1:/tmp/script.sh", dir_ + "/out"});
  ASSERT_EQ(out.status, 0) << out.err;
  std::ifstream back(dir_ + "/out/script.sh", std::ios::binary);
  std::stringstream read_back;
  read_back << back.rdbuf();
  EXPECT_EQ(read_back.str(), content);

  Outcome piped_in = Cli({"cp", "-", "vm-1:/tmp/from-stdin"}, "piped");
  ASSERT_EQ(piped_in.status, 0) << piped_in.err;
  Outcome to_stdout = Cli({"cp", "vm-1:/tmp/from-stdin", "-"});
  EXPECT_EQ(to_stdout.out, "piped");

  Outcome missing = Cli({"cp", "vm-1:/nope", dir_ + "/x"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.err, "agentvm: no such file: /nope\n");
  Outcome no_local = Cli({"cp", dir_ + "/absent", "vm-1:/x"});
  EXPECT_EQ(no_local.status, 1);
  EXPECT_NE(no_local.err.find("No such file or directory"), std::string::npos);
}

TEST_F(CliTest, LogsPrintsTheConsole) {
  ASSERT_EQ(Cli({"create"}).status, 0);
  Outcome logs = Cli({"logs", "vm-1"});
  EXPECT_EQ(logs.status, 0);
  EXPECT_NE(logs.out.find("agentvm-guest: ready"), std::string::npos);
}

TEST_F(CliTest, EventsPrintsWhatTheDaemonHoldsAndEnds) {
  OnIo([&] {
    fake_.events.Publish("created", "vm-1", {{"image", "tiny"}, {"cpus", 1}});
    fake_.events.Publish("started", "vm-1", {{"boot", "cold"}, {"ms", 812}});
    fake_.events.Publish("created", "vm-2", {{"image", "tiny"}, {"cpus", 2}});
  });
  Outcome all = Cli({"events"});
  EXPECT_EQ(all.status, 0) << all.err;
  std::vector<std::string> lines;
  for (std::istringstream in(all.out); std::getline(in, lines.emplace_back());) {}
  lines.pop_back();
  ASSERT_EQ(lines.size(), 3u) << all.out;
  EXPECT_NE(lines[0].find("  vm-1             created            image=tiny cpus=1"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("  vm-1             started            boot=cold ms=812"), std::string::npos) << lines[1];
  EXPECT_EQ(lines[0].find('Z'), 23u) << lines[0];  // RFC 3339 UTC time first

  Outcome json = Cli({"events", "--json", "--vm", "vm-1", "--type", "started"});
  EXPECT_EQ(json.status, 0) << json.err;
  auto event = nlohmann::json::parse(json.out);
  EXPECT_EQ(event["seq"], 2);
  EXPECT_EQ(event["boot"], "cold");

  Outcome none = Cli({"events", "--since", "3"});
  EXPECT_EQ(none.status, 0);
  EXPECT_EQ(none.out, "");
}

TEST_F(CliTest, EventsFollowPrintsEachNewEventUntilTheDaemonEndsTheStream) {
  OnIo([&] { fake_.events.Publish("created", "vm-1"); });
  StreamingCli follow(options_.socket_path, {"events", "-f", "--vm", "vm-1"});
  // Lines as they come: the one from before the stream, then each new one.
  EXPECT_NE(follow.NextLine().find("created"), std::string::npos);
  OnIo([&] {
    fake_.events.Publish("exec_started", "vm-2", {{"command", "make"}});  // another VM's
    fake_.events.Publish("exec_started", "vm-1", {{"command", "make"}});
  });
  EXPECT_NE(follow.NextLine().find("vm-1             exec_started       command=make"), std::string::npos);
  OnIo([&] { fake_.events.Publish("removed", "vm-1"); });
  EXPECT_NE(follow.NextLine().find("removed"), std::string::npos);
  StopServer();
  EXPECT_EQ(follow.Wait(), 1);
  EXPECT_EQ(follow.NextLine(), "");
  EXPECT_EQ(follow.err().rfind("agentvm: the event stream ended: ", 0), 0u) << follow.err();
}

TEST_F(CliTest, HelpGoesToStdoutAndExitsZero) {
  Outcome help = Cli({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("Commands:"), std::string::npos);
  Outcome run_help = Cli({"run", "--help"});
  EXPECT_EQ(run_help.status, 0);
  EXPECT_NE(run_help.out.find("Usage: agentvm run"), std::string::npos);
  EXPECT_EQ(Cli({"help", "nope"}).status, 2);
  EXPECT_EQ(Cli({"ls", "--nope"}).status, 2);
}

TEST_F(CliTest, InteractiveExecStreamsStdinAndRelaysTheStatus) {
  ASSERT_EQ(Cli({"create"}).status, 0);
  // Several times what the CLI reads ahead of agentvmd (1 MiB), all bytes.
  std::string input;
  for (int i = 0; input.size() < 3 * 1024 * 1024; ++i) input += std::to_string(i) + '\n';
  Outcome outcome = Cli({"exec", "-i", "vm-1", "--", "cat", "exit:5"}, input);
  EXPECT_EQ(outcome.status, 5) << outcome.err;
  EXPECT_EQ(outcome.out.size(), input.size());
  EXPECT_TRUE(outcome.out == input);

  Outcome missing = Cli({"exec", "-i", "vm-x", "--", "cat"}, "x");
  EXPECT_EQ(missing.status, 125);
  EXPECT_EQ(missing.err, "agentvm: no such VM: vm-x\n");
}

TEST_F(CliTest, TtyAndUserReachTheDaemon) {
  ASSERT_EQ(Cli({"create"}).status, 0);
  // Standard input here is a file, not a terminal: the command still gets
  // a terminal in the VM, at the standard size.
  Outcome outcome = Cli({"exec", "-t", "-u", "agent", "vm-1", "--", "out:hi\n", "exit:0"});
  EXPECT_EQ(outcome.status, 0) << outcome.err;
  EXPECT_EQ(outcome.out, "hi\n");
  OnIo([&] {
    ASSERT_TRUE(fake_.last_exec);
    EXPECT_TRUE(fake_.last_exec->tty);
    EXPECT_EQ(fake_.last_exec->size, (protocol::TerminalSize{24, 80}));
    EXPECT_EQ(fake_.last_exec->user, "agent");
  });
}

TEST_F(CliTest, DetachedExecReturnsOnceStarted) {
  ASSERT_EQ(Cli({"create"}).status, 0);
  auto started = std::chrono::steady_clock::now();
  Outcome outcome = Cli({"exec", "-d", "vm-1", "--", "out:dropped\n", "sleep:10000"});
  EXPECT_EQ(outcome.status, 0) << outcome.err;
  EXPECT_EQ(outcome.out, "");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  OnIo([&] {
    ASSERT_TRUE(fake_.last_exec);
    EXPECT_TRUE(fake_.last_exec->detach);
  });
}

TEST_F(CliTest, InterruptDuringRunReleasesTheVmAndExits130) {
  std::thread interrupter([this] {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    // Wait until the command is running in its VM, then press Ctrl-C.
    while (std::chrono::steady_clock::now() < deadline) {
      bool running = false;
      OnIo([&] { running = fake_.last_exec.has_value(); });
      if (running) break;
      std::this_thread::sleep_for(10ms);
    }
    std::this_thread::sleep_for(50ms);
    ::kill(::getpid(), SIGINT);
  });
  auto started = std::chrono::steady_clock::now();
  Outcome outcome = Cli({"run", "--", "out:working\n", "sleep:10000"}, "", /*handle_signals=*/true);
  interrupter.join();
  EXPECT_EQ(outcome.status, 130);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_EQ(outcome.out, "working\n");
  EXPECT_NE(outcome.err.find("interrupted; VM vm-1 released"), std::string::npos) << outcome.err;
  EXPECT_EQ(VmCount(), 0u);
}

}  // namespace
}  // namespace agentvm::cli
