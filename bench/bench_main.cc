// agentvm-bench: agentvm's benchmarks (bench/README.md). Prints a markdown
// report on stdout, progress on stderr. `scripts/bench` builds and runs it.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string_view>

#include <boost/program_options.hpp>

#include "bench/bench_daemon.h"
#include "bench/boot_bench.h"
#include "bench/channel_bench.h"
#include "bench/exec_bench.h"
#include "bench/exec_rtt.h"
#include "bench/egress_bench.h"
#include "bench/net_bench.h"
#include "bench/processes.h"
#include "bench/report.h"
#include "bench/snapshot_bench.h"
#include "common/logging.h"
#include "supervisor/image_store.h"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace po = boost::program_options;
using namespace agentvm;
using namespace agentvm::bench;

struct Options {
  std::string only = "all";
  int boot_runs = 5;
  int boot_warmups = 1;
  int exec_runs = 200;
  int exec_warmups = 10;
  int snapshot_rounds = 5;
  int snapshot_warmups = 1;
  int recycle_sec = 60;
  int pool_size = 4;
  int fill_parallelism = 0;
  std::string memory_templates;
  std::string image = "tiny";
  std::string image_dir = "/var/lib/agentvm/images";
  std::string agentvmd;
  std::string work_parent = "/tmp";
  std::string save_logs;  // where each agentvmd.log is copied at the end
  std::string command;  // how this run was invoked, for the report
};

std::string DefaultAgentvmd() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "agentvmd" : (self.parent_path() / "agentvmd").string();
}

bool Wanted(const Options& options, std::string_view benchmark) {
  return options.only == "all" || options.only == benchmark;
}

// Shows why a benchmark failed: its error and the end of agentvmd's log.
void ReportFailure(const Error& error, const BenchDaemon& daemon) {
  std::cerr << "agentvm-bench: " << error.message << "\n"
            << "agentvm-bench: the last lines of " << daemon.log_path().string() << ":\n"
            << daemon.LogTail(40);
}

fs::path SavedLogPath(const Options& options, const std::string& name) {
  return options.save_logs.empty() ? fs::path() : fs::path(options.save_logs) / name;
}

