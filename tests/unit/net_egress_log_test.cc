// The egress log's storage and its NFLOG input: the ring and the file stay
// within their bounds however many entries come, and a refused connection's
// NFLOG message gives back its addresses, protocol and port (and nothing
// from a message that lies about its lengths).
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "netsetup/egress_log.h"
#include "netsetup/egress_refused.h"
#include "netsetup/nflog_message.h"

namespace agentvm::net {
namespace {

// A TCP SYN 10.101.0.5:40000 -> 198.51.100.10:443 as `log prefix
// "avm-refused" group 7` hands it to a nfnetlink_log socket: the netlink
// header, nfgenmsg (AF_INET, group 7), NFULA_PACKET_HDR, NFULA_IFINDEX_OUTDEV,
// NFULA_PREFIX and NFULA_PAYLOAD, in the kernel's layout and byte order.
const std::vector<std::uint8_t> kRefusedSyn = {
    0x74, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
    0x00, 0x07, 0x08, 0x00, 0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x08, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x0c,
    0x10, 0x00, 0x0a, 0x00, 0x61, 0x76, 0x6d, 0x2d, 0x72, 0x65, 0x66, 0x75, 0x73, 0x65, 0x64, 0x00, 0x40, 0x00,
    0x09, 0x00, 0x45, 0x00, 0x00, 0x3c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0x0a, 0x65, 0x00, 0x05,
    0xc6, 0x33, 0x64, 0x0a, 0x9c, 0x40, 0x01, 0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02,
    0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x02, 0x04, 0x05, 0xb4, 0x02, 0x04, 0x05, 0xb4,
    0x02, 0x04, 0x05, 0xb4, 0x02, 0x04, 0x05, 0xb4};
constexpr std::size_t kPayloadAttrOffset = 52;  // NFULA_PAYLOAD's header

TEST(NflogMessageTest, ARefusedSynGivesItsEndpoints) {
  auto packet = ParseNflogMessage(kRefusedSyn);
  ASSERT_TRUE(packet.has_value()) << packet.error().message;
  EXPECT_EQ(packet->prefix, "avm-refused");
  EXPECT_EQ(packet->source.ToString(), "10.101.0.5");
  EXPECT_EQ(packet->destination.ToString(), "198.51.100.10");
  EXPECT_EQ(ProtocolName(packet->protocol), "tcp");
  EXPECT_EQ(packet->port, 443);
}

TEST(NflogMessageTest, LyingLengthsAndOtherMessagesAreRefused) {
  for (std::size_t cut : {0ul, 10ul, 20ul, 60ul, kRefusedSyn.size() - 1}) {
    std::vector<std::uint8_t> short_read(kRefusedSyn.begin(), kRefusedSyn.begin() + static_cast<long>(cut));
    EXPECT_FALSE(ParseNflogMessage(short_read).has_value()) << "cut at " << cut;
  }
  auto overrun = kRefusedSyn;
  overrun[kPayloadAttrOffset] = 0xff;  // the payload attribute claims more than the message holds
  EXPECT_FALSE(ParseNflogMessage(overrun).has_value());
  auto config = kRefusedSyn;
  config[4] = 0x01;  // NFULNL_MSG_CONFIG, not a packet
  EXPECT_FALSE(ParseNflogMessage(config).has_value());
  auto ipv6 = kRefusedSyn;
  ipv6[kPayloadAttrOffset + 4] = 0x65;  // version 6
  EXPECT_FALSE(ParseNflogMessage(ipv6).has_value());
  auto bad_ihl = kRefusedSyn;
  bad_ihl[kPayloadAttrOffset + 4] = 0x4f;  // a 60-byte IPv4 header leaves no room for the ports
  auto parsed = ParseNflogMessage(bad_ihl);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->port, 0) << "no port read past the header";
}

TEST(EgressRingTest, KeepsTheLastCapacityEntriesAndCountsTheRest) {
  EgressRing ring(3);
  for (int i = 0; i < 10; ++i) ring.Push(EgressEntry{.kind = "dns", .name = "n" + std::to_string(i) + ".test"});
  EXPECT_EQ(ring.size(), 3u);
  EXPECT_EQ(ring.dropped(), 7u);
  auto kept = ring.Since(0);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept.front().seq, 8u);
  EXPECT_EQ(kept.back().name, "n9.test");
  EXPECT_EQ(ring.Since(9).size(), 1u);
  EXPECT_TRUE(ring.Since(10).empty());
}

TEST(EgressRingTest, ARefusedDestinationIsTracedToTheNewestAllowedAnswerKept) {
  EgressRing ring(3);
  ring.Push(EgressEntry{.kind = "dns", .name = "old.test", .verdict = "allowed", .answers = {"198.51.100.10"}});
  ring.Push(EgressEntry{.kind = "dns", .name = "new.test", .verdict = "allowed", .answers = {"198.51.100.9", "198.51.100.10"}});
  ring.Push(EgressEntry{.kind = "dns", .name = "no.test", .verdict = "refused", .answers = {"198.51.100.11"}});
  EXPECT_EQ(ring.NameAnswering("198.51.100.10"), "new.test");
  EXPECT_EQ(ring.NameAnswering("198.51.100.11"), "") << "only allowed answers teach addresses";
  EXPECT_EQ(ring.NameAnswering("198.51.100.12"), "");
  ring.Push(EgressEntry{.kind = "refused", .destination = "198.51.100.10"});
  ring.Push(EgressEntry{.kind = "refused", .destination = "198.51.100.10"});
  EXPECT_EQ(ring.NameAnswering("198.51.100.10"), "") << "answers that left the ring are forgotten";
}

