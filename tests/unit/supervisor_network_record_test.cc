// The network part of a VM's state-store record: the API's "network" object,
// read back whole, and tolerant of records older daemons wrote.
#include <gtest/gtest.h>

#include "supervisor/vm_network.h"

namespace agentvm {
namespace {

TEST(NetworkRecordTest, RoundTripsEverythingButTheLiveCounter) {
  NetworkInfo info{.mode = NetworkMode::kNatFiltered,
                   .address = "10.101.0.7",
                   .gateway = "10.101.0.1",
                   .dns = "10.101.0.1",
                   .mac = "02:00:0a:65:00:07",
                   .tap = "avm-0123456789a",
                   .bridge = "agentvm0",
                   .allow_tcp_ports = {8080},
                   .allow_cidrs = {"203.0.113.0/24"},
                   .allow_domains = {"api.anthropic.com", "*.github.com"},
                   .presets = {"github"},
                   .bandwidth_bytes_per_sec = 1 << 20,
                   .dropped_connections = 9,
                   .dns_queries = {{"refused", 4}}};
  NetworkInfo back = NetworkInfoFromRecord(NetworkInfoToRecord(info));
  EXPECT_EQ(back.mode, NetworkMode::kNatFiltered);
  EXPECT_EQ(back.address, info.address);
  EXPECT_EQ(back.gateway, info.gateway);
  EXPECT_EQ(back.dns, info.dns);
  EXPECT_EQ(back.mac, info.mac);
  EXPECT_EQ(back.tap, info.tap);
  EXPECT_EQ(back.bridge, info.bridge);
  EXPECT_EQ(back.allow_tcp_ports, info.allow_tcp_ports);
  EXPECT_EQ(back.allow_cidrs, info.allow_cidrs);
  EXPECT_EQ(back.allow_domains, info.allow_domains);
  EXPECT_EQ(back.presets, info.presets);
  EXPECT_EQ(back.bandwidth_bytes_per_sec, info.bandwidth_bytes_per_sec);
  EXPECT_EQ(back.dropped_connections, 0u) << "a counter of the running daemon, not state";
  EXPECT_TRUE(back.dns_queries.empty()) << "a counter of the running daemon, not state";
}

TEST(NetworkRecordTest, ReadsARecordAnOlderDaemonWrote) {
  // No allow_domains, no bandwidth key: what records looked like before.
  NetworkInfo back = NetworkInfoFromRecord(
      R"({"mode":"nat-filtered","address":"10.101.0.2","gateway":"10.101.0.1","dns":"10.101.0.1",)"
      R"("mac":"02:00:0a:65:00:02","tap":"avm-x","bridge":"agentvm0","allow_tcp_ports":[],"allow_cidrs":[]})");
  EXPECT_EQ(back.mode, NetworkMode::kNatFiltered);
  EXPECT_EQ(back.address, "10.101.0.2");
  EXPECT_TRUE(back.allow_domains.empty());
  EXPECT_FALSE(back.bandwidth_bytes_per_sec.has_value());
}

TEST(NetworkRecordTest, AnUnreadableRecordIsAVmWithoutANetwork) {
  EXPECT_EQ(NetworkInfoFromRecord("not json").mode, NetworkMode::kIsolated);
  EXPECT_EQ(NetworkInfoFromRecord(R"({"mode":"warp"})").mode, NetworkMode::kIsolated);
  EXPECT_EQ(NetworkInfoFromRecord("[]").mode, NetworkMode::kIsolated);
}

}  // namespace
}  // namespace agentvm