asio::awaitable<int> Run(Options options) {
  auto image = ImageStore(options.image_dir).Find(options.image);
  if (!image) {
    std::cerr << "agentvm-bench: " << image.error().message << "\n";
    co_return 2;
  }
  const MachineInfo machine = ProbeMachine(options.image_dir, options.image);
  WorkDir work(options.work_parent);  // removed last, after every VM and the daemon
  std::cerr << "agentvm-bench: work dir " << work.path().string() << ", agentvmd " << options.agentvmd << "\n";

  std::optional<BootBenchResult> boot;
  std::optional<ExecBenchResult> exec;
  if (Wanted(options, "boot") || Wanted(options, "exec")) {
    // Named, not a braced temporary: g++ 12 destroys those inside co_await twice.
    // No golden snapshots: every create here is the cold boot benchmarks 1-2 measure.
    BenchDaemonOptions daemon_options{.binary = options.agentvmd, .image_dir = options.image_dir,
                                      .root = work.path() / "daemon", .extra_args = {"--no-golden-snapshots"},
                                      .save_log_to = SavedLogPath(options, "agentvmd-boot-exec.log")};
    auto daemon = co_await BenchDaemon::Start(std::move(daemon_options));
    if (!daemon) {
      std::cerr << "agentvm-bench: " << daemon.error().message << "\n";
      co_return 1;
    }

    if (Wanted(options, "boot")) {
      std::cerr << "agentvm-bench: 1. create to agent-ready, " << options.boot_runs << " of each\n";
      BootBenchOptions boot_options{.runs = options.boot_runs, .warmups = options.boot_warmups, .image = *image,
                                    .hand_root = work.path() / "hand"};
      auto result = co_await RunBootBench(**daemon, std::move(boot_options));
      if (!result) {
        ReportFailure(result.error(), **daemon);
        co_return 1;
      }
      boot = std::move(*result);
    }
    if (Wanted(options, "exec")) {
      std::cerr << "agentvm-bench: 2-3. exec round trips, " << options.exec_runs << " of each\n";
      ExecBenchOptions exec_options{.runs = options.exec_runs, .warmups = options.exec_warmups, .image = *image,
                                    .hand_root = work.path() / "hand"};
      auto result = co_await RunExecBench(**daemon, std::move(exec_options));
      if (!result) {
        ReportFailure(result.error(), **daemon);
        co_return 1;
      }
      exec = std::move(*result);
    }
  }  // that agentvmd stops here, before the next one starts

  std::optional<SnapshotBenchResult> snapshots;
  SnapshotBenchOptions snapshot_options{.rounds = options.snapshot_rounds,
                                        .warmups = options.snapshot_warmups,
                                        .recycle_duration = std::chrono::seconds(options.recycle_sec),
                                        .pool_min_ready = options.pool_size,
                                        .pool_max_total = 2 * options.pool_size,
                                        .fill_parallelism = options.fill_parallelism,
                                        .memory_templates = options.memory_templates,
                                        .image = options.image};
  if (Wanted(options, "snapshots")) {
    std::cerr << "agentvm-bench: 5. golden snapshots and the warm pool, " << options.snapshot_rounds
              << " rounds, recycling for " << options.recycle_sec << " s\n";
    // Its own agentvmd, which builds the golden snapshot and fills the pool
    // as it starts: the build is timed from here.
    BenchDaemonOptions daemon_options{.binary = options.agentvmd, .image_dir = options.image_dir,
                                      .root = work.path() / "pool-daemon",
                                      .extra_args = SnapshotDaemonFlags(snapshot_options),
                                      .save_log_to = SavedLogPath(options, "agentvmd-snapshots.log")};
    snapshot_options.daemon_started = Clock::now();
    auto daemon = co_await BenchDaemon::Start(std::move(daemon_options));
    if (!daemon) {
      std::cerr << "agentvm-bench: " << daemon.error().message << "\n";
      co_return 1;
    }
    SnapshotBenchOptions run_options = snapshot_options;
    auto result = co_await RunSnapshotBench(**daemon, std::move(run_options));
    if (!result) {
      ReportFailure(result.error(), **daemon);
      co_return 1;
    }
    snapshots = std::move(*result);
  }

  std::optional<BootReport> boot_report;
  if (boot) boot_report = BootReport{&*boot, options.boot_warmups};
  std::optional<ExecReport> exec_report;
  if (exec) exec_report = ExecReport{&*exec, options.exec_warmups};
  std::cout << RenderReport(machine, boot_report, exec_report, options.command);
  if (snapshots) std::cout << RenderSnapshotReport(*snapshots, snapshot_options);
  std::cout << std::flush;
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "net-rules") return agentvm::bench::NetRulesMain(argc - 1, argv + 1);
  if (argc > 1 && std::string_view(argv[1]) == "egress-dns") {
    return agentvm::bench::EgressDnsMain(argc - 1, argv + 1);
  }
  if (argc > 1 && std::string_view(argv[1]) == "egress-learn") {
    return agentvm::bench::EgressLearnMain(argc - 1, argv + 1);
  }
  if (argc > 1 && std::string_view(argv[1]) == "exec-rtt") return agentvm::bench::ExecRttMain(argc - 1, argv + 1);
  if (argc > 1 && std::string_view(argv[1]) == "channel") return agentvm::bench::ChannelMain(argc - 1, argv + 1);
  Options options;
  po::options_description flags(
      "agentvm-bench: agentvmd create vs the same QEMU by hand; exec round trips via the API, our agent and "
      "qemu-ga; cold boot vs golden-snapshot restore vs warm-pool acquire, and recycle throughput. Always TCG, "
      "always isolated VMs (no NIC).\nOptions");
  flags.add_options()
      ("help,h", "show this help")
      ("quick", "fewer iterations: 2 boots of each, 30 exec round trips of each, 2 snapshot rounds, 20 s of recycling")
      ("only", po::value(&options.only), "all | boot | exec | snapshots (default all)")
      ("boot-runs", po::value(&options.boot_runs), "timed boots of each kind (default 5)")
      ("exec-runs", po::value(&options.exec_runs), "timed exec round trips of each kind (default 200)")
      ("snapshot-rounds", po::value(&options.snapshot_rounds),
       "timed rounds of (cold boot, restore, warm acquire), after 1 untimed (default 5)")
      ("recycle-sec", po::value(&options.recycle_sec),
       "seconds of the acquire + exec + release loop against the pool (default 60)")
      ("pool-size", po::value(&options.pool_size), "the pool's min_ready; max_total is twice it (default 4)")
      ("fill-parallelism", po::value(&options.fill_parallelism),
       "clones the pool restores at once (default: the daemon's, one per two cores)")
      ("memory-templates", po::value(&options.memory_templates),
       "cow | copy: how benchmark 5's agentvmd restores clones (default: the daemon's, cow)")
      ("image", po::value(&options.image), "image name (default tiny)")
      ("image-dir", po::value(&options.image_dir), "image directory (default /var/lib/agentvm/images)")
      ("agentvmd", po::value(&options.agentvmd), "agentvmd binary (default: next to this one)")
      ("work-dir", po::value(&options.work_parent), "where the temporary work directory goes (default /tmp)")
      ("save-logs", po::value(&options.save_logs), "copy each agentvmd's log into this directory at the end")
      ("command", po::value(&options.command), "how to reproduce this run, printed in the report");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, flags), vm);
    if (vm.count("help")) {
      std::cout << flags << "\n";
      return 0;
    }
    if (vm.count("quick")) {
      options.boot_runs = 2;
      options.exec_runs = 30;
      options.exec_warmups = 3;
      options.snapshot_rounds = 2;
      options.recycle_sec = 20;
    }
    po::notify(vm);  // explicit --boot-runs / --exec-runs / ... win over --quick
  } catch (const po::error& e) {
    std::cerr << "agentvm-bench: " << e.what() << "\n";
    return 2;
  }
  if ((options.only != "all" && options.only != "boot" && options.only != "exec" && options.only != "snapshots") ||
      options.boot_runs < 1 || options.exec_runs < 1) {
    std::cerr << "agentvm-bench: bad --only, --boot-runs or --exec-runs\n";
    return 2;
  }
  if (options.snapshot_rounds < 1 || options.recycle_sec < 1 || options.pool_size < 1) {
    std::cerr << "agentvm-bench: --snapshot-rounds, --recycle-sec and --pool-size must be at least 1\n";
    return 2;
  }
  if (options.agentvmd.empty()) options.agentvmd = DefaultAgentvmd();
  if (options.command.empty()) options.command = "agentvm-bench";
  SetLogLevel("warn");

  return RunInterruptibly("agentvm-bench", [&options] { return Run(std::move(options)); });
}
