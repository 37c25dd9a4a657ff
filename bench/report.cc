#include "bench/report.h"

#include <sys/utsname.h>

#include <array>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

namespace agentvm::bench {
namespace {

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string CommandOutput(const char* command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command, "r"), ::pclose);
  if (!pipe) return "";
  std::string out;
  std::array<char, 256> chunk;
  while (std::fgets(chunk.data(), chunk.size(), pipe.get())) out += chunk.data();
  return FirstLine(out);
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

std::string Row(std::initializer_list<std::string> cells) {
  std::string row = "|";
  for (const auto& cell : cells) row += " " + cell + " |";
  return row + "\n";
}

}  // namespace

MachineInfo ProbeMachine(const std::string& image_dir, const std::string& image) {
  MachineInfo info;
  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  info.date = date;
  info.cpus = std::thread::hardware_concurrency();
  info.cpu_model = CpuModel();
  std::ifstream loadavg("/proc/loadavg");
  std::string a, b, c;
  loadavg >> a >> b >> c;
  info.load_average = a + " " + b + " " + c;
  info.qemu_version = CommandOutput("qemu-system-x86_64 --version 2>/dev/null");
  info.image = image;
  std::ifstream meta_in(image_dir + "/" + image + "/image.json");
  auto meta = nlohmann::json::parse(meta_in, nullptr, /*allow_exceptions=*/false);
  if (meta.is_object() && meta.contains("kernel_version")) {
    info.image += " (kernel " + meta.value("kernel_version", "") + ", qemu-ga " + meta.value("qemu_ga_version", "?") + ")";
  }
  return info;
}

