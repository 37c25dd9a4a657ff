#include "cli/cli_format.h"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <iterator>

#include <nlohmann/json.hpp>

#include "netsetup/dns_message.h"

namespace agentvm::cli {
namespace {

using Row = std::vector<std::string>;

// One row: each column padded to its width (or left longer), two spaces
// apart; no trailing blanks, so an empty last column leaves no trace.
std::string RowLine(const Row& row, const std::vector<std::size_t>& widths) {
  std::string line;
  for (std::size_t i = 0; i < row.size(); ++i) {
    line += row[i];
    const std::size_t width = i < widths.size() ? std::max(widths[i], row[i].size()) : row[i].size();
    if (i + 1 < row.size()) line.append(width - row[i].size() + 2, ' ');
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line + "\n";
}

// Left-aligned columns as wide as their widest value.
std::string FormatTable(const std::vector<Row>& rows) {
  std::vector<std::size_t> widths;
  for (const Row& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const Row& row : rows) out += RowLine(row, widths);
  return out;
}

std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

// Error texts from the daemon may span lines; a table row must not.
std::string OneLine(std::string text) {
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return text;
}

}  // namespace

std::string FormatAge(std::int64_t created_at, std::int64_t now) {
  if (created_at <= 0) return "-";
  std::int64_t seconds = std::max<std::int64_t>(0, now - created_at);
  if (seconds < 60) return std::to_string(seconds) + "s";
  if (seconds < 3600) return std::to_string(seconds / 60) + "m";
  if (seconds < 86400) return std::to_string(seconds / 3600) + "h";
  return std::to_string(seconds / 86400) + "d";
}

std::string FormatSize(std::uint64_t bytes) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024;
    ++unit;
  }
  return std::to_string(bytes) + kUnits[unit];
}

std::string FormatVmTable(const std::vector<VmInfo>& vms, std::int64_t now) {
  std::vector<Row> rows;
  rows.push_back({"ID", "IMAGE", "STATE", "BOOT", "ADDRESS", "CPUS", "MEMORY", "AGE", "REASON"});
  for (const VmInfo& vm : vms) {
    std::string reason = OneLine(vm.reason);
    if (reason.empty() && !vm.restore_error.empty()) {
      reason = "restore failed: " + OneLine(vm.restore_error);
    }
    if (reason.empty() && !vm.guest_channel_error.empty()) {
      reason = "guest channel failed: " + OneLine(vm.guest_channel_error);
    }
    rows.push_back({vm.id, vm.image, std::string(VmStateName(vm.state)), OrDash(vm.boot),
                    OrDash(vm.network.address), std::to_string(vm.cpus),
                    std::to_string(vm.memory_mib) + "MiB", FormatAge(vm.created_at, now),
                    std::move(reason)});
  }
  return FormatTable(rows);
}

std::string FormatPoolTable(const std::vector<PoolInfo>& pools) {
  std::vector<Row> rows;
  rows.push_back({"NAME", "READY", "STARTING", "IN_USE", "MIN", "MAX", "TAKEN", "REPLACED", "FAILED",
                  "GOLDEN", "LAST_ERROR"});
  for (const PoolInfo& pool : pools) {
    rows.push_back({pool.name, std::to_string(pool.ready), std::to_string(pool.starting),
                    std::to_string(pool.in_use), std::to_string(pool.min_ready),
                    std::to_string(pool.max_total), std::to_string(pool.taken),
                    std::to_string(pool.replaced), std::to_string(pool.failed),
                    pool.golden_ready ? "yes" : "no", OneLine(pool.last_error)});
  }
  return FormatTable(rows);
}

std::string FormatPresetTable(const std::vector<net::EgressPreset>& presets) {
  std::vector<Row> rows;
  rows.push_back({"NAME", "SOURCE", "DOMAINS"});
  for (const net::EgressPreset& preset : presets) {
    std::string domains;
    for (const std::string& domain : preset.domains) domains += (domains.empty() ? "" : ",") + domain;
    rows.push_back({preset.name, preset.source, OneLine(domains)});
  }
  return FormatTable(rows);
}

