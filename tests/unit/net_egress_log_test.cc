// The egress log's storage: the ring and the file stay within their bounds
// however many entries come.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "netsetup/egress_log.h"

namespace agentvm::net {
namespace {

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

TEST(EgressLogTest, EntriesAreOneJsonLineWithTheFieldsOfTheirKind) {
  EgressEntry dns{.seq = 4, .time_ms = 1000, .kind = "dns", .name = "a.test", .dns_type = 1, .verdict = "allowed",
                  .answers = {"198.51.100.10"}};
  EXPECT_EQ(EgressEntryToJson(dns), R"({"seq":4,"time_ms":1000,"kind":"dns","name":"a.test","type":1,)"
                                    R"("verdict":"allowed","answers":["198.51.100.10"]})");
  EgressEntry refused{.seq = 5, .time_ms = 2000, .kind = "refused", .destination = "198.51.100.10", .port = 443,
                      .protocol = "tcp", .learned_from = ""};
  EXPECT_EQ(EgressEntryToJson(refused), R"({"seq":5,"time_ms":2000,"kind":"refused","destination":"198.51.100.10",)"
                                        R"("port":443,"protocol":"tcp","learned_from":""})");
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

}  // namespace
}  // namespace agentvm::net