std::string RenderReport(const MachineInfo& m, std::optional<BootReport> boot, std::optional<ExecReport> exec,
                         const std::string& command) {
  std::ostringstream out;
  utsname host{};
  ::uname(&host);
  out << "Measured " << m.date << " with `" << command << "`.\n"
      << "Host: " << m.cpus << " CPUs (" << m.cpu_model << "), Linux " << host.release
      << ", load average at start " << m.load_average << ". " << m.qemu_version
      << ", accelerator TCG. Image " << m.image << ", 1 vCPU, 256 MiB.\n";

  if (boot) {
    const BootBenchResult& r = *boot->result;
    out << "\n### 1. Create to agent-ready\n\n"
        << r.daemon_create.size() << " boots of each kind, interleaved (agentvmd, by hand, agentvmd, ...), after "
        << boot->warmups << " untimed warm-up of each.\n\n"
        << Row({"", "median", "min", "max"}) << Row({"---", "---:", "---:", "---:"})
        << Row({"agentvmd: `POST /v1/vms` until its `201`", FormatSeconds(r.daemon_create.Median()),
                FormatSeconds(r.daemon_create.Min()), FormatSeconds(r.daemon_create.Max())})
        << Row({"by hand: `qemu-img create` + same QEMU argv + first pong", FormatSeconds(r.hand_total.Median()),
                FormatSeconds(r.hand_total.Min()), FormatSeconds(r.hand_total.Max())})
        << Row({"**ratio agentvmd / by hand** (goal ≤ 1.05)",
                "**" + FormatRatio(r.daemon_create.Median(), r.hand_total.Median()) + "**",
                FormatRatio(r.daemon_create.Min(), r.hand_total.Min()), ""})
        << Row({"ratio of each adjacent pair (agentvmd / by hand)", FormatRatio(r.pair_ratio.Median(), 1),
                FormatRatio(r.pair_ratio.Min(), 1), FormatRatio(r.pair_ratio.Max(), 1)})
        << "\nBy hand, median per phase: overlay (`qemu-img create`) " << FormatMillis(r.hand_overlay.Median())
        << "; QEMU launch until the agent socket accepts " << FormatMillis(r.hand_connect.Median())
        << "; then until the first pong " << FormatSeconds(r.hand_ready.Median())
        << ". agentvmd `DELETE /v1/vms/{id}?force=true`: median " << FormatMillis(r.daemon_delete.Median())
        << " (not part of the ratio).\n";
  }

  if (exec) {
    const ExecBenchResult& r = *exec->result;
    char polls[32];
    std::snprintf(polls, sizeof polls, "%.1f", r.qga_status_polls);
    out << "\n### 2–3. Exec round trip of `/bin/true` in a running VM\n\n"
        << r.api.size() << " round trips of each kind after " << exec->warmups
        << " untimed ones of each, in two phases, each interleaved round by round (order rotating): first the "
        << "API rows, in a VM agentvmd created; then our agent directly and qemu-ga, in one VM booted by hand "
        << "from the same image (an API exec's leftover host work would otherwise land in the other VM's next "
        << "exec).\n\n"
        << Row({"path", "p50", "p99", "mean", "min"}) << Row({"---", "---:", "---:", "---:", "---:"})
        << Row({"(2) agentvmd API: `POST /v1/vms/{id}/exec`, NDJSON to the exit event", FormatMillis(r.api.Median()),
                FormatMillis(r.api.Percentile(0.99)), FormatMillis(r.api.Mean()), FormatMillis(r.api.Min())})
        << Row({"(2) the same, as a named user (`\"user\": \"root\"`: passwd lookup, groups, setresuid)",
                FormatMillis(r.api_user.Median()), FormatMillis(r.api_user.Percentile(0.99)),
                FormatMillis(r.api_user.Mean()), FormatMillis(r.api_user.Min())})
        << Row({"(2) the same, on a terminal (`\"tty\": true`)", FormatMillis(r.api_tty.Median()),
                FormatMillis(r.api_tty.Percentile(0.99)), FormatMillis(r.api_tty.Mean()), FormatMillis(r.api_tty.Min())})
        << Row({"ratio named user / plain; tty / plain",
                FormatRatio(r.api_user.Median(), r.api.Median()) + "; " + FormatRatio(r.api_tty.Median(), r.api.Median()),
                FormatRatio(r.api_user.Percentile(0.99), r.api.Percentile(0.99)) + "; " +
                    FormatRatio(r.api_tty.Percentile(0.99), r.api.Percentile(0.99)),
                "", ""})
        << Row({"(3) our agent directly: `GuestChannel::Exec`", FormatMillis(r.direct.Median()),
                FormatMillis(r.direct.Percentile(0.99)), FormatMillis(r.direct.Mean()), FormatMillis(r.direct.Min())})
        << Row({std::string("(3) qemu-ga: `guest-exec` + `guest-exec-status` polled without pause (") + polls +
                    " polls per exec)",
                FormatMillis(r.qga.Median()), FormatMillis(r.qga.Percentile(0.99)), FormatMillis(r.qga.Mean()),
                FormatMillis(r.qga.Min())})
        << Row({"**ratio ours directly / qemu-ga** (goal ≤ 0.33)",
                "**" + FormatRatio(r.direct.Median(), r.qga.Median()) + "**",
                "**" + FormatRatio(r.direct.Percentile(0.99), r.qga.Percentile(0.99)) + "**",
                FormatRatio(r.direct.Mean(), r.qga.Mean()), FormatRatio(r.direct.Min(), r.qga.Min())})
        << Row({"ratio agentvmd API / qemu-ga", FormatRatio(r.api.Median(), r.qga.Median()),
                FormatRatio(r.api.Percentile(0.99), r.qga.Percentile(0.99)), FormatRatio(r.api.Mean(), r.qga.Mean()),
                FormatRatio(r.api.Min(), r.qga.Min())})
        << "\nInside the guest alone, one fork + execve + wait of `/bin/true` (busybox `sh` loop of 100, "
        << "less the empty loop, via our agent; median of samples spread over the run) costs " << FormatMillis(r.spawn_floor)
        << ": every path above pays it once. Above that floor, at p50: ours directly "
        << FormatMillis(r.direct.Median() - r.spawn_floor) << ", qemu-ga " << FormatMillis(r.qga.Median() - r.spawn_floor)
        << " (ratio " << FormatRatio(r.direct.Median() - r.spawn_floor, r.qga.Median() - r.spawn_floor)
        << "), agentvmd API " << FormatMillis(r.api.Median() - r.spawn_floor) << ".\n"
        << "\nTransport only, same rounds and VM (no process started):\n\n"
        << Row({"ping", "p50", "p99", "mean", "min"}) << Row({"---", "---:", "---:", "---:", "---:"})
        << Row({"our agent: ping → pong", FormatMillis(r.direct_ping.Median()),
                FormatMillis(r.direct_ping.Percentile(0.99)), FormatMillis(r.direct_ping.Mean()),
                FormatMillis(r.direct_ping.Min())})
        << Row({"qemu-ga: `guest-ping`", FormatMillis(r.qga_ping.Median()), FormatMillis(r.qga_ping.Percentile(0.99)),
                FormatMillis(r.qga_ping.Mean()), FormatMillis(r.qga_ping.Min())});
  }
  return out.str();
}

}  // namespace agentvm::bench