namespace {

const Row kEgressHeader{"TIME", "TYPE", "NAME", "VERDICT", "ADDRESSES"};

Row EgressRow(const net::EgressEntry& entry) {
  const std::time_t seconds = static_cast<std::time_t>(entry.time_ms / 1000);
  std::tm utc{};
  char time[16] = "-";
  if (::gmtime_r(&seconds, &utc)) std::strftime(time, sizeof time, "%H:%M:%S", &utc);
  if (entry.kind == "dropped") {
    return {time, "-", "-", "dropped", std::to_string(entry.count) + " entries not sent (this reader fell behind)"};
  }
  if (entry.kind != "dns") {
    // A connection: its protocol, the name its address was learned from,
    // where it went.
    std::string protocol = OneLine(entry.protocol);
    for (char& c : protocol) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const std::string port = entry.port ? ":" + std::to_string(entry.port) : "";
    return {time, protocol, OrDash(OneLine(entry.learned_from)), OneLine(entry.verdict),
            OneLine(entry.destination) + port};
  }
  std::string answers;
  for (const std::string& answer : entry.answers) answers += (answers.empty() ? "" : ",") + answer;
  return {time, net::DnsTypeName(entry.dns_type), OneLine(entry.name), OneLine(entry.verdict), OrDash(OneLine(answers))};
}

// A followed log's columns cannot be measured first: these fit a time, a
// type, most names and every verdict; a longer value pushes the rest right.
std::string FixedEgressLine(const Row& row) { return RowLine(row, {8, 5, 30, 12}); }

}  // namespace

std::string FormatEgressTable(const std::vector<net::EgressEntry>& entries) {
  std::vector<Row> rows{kEgressHeader};
  for (const net::EgressEntry& entry : entries) rows.push_back(EgressRow(entry));
  return FormatTable(rows);
}

std::string FormatEgressHeaderLine() { return FixedEgressLine(kEgressHeader); }

std::string FormatEgressLine(const net::EgressEntry& entry) { return FixedEgressLine(EgressRow(entry)); }

std::string FormatSnapshotTable(const std::vector<SnapshotInfo>& snapshots, std::int64_t now) {
  std::vector<Row> rows;
  rows.push_back({"NAME", "SIZE", "AGE"});
  for (const SnapshotInfo& snapshot : snapshots) {
    rows.push_back({snapshot.name, FormatSize(snapshot.vm_state_bytes),
                    FormatAge(snapshot.created_at, now)});
  }
  return FormatTable(rows);
}

namespace {

// A string shown as it is: printable ASCII, no blank, quote, backslash or '='.
bool IsPlainWord(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return c > ' ' && c < 0x7f && c != '"' && c != '\\' && c != '=';
  });
}

std::string ValueText(const nlohmann::ordered_json& value) {
  if (value.is_string() && IsPlainWord(value.get_ref<const std::string&>())) return value.get<std::string>();
  // ensure_ascii: control and non-ASCII characters become \u escapes.
  return value.dump(-1, ' ', true, nlohmann::ordered_json::error_handler_t::replace);
}

// Pads `text` with blanks to `width`, then two more (a longer one keeps them).
std::string Column(std::string text, std::size_t width) {
  text.resize(std::max(text.size(), width), ' ');
  return text + "  ";
}

}  // namespace

Result<std::string> FormatEventLine(std::string_view ndjson_line) {
  auto event = nlohmann::ordered_json::parse(ndjson_line, nullptr, false);
  if (!event.is_object()) return Fail(ErrorCode::kInternal, "agentvmd sent an event that is not a JSON object");
  auto text_of = [&](const char* key) {
    auto it = event.find(key);
    return it == event.end() ? std::string("-") : ValueText(*it);
  };
  std::string line = Column(text_of("time"), 24) + Column(text_of("vm"), 15) + Column(text_of("type"), 17);
  for (const auto& [key, value] : event.items()) {
    if (key == "seq" || key == "time" || key == "vm" || key == "type") continue;
    line += ValueText(key) + "=" + ValueText(value) + " ";
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line + "\n";
}

}  // namespace agentvm::cli
