// agentvmd: the agentvm supervisor daemon. Serves the HTTP/JSON API on a unix
// socket and runs every VM from one io_context thread.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include "common/logging.h"
#include "common/spawn.h"
#include "supervisor/api/api_server.h"
#include "supervisor/api/metrics_server.h"
#include "supervisor/config.h"
#include "supervisor/doctor.h"
#include "supervisor/state_store.h"
#include "supervisor/supervisor.h"

namespace po = boost::program_options;
using agentvm::DaemonConfig;

namespace {

constexpr char kUsage[] =
    "Usage: agentvmd [options]\n"
    "Runs untrusted programs in QEMU VMs and serves the agentvm API on a unix socket.\n"
    "Settings come from the defaults, then --config FILE (YAML, same names as the\n"
    "flags with '_' for '-'), then the flags.\n";

// Returns the exit code to use, or -1 to go on running.
int ParseFlags(int argc, char** argv, DaemonConfig& config, bool& doctor) {
  po::options_description options("Options");
  options.add_options()
      ("help,h", "show this help")
      ("doctor", "check whether this host can run VMs with these settings, say what to fix, and exit "
                 "(1 if something must be fixed)")
      ("config", po::value<std::string>(), "YAML config file")
      ("socket", po::value<std::string>(), "API socket path (default /run/agentvm/agentvm.sock)")
      ("state-dir", po::value<std::string>(), "state database and VM disks (default /var/lib/agentvm)")
      ("image-dir", po::value<std::string>(), "guest images (default /var/lib/agentvm/images)")
      ("run-dir", po::value<std::string>(), "per-VM sockets and logs (default /run/agentvm)")
      ("accel", po::value<std::string>(), "auto | kvm | tcg (default auto)")
      ("agent-timeout", po::value<int>(), "seconds from launch to the guest agent answering (default 90)")
      ("stop-grace", po::value<int>(), "seconds a guest gets to power off before it is killed (default 10)")
      ("default-network", po::value<std::string>(), "nat-filtered | isolated: mode of VMs that name none")
      ("bridge", po::value<std::string>(), "the bridge agentvmd creates for nat-filtered VMs (default agentvm0)")
      ("subnet", po::value<std::string>(), "the VMs' subnet; the bridge takes its first address (default 10.101.0.0/16)")
      ("dns-upstream", po::value<std::string>(), "resolver the VMs' DNS is forwarded to, a.b.c.d[:port] "
                                                 "(default: first nameserver in /etc/resolv.conf)")
      ("no-golden-snapshots", "no golden snapshots and no warm pools: every VM cold-boots")
      ("memory-templates", po::value<std::string>(),
       "cow | copy: clones map the golden snapshot's RAM copy-on-write, or load a full copy (default cow)")
      ("keep-vms-on-exit", "on SIGTERM exit at once, leaving the VMs running for the next agentvmd to adopt")
      ("health-check-interval-sec", po::value<int>(), "seconds between health checks of ready pool VMs (default 30)")
      ("pool", po::value<std::vector<std::string>>()->composing(),
       "a warm pool as KEY=VALUE,... with any of the keys image, cpus, memory_mib, network, min_ready, "
       "max_total, ttl_sec, fill_parallelism (e.g. image=tiny,network=isolated,min_ready=3); repeatable; replaces the "
       "config file's pools")
      ("metrics-listen", po::value<std::string>(), "ADDRESS:PORT to serve GET /metrics on TCP as well, "
                                                   "e.g. 127.0.0.1:9464 (default: only on the socket)")
      ("log-level", po::value<std::string>(), "trace | debug | info | warn | error (default info)");
  po::variables_map flags;
  try {
    po::store(po::command_line_parser(argc, argv).options(options).run(), flags);
    po::notify(flags);
  } catch (const po::error& e) {
    std::cerr << "agentvmd: " << e.what() << "\n" << kUsage << options;
    return 2;
  }
  if (flags.count("help")) {
    std::cout << kUsage << "\n" << options;
    return 0;
  }
  doctor = flags.count("doctor") > 0;
  if (flags.count("config")) {
    if (auto applied = agentvm::ApplyConfigFile(flags["config"].as<std::string>(), config); !applied) {
      std::cerr << "agentvmd: " << applied.error().message << "\n";
      return 2;
    }
  }
  auto set = [&](const char* name, std::string& field) {
    if (flags.count(name)) field = flags[name].as<std::string>();
  };
  set("socket", config.socket_path);
  set("state-dir", config.state_dir);
  set("image-dir", config.image_dir);
  set("run-dir", config.run_dir);
  set("accel", config.accel);
  set("log-level", config.log_level);
  set("default-network", config.default_network);
  set("bridge", config.bridge);
  set("subnet", config.subnet);
  set("dns-upstream", config.dns_upstream);
  set("memory-templates", config.memory_templates);
  set("metrics-listen", config.metrics_listen);
  if (flags.count("agent-timeout")) config.agent_timeout = std::chrono::seconds(flags["agent-timeout"].as<int>());
  if (flags.count("stop-grace")) config.stop_grace = std::chrono::seconds(flags["stop-grace"].as<int>());
  if (flags.count("no-golden-snapshots")) config.golden_snapshots = false;
  if (flags.count("keep-vms-on-exit")) config.keep_vms_on_exit = true;
  if (flags.count("health-check-interval-sec")) {
    config.health_check_interval = std::chrono::seconds(flags["health-check-interval-sec"].as<int>());
  }
  if (flags.count("pool")) {
    config.pools.clear();
    for (const std::string& spec : flags["pool"].as<std::vector<std::string>>()) {
      auto pool = agentvm::ParsePoolSpec(spec);
      if (!pool) {
        std::cerr << "agentvmd: --pool '" << spec << "': " << pool.error().message << "\n";
        return 2;
      }
      config.pools.push_back(std::move(*pool));
    }
  }
  if (auto valid = agentvm::ValidateConfig(config); !valid) {
    std::cerr << "agentvmd: " << valid.error().message << "\n";
    return 2;
  }
  if (!agentvm::SetLogLevel(config.log_level)) {
    std::cerr << "agentvmd: unknown log level '" << config.log_level << "'\n";
    return 2;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  DaemonConfig config;
  bool doctor = false;
  if (int code = ParseFlags(argc, argv, config, doctor); code >= 0) return code;
  if (doctor) {
    const auto findings = agentvm::Diagnose(config, agentvm::ProbeDoctorFacts(config));
    std::cout << agentvm::FormatDoctorReport(findings);
    return agentvm::DoctorExitCode(findings);
  }
  auto log = agentvm::Logger("agentvmd");
  // A client that hangs up mid-response must not kill the daemon.
  std::signal(SIGPIPE, SIG_IGN);

  boost::asio::io_context io(1);
  auto supervisor = agentvm::Supervisor::Create(io.get_executor(), config, agentvm::ProbeHost());
  if (!supervisor) {
    log->critical("{}", supervisor.error().message);
    // StateStore::Open refused a damaged database before writing to it. That
    // start gets its own exit status: restarting cannot mend it, and the
    // systemd unit does not restart on it (RestartPreventExitStatus=3).
    constexpr int kExitDamagedState = 3;
    const bool damaged = !agentvm::StateStore::CheckIntegrity(agentvm::StateDatabasePath(config.state_dir));
    return damaged ? kExitDamagedState : 1;
  }
  if (auto recovered = (*supervisor)->Recover(); !recovered) {
    log->critical("{}", recovered.error().message);
    return 1;
  }
  agentvm::api::ApiServer api(io, **supervisor, agentvm::api::ApiOptions{.socket_path = config.socket_path,
                                                                  .audit_log_path = config.audit_log});
  if (auto started = api.Start(); !started) {
    log->critical("{}", started.error().message);
    return 1;
  }
  log->info("listening on {}", config.socket_path);
  std::optional<agentvm::api::MetricsServer> metrics;
  if (!config.metrics_listen.empty()) {
    auto address = agentvm::ParseMetricsListen(config.metrics_listen);  // checked with the config
    metrics.emplace(io, **supervisor, agentvm::api::MetricsServerOptions{.host = address->host, .port = address->port});
    if (auto started = metrics->Start(); !started) {
      log->critical("{}", started.error().message);
      return 1;
    }
  }
  (*supervisor)->StartPools();

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    if (config.keep_vms_on_exit) {
      // Exactly what a crash leaves, which the next daemon adopts: no VM
      // object may run its destructor (that would kill its QEMU).
      api.Stop();
      if (metrics) metrics->Stop();
      log->info("signal {}: exiting and leaving the VMs running for the next agentvmd", signal);
      spdlog::shutdown();
      std::_Exit(0);
    }
    log->info("signal {}: stopping every VM, then exiting", signal);
    api.Stop();
    if (metrics) metrics->Stop();
    agentvm::SpawnDetached(
        io,
        [&]() -> boost::asio::awaitable<void> {
          co_await (*supervisor)->Shutdown();
          io.stop();
        },
        "shutdown", log);
  });

  io.run();
  log->info("stopped");
  return 0;
}