TEST(EgressRefusedTest, OurRulesPacketBecomesAnEntryNamingWhereItsAddressWasLearned) {
  auto packet = ParseNflogMessage(kRefusedSyn);  // 10.101.0.5 -> 198.51.100.10:443, tcp
  ASSERT_TRUE(packet.has_value()) << packet.error().message;
  EgressRing ring(10);
  auto unknown = RefusedConnectionEntry(*packet, ring);
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->kind, "refused");
  EXPECT_EQ(unknown->verdict, "refused");
  EXPECT_EQ(unknown->destination, "198.51.100.10");
  EXPECT_EQ(unknown->port, 443);
  EXPECT_EQ(unknown->protocol, "tcp");
  EXPECT_EQ(unknown->learned_from, "") << "never resolved";
  ring.Push(EgressEntry{.kind = "dns", .name = "web.test", .verdict = "allowed", .answers = {"198.51.100.10"}});
  EXPECT_EQ(RefusedConnectionEntry(*packet, ring)->learned_from, "web.test");
  NflogPacket other = *packet;
  other.prefix = "someone-else";
  EXPECT_FALSE(RefusedConnectionEntry(other, ring).has_value()) << "only our rule's packets";
}

TEST(EgressLogTest, EntriesAreOneJsonLineWithTheFieldsOfTheirKind) {
  EgressEntry dns{.seq = 4, .time_ms = 1000, .kind = "dns", .name = "a.test", .dns_type = 1, .verdict = "allowed",
                  .answers = {"198.51.100.10"}};
  EXPECT_EQ(EgressEntryToJson(dns), R"({"seq":4,"time_ms":1000,"kind":"dns","name":"a.test","type":1,)"
                                    R"("verdict":"allowed","answers":["198.51.100.10"]})");
  EgressEntry refused{.seq = 5, .time_ms = 2000, .kind = "refused", .verdict = "refused",
                      .destination = "198.51.100.10", .port = 443, .protocol = "tcp", .learned_from = "a.test"};
  EXPECT_EQ(EgressEntryToJson(refused), R"({"seq":5,"time_ms":2000,"kind":"refused","destination":"198.51.100.10",)"
                                        R"("port":443,"protocol":"tcp","verdict":"refused","learned_from":"a.test"})");
  auto back = EgressEntryFromJson(EgressEntryToJson(refused));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->verdict, "refused");
  EXPECT_EQ(back->learned_from, "a.test");
  EgressEntry hostile{.kind = "dns", .name = std::string("\xff\n\"x", 4)};
  EXPECT_EQ(EgressEntryToJson(hostile).find('\n'), std::string::npos) << "one line, whatever the guest sent";
}

TEST(EgressLogTest, TheFileRotatesAtItsCapSoTwoCapsBoundTheDisk) {
  const std::filesystem::path dir = ::testing::TempDir() + "/egress-log-test-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const auto path = dir / "egress.jsonl";
  auto file = CappedJsonlFile::Open(path, 100);
  ASSERT_TRUE(file.has_value()) << file.error().message;
  const std::string line(29, 'x');  // 30 bytes with its newline
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(file->Append(line).has_value());
  EXPECT_LE(std::filesystem::file_size(path), 100u);
  EXPECT_LE(std::filesystem::file_size(path.string() + ".1"), 100u);
  EXPECT_EQ(std::filesystem::file_size(path.string() + ".1"), 90u) << "whole lines only";
  EXPECT_FALSE(file->Append(std::string(100, 'y')).has_value()) << "a line over the cap";

  auto reopened = CappedJsonlFile::Open(path, 100);
  ASSERT_TRUE(reopened.has_value());
  EXPECT_EQ(reopened->size(), std::filesystem::file_size(path)) << "what is there counts";
  std::filesystem::remove_all(dir);
}

