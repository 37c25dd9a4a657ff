#include "supervisor/vm_io_stats.h"

#include <charconv>
#include <fstream>

#include <nlohmann/json.hpp>

namespace agentvm {
namespace {

constexpr std::size_t kMaxDrives = 64;

std::uint64_t Counter(const nlohmann::json& stats, const char* name) {
  auto it = stats.find(name);
  return it != stats.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

std::string StringField(const nlohmann::json& entry, const char* name) {
  auto it = entry.find(name);
  return it != entry.end() && it->is_string() ? it->get<std::string>() : "";
}

std::optional<std::uint64_t> ReadCounter(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!std::getline(in, text)) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  return value;
}

}  // namespace

std::vector<BlockIo> ParseBlockStats(const nlohmann::json& reply) {
  std::vector<BlockIo> drives;
  if (!reply.is_array()) return drives;
  for (const auto& entry : reply) {
    if (drives.size() == kMaxDrives) break;
    if (!entry.is_object() || !entry.contains("stats") || !entry["stats"].is_object()) continue;
    std::string drive = StringField(entry, "node-name");
    if (drive.empty()) drive = StringField(entry, "device");
    if (drive.empty()) drive = StringField(entry, "qdev");
    if (drive.empty()) continue;
    const auto& stats = entry["stats"];
    drives.push_back(BlockIo{.drive = std::move(drive),
                             .read_bytes = Counter(stats, "rd_bytes"),
                             .written_bytes = Counter(stats, "wr_bytes"),
                             .read_ops = Counter(stats, "rd_operations"),
                             .write_ops = Counter(stats, "wr_operations")});
  }
  return drives;
}

std::optional<NetIo> ReadTapIo(const std::string& tap, const std::string& sys) {
  // A tap name never holds '/' (IFNAMSIZ names); refuse one that would leave the directory.
  if (tap.empty() || tap.find('/') != std::string::npos || tap == "." || tap == "..") return std::nullopt;
  const std::string dir = sys + "/class/net/" + tap + "/statistics/";
  auto rx = ReadCounter(dir + "rx_bytes");
  auto tx = ReadCounter(dir + "tx_bytes");
  if (!rx || !tx) return std::nullopt;
  return NetIo{.transmit_bytes = *rx, .receive_bytes = *tx};
}

}  // namespace agentvm