TEST(EgressLogTest, AVmsLogCountsVerdictsAndWritesItsFileAsItGoes) {
  const std::filesystem::path dir = ::testing::TempDir() + "/vm-egress-log-test-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  VmEgressLog log(dir / "egress.jsonl", /*ring_entries=*/2, /*file_bytes=*/4096);
  log.Add({.kind = "dns", .name = "a.test", .dns_type = 1, .verdict = "allowed", .answers = {"198.51.100.10"}});
  log.Add({.kind = "dns", .name = "b.test", .dns_type = 1, .verdict = "refused"});
  log.Add({.kind = "dns", .name = "c.test", .dns_type = 16, .verdict = "refused-type"});
  log.Add({.kind = "dns", .name = "d.test", .dns_type = 1, .verdict = "refused"});
  EXPECT_EQ(log.dns_verdicts(), (std::map<std::string, std::uint64_t>{{"allowed", 1}, {"refused", 2}, {"refused-type", 1}}));
  auto kept = log.ring().Since(0);
  ASSERT_EQ(kept.size(), 2u) << "the ring holds two";
  EXPECT_EQ(kept.back().name, "d.test");
  EXPECT_GT(kept.back().time_ms, 1'700'000'000'000) << "stamped with the time";

  std::ifstream file(dir / "egress.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(file, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u) << "the file has every entry";
  auto first = EgressEntryFromJson(lines[0]);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(first->name, "a.test");
  EXPECT_EQ(first->answers, std::vector<std::string>{"198.51.100.10"});
  EXPECT_EQ(first->seq, 1u);
  EXPECT_FALSE(EgressEntryFromJson("not json").has_value());
  std::filesystem::remove_all(dir);

  VmEgressLog homeless("/nonexistent-dir/egress.jsonl", 2, 4096);
  homeless.Add({.kind = "dns", .name = "a.test", .verdict = "refused"});
  EXPECT_EQ(homeless.ring().size(), 1u) << "without its file the ring goes on";
}

// What a follower holds now, without waiting: entries as they are, a gap
// as the "dropped" entry the API sends for it.
std::vector<EgressEntry> Drain(boost::asio::io_context& io, EgressFollower& follower) {
  std::vector<EgressEntry> entries;
  for (;;) {
    auto next = boost::asio::co_spawn(io, follower.NextUntil(std::chrono::steady_clock::now()),
                                      boost::asio::use_future);
    io.restart();
    io.run();
    auto item = next.get();
    if (!item) return entries;
    if (auto* entry = std::get_if<EgressEntry>(&*item)) {
      entries.push_back(std::move(*entry));
    } else {
      entries.push_back(DroppedEntry(std::get<EgressFollower::Gap>(*item)));
    }
  }
}

TEST(EgressLogTest, AFollowerGetsEachLaterEntryAndTheRingHasTheEarlierOnes) {
  boost::asio::io_context io;
  VmEgressLog log("/nonexistent-dir/egress.jsonl", 100, 4096);
  log.Add({.kind = "dns", .name = "before.test", .verdict = "refused"});
  auto follower = log.Follow(io.get_executor());
  const auto replay = log.ring().Since(0);  // taken with Follow: nothing between
  log.Add({.kind = "dns", .name = "a.test", .verdict = "allowed"});
  log.Add({.kind = "refused", .verdict = "refused", .destination = "198.51.100.7", .port = 443, .protocol = "tcp"});
  ASSERT_EQ(replay.size(), 1u);
  EXPECT_EQ(replay[0].name, "before.test");
  auto later = Drain(io, *follower);
  ASSERT_EQ(later.size(), 2u);
  EXPECT_EQ(later[0].seq, 2u);
  EXPECT_EQ(later[0].name, "a.test");
  EXPECT_EQ(later[1].destination, "198.51.100.7");
  EXPECT_GT(later[1].time_ms, 0) << "stamped before it is handed on";
}

TEST(EgressLogTest, ASlowFollowerGetsOneDroppedEntryAtTheGapNotAnUnboundedQueue) {
  boost::asio::io_context io;
  VmEgressLog log("/nonexistent-dir/egress.jsonl", 100, 4096);
  auto follower = log.Follow(io.get_executor(), /*queue_size=*/2);
  for (int i = 0; i < 50; ++i) log.Add({.kind = "dns", .name = "n" + std::to_string(i) + ".test", .verdict = "refused"});
  EXPECT_EQ(follower->size(), 3u) << "two entries and the gap, however many came";
  auto first = Drain(io, *follower);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[1].name, "n1.test");
  EXPECT_EQ(first[2].kind, "dropped");
  EXPECT_EQ(first[2].count, 48u);
  const std::string line = EgressEntryToJson(first[2]);
  EXPECT_EQ(line.find("\"seq\""), std::string::npos) << line;
  auto parsed = EgressEntryFromJson(line);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->kind, "dropped");
  EXPECT_EQ(parsed->count, 48u);
  log.Add({.kind = "dns", .name = "after.test", .verdict = "refused"});
  auto later = Drain(io, *follower);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].seq, 51u) << "the gap is in the ring: after=2 replays it";
}

TEST(EgressLogTest, TheLogGoingClosesItsFollowersAndADroppedOneIsForgotten) {
  boost::asio::io_context io;
  auto log = std::make_unique<VmEgressLog>("/nonexistent-dir/egress.jsonl", 100, 4096);
  auto follower = log->Follow(io.get_executor());
  log->Follow(io.get_executor());  // dropped at once: the next Add forgets it
  log->Add({.kind = "dns", .name = "a.test", .verdict = "refused"});
  log.reset();  // the VM's network went
  EXPECT_TRUE(follower->closed());
  EXPECT_TRUE(Drain(io, *follower).empty());
}

}  // namespace
}  // namespace agentvm::net
