// The firewall against a fake transport: which batches it sends, and that it
// sends none when it refuses its input. The kernel's side is in
// tests/privileged/privileged_net_firewall_test.cc.
#include "netsetup/egress_by_name.h"
#include "netsetup/firewall.h"

#include <gtest/gtest.h>
#include <libnftnl/object.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace agentvm::net {
namespace {

using namespace std::chrono_literals;

struct Recorded {
  std::vector<NftBatch> batches;
  std::vector<NftMessage> queries;
  std::optional<Error> fail_next_batch;
  std::vector<std::vector<std::uint8_t>> query_replies;
};

class FakeTransport : public NftTransport {
 public:
  explicit FakeTransport(std::shared_ptr<Recorded> recorded) : recorded_(std::move(recorded)) {}

  Result<void> SendBatch(const NftBatch& batch) override {
    recorded_->batches.push_back(batch);
    if (recorded_->fail_next_batch) {
      Error error = *recorded_->fail_next_batch;
      recorded_->fail_next_batch.reset();
      return Fail(error);
    }
    return {};
  }

  Result<std::vector<std::vector<std::uint8_t>>> Query(const NftMessage& request) override {
    recorded_->queries.push_back(request);
    return recorded_->query_replies;
  }

 private:
  std::shared_ptr<Recorded> recorded_;
};

FirewallConfig Config() {
  return FirewallConfig{.bridge = "agentvm0",
                        .subnet = *Ipv4Subnet::Parse("10.101.0.0/16"),
                        .gateway = *Ipv4Address::Parse("10.101.0.1")};
}

// VM n (1-based) with an extra port, an extra CIDR and a bandwidth limit:
// the most messages a VM can cause.
VmNetRules FullVm(std::uint32_t n) {
  return VmNetRules{.tap = "avm-" + std::to_string(10000000000ull + n),
                    .address = Ipv4Address{Config().subnet.network.value + 1 + n},
                    .extra_tcp_ports = {8080},
                    .extra_cidrs = {*Ipv4Subnet::Parse("140.82.112.0/20")},
                    .bytes_per_second = 1'000'000};
}

std::size_t CountType(const NftBatch& batch, std::uint16_t type) {
  return std::count_if(batch.messages().begin(), batch.messages().end(),
                       [&](const NftMessage& m) { return m.type == type; });
}

// "add element bridge agentvm vm_taps" and the like, in batch order.
std::vector<std::string> Whats(const NftBatch& batch) {
  std::vector<std::string> out;
  for (const NftMessage& m : batch.messages()) out.push_back(m.what);
  return out;
}

class FirewallTest : public ::testing::Test {
 protected:
  std::unique_ptr<Firewall> MakeFirewall() {
    auto made = Firewall::Create(Config(), std::make_unique<FakeTransport>(recorded_));
    EXPECT_TRUE(made.has_value()) << (made ? "" : made.error().message);
    return made ? std::move(*made) : nullptr;
  }

  std::shared_ptr<Recorded> recorded_ = std::make_shared<Recorded>();
};

TEST_F(FirewallTest, CreateIsOneBatchThatReplacesBothTables) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  ASSERT_EQ(recorded_->batches.size(), 1u);
  const NftBatch& batch = recorded_->batches[0];
  // Leftovers first: "add, then delete" removes a table whether or not it is there.
  ASSERT_GE(batch.size(), 4u);
  EXPECT_EQ(batch.messages()[0].type, NFT_MSG_NEWTABLE);
  EXPECT_EQ(batch.messages()[1].type, NFT_MSG_DELTABLE);
  EXPECT_EQ(batch.messages()[1].family, NFPROTO_BRIDGE);
  EXPECT_EQ(batch.messages()[3].type, NFT_MSG_DELTABLE);
  EXPECT_EQ(batch.messages()[3].family, NFPROTO_INET);
  EXPECT_EQ(CountType(batch, NFT_MSG_NEWTABLE), 4u);
  EXPECT_EQ(CountType(batch, NFT_MSG_NEWSET), 13u);
  EXPECT_EQ(CountType(batch, NFT_MSG_NEWCHAIN), 7u);
  EXPECT_EQ(CountType(batch, NFT_MSG_NEWRULE), 33u);
  EXPECT_EQ(CountType(batch, NFT_MSG_NEWSETELEM), 2u) << "allowed_tcp, private_ranges";
  // Rules carry their nft text, which names them in kernel errors.
  auto whats = Whats(batch);
  EXPECT_NE(std::find(whats.begin(), whats.end(),
                      "add rule inet agentvm forward: iifname \"agentvm0\" ct state established,related accept"),
            whats.end());
}

TEST_F(FirewallTest, RefusedPacketsAreRejectedUnlessConfiguredToDrop) {
  auto rejecting = MakeFirewall();
  ASSERT_TRUE(rejecting);
  auto whats = Whats(recorded_->batches.back());
  EXPECT_NE(std::find(whats.begin(), whats.end(),
                      "add rule inet agentvm vm_refuse: meta l4proto tcp reject with tcp reset"),
            whats.end());
  EXPECT_NE(std::find(whats.begin(), whats.end(), "add rule inet agentvm vm_refuse: reject with icmpx admin-prohibited"),
            whats.end());
  FirewallConfig config = Config();
  config.reject_refused = false;
  auto dropping = Firewall::Create(config, std::make_unique<FakeTransport>(recorded_));
  ASSERT_TRUE(dropping.has_value());
  whats = Whats(recorded_->batches.back());
  EXPECT_NE(std::find(whats.begin(), whats.end(), "add rule inet agentvm vm_refuse: drop"), whats.end());
  EXPECT_EQ(std::count_if(whats.begin(), whats.end(), [](const std::string& w) { return w.find("reject") != std::string::npos; }), 0);
}

TEST_F(FirewallTest, RefusedPacketsAreLoggedRateLimitedOnlyWithALogGroup) {
  auto unlogged = MakeFirewall();
  ASSERT_TRUE(unlogged);
  auto whats = Whats(recorded_->batches.back());
  EXPECT_EQ(std::count_if(whats.begin(), whats.end(), [](const std::string& w) { return w.find(" log ") != std::string::npos; }), 0);
  FirewallConfig config = Config();
  config.refused_log_group = 7100;
  auto logging = Firewall::Create(config, std::make_unique<FakeTransport>(recorded_));
  ASSERT_TRUE(logging.has_value());
  whats = Whats(recorded_->batches.back());
  const auto log = std::find(whats.begin(), whats.end(),
                             "add rule inet agentvm vm_refuse: update @vm_log_rate { ip saddr timeout 1m limit rate "
                             "10/second burst 20 packets } limit rate 50/second burst 100 packets log prefix "
                             "\"avm-refused\" group 7100 snaplen 64");
  ASSERT_NE(log, whats.end());
  const auto counted = std::find(whats.begin(), whats.end(), "add rule inet agentvm vm_refuse: counter name ip saddr map @vm_drops");
  const auto rejected = std::find(whats.begin(), whats.end(), "add rule inet agentvm vm_refuse: meta l4proto tcp reject with tcp reset");
  EXPECT_LT(counted, log) << "counted whether logged or not";
  EXPECT_LT(log, rejected) << "logged before the verdict ends the chain";
  EXPECT_NE(std::find(whats.begin(), whats.end(), "add set inet agentvm vm_log_rate"), whats.end())
      << "the per-VM buckets' set, only with a log";
}

TEST_F(FirewallTest, CreateRefusesABadConfigAndSendsNothing) {
  FirewallConfig config = Config();
  config.allowed_tcp_ports = {80, 53};
  auto made = Firewall::Create(config, std::make_unique<FakeTransport>(recorded_));
  ASSERT_FALSE(made.has_value());
  EXPECT_EQ(made.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(recorded_->batches.empty());
}

TEST_F(FirewallTest, The500thVmCostsWhatTheFirstCost) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  for (std::uint32_t n = 1; n <= 500; ++n) ASSERT_TRUE(firewall->AddVm(FullVm(n)).has_value()) << n;
  ASSERT_EQ(recorded_->batches.size(), 501u);
  const NftBatch& first = recorded_->batches[1];
  const NftBatch& last = recorded_->batches[500];
  ASSERT_EQ(first.size(), last.size());
  for (std::size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first.messages()[i].type, last.messages()[i].type) << i;
    EXPECT_EQ(first.messages()[i].bytes.size(), last.messages()[i].bytes.size()) << first.messages()[i].what;
  }
  for (std::size_t b = 1; b < recorded_->batches.size(); ++b) {
    const NftBatch& batch = recorded_->batches[b];
    for (std::uint16_t type : {NFT_MSG_NEWRULE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWSET, NFT_MSG_NEWTABLE}) {
      ASSERT_EQ(CountType(batch, type), 0u) << "batch " << b << " has message type " << type;
    }
  }
  EXPECT_EQ(firewall->vm_count(), 500u);
}

TEST_F(FirewallTest, AVmIsElementsAndObjectsOnly) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  ASSERT_TRUE(firewall->AddVm(FullVm(1)).has_value());
  EXPECT_EQ(Whats(recorded_->batches.back()),
            (std::vector<std::string>{
                "add counter inet agentvm drops_10_101_0_2",
                "add limit bridge agentvm up_avm-10000000001",
                "add limit bridge agentvm down_avm-10000000001",
                "add element bridge agentvm vm_taps",
                "add element bridge agentvm vm_sources",
                "add element bridge agentvm vm_limit_up",
                "add element bridge agentvm vm_limit_down",
                "add element inet agentvm vm_addresses",
                "add element inet agentvm vm_drops",
                "add element inet agentvm vm_ports",
                "add element inet agentvm vm_cidrs",
            }));
  // Without extras a VM is four elements and its counter.
  VmNetRules plain{.tap = "avm-plain", .address = *Ipv4Address::Parse("10.101.9.9")};
  ASSERT_TRUE(firewall->AddVm(plain).has_value());
  EXPECT_EQ(recorded_->batches.back().size(), 5u);
}

TEST_F(FirewallTest, SourceElementPinsTapMacAndAddress) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  VmNetRules rules{.tap = "avm-x", .address = *Ipv4Address::Parse("10.101.0.2")};
  ASSERT_TRUE(firewall->AddVm(rules).has_value());
  const NftBatch& batch = recorded_->batches.back();
  auto it = std::find_if(batch.messages().begin(), batch.messages().end(),
                         [](const NftMessage& m) { return m.what == "add element bridge agentvm vm_sources"; });
  ASSERT_NE(it, batch.messages().end());
  nftnl_set* set = nftnl_set_alloc();
  ASSERT_GE(nftnl_set_elems_nlmsg_parse(reinterpret_cast<const nlmsghdr*>(it->bytes.data()), set), 0);
  nftnl_set_elems_iter* iter = nftnl_set_elems_iter_create(set);
  nftnl_set_elem* elem = nftnl_set_elems_iter_next(iter);
  ASSERT_NE(elem, nullptr);
  std::uint32_t len = 0;
  const auto* key = static_cast<const std::uint8_t*>(nftnl_set_elem_get(elem, NFTNL_SET_ELEM_KEY, &len));
  // ifname (16, zero padded) . MAC (6 + 2 padding) . IPv4 (network order).
  const std::uint8_t want[28] = {'a', 'v', 'm', '-', 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                 0x02, 0x00, 0x0a, 0x65, 0x00, 0x02, 0, 0, 10, 101, 0, 2};
  ASSERT_EQ(len, sizeof want);
  EXPECT_EQ(std::memcmp(key, want, sizeof want), 0);
  EXPECT_EQ(nftnl_set_elems_iter_next(iter), nullptr);
  nftnl_set_elems_iter_destroy(iter);
  nftnl_set_free(set);
}

TEST_F(FirewallTest, BadVmRulesSendNothing) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  std::vector<VmNetRules> bad;
  for (int i = 0; i < 6; ++i) bad.push_back(FullVm(1));
  bad[0].extra_tcp_ports = {53};
  bad[1].extra_tcp_ports = {0};
  bad[2].extra_tcp_ports = {8080, 8080};
  bad[3].address = *Ipv4Address::Parse("192.168.1.2");
  bad[4].extra_cidrs = {*Ipv4Subnet::Parse("10.101.0.0/24")};
  bad[5].tap = "bad/tap";
  for (const VmNetRules& rules : bad) {
    auto added = firewall->AddVm(rules);
    ASSERT_FALSE(added.has_value());
    EXPECT_EQ(added.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(recorded_->batches.size(), 1u) << "only Create's";
  EXPECT_EQ(firewall->vm_count(), 0u);
}

TEST_F(FirewallTest, ATapOrAddressHasRulesOnlyOnce) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  ASSERT_TRUE(firewall->AddVm(FullVm(1)).has_value());
  VmNetRules same_tap = FullVm(2);
  same_tap.tap = FullVm(1).tap;
  VmNetRules same_address = FullVm(2);
  same_address.address = FullVm(1).address;
  for (const VmNetRules& rules : {same_tap, same_address}) {
    auto added = firewall->AddVm(rules);
    ASSERT_FALSE(added.has_value());
    EXPECT_EQ(added.error().code, ErrorCode::kConflict);
  }
  EXPECT_EQ(recorded_->batches.size(), 2u);
}

TEST_F(FirewallTest, RemoveVmTakesOutWhatAddVmPutIn) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  const VmNetRules vm = FullVm(7);
  ASSERT_TRUE(firewall->AddVm(vm).has_value());
  const NftBatch added = recorded_->batches.back();
  ASSERT_TRUE(firewall->RemoveVm(vm.tap, vm.address).has_value());
  const NftBatch& removed = recorded_->batches.back();
  EXPECT_EQ(removed.size(), added.size());
  EXPECT_EQ(CountType(removed, NFT_MSG_DELSETELEM), CountType(added, NFT_MSG_NEWSETELEM));
  EXPECT_EQ(CountType(removed, NFT_MSG_DELOBJ), CountType(added, NFT_MSG_NEWOBJ));
  // Elements go before the objects they name.
  EXPECT_EQ(removed.messages().back().type, NFT_MSG_DELOBJ);
  EXPECT_EQ(removed.messages().front().type, NFT_MSG_DELSETELEM);
  EXPECT_EQ(firewall->vm_count(), 0u);
  // Element messages carry the same keys both ways.
  for (std::size_t i = 0; i < added.size(); ++i) {
    if (added.messages()[i].type != NFT_MSG_NEWSETELEM) continue;
    auto twin = std::find_if(removed.messages().begin(), removed.messages().end(), [&](const NftMessage& m) {
      return m.what == "delete" + added.messages()[i].what.substr(3);
    });
    ASSERT_NE(twin, removed.messages().end()) << added.messages()[i].what;
    EXPECT_EQ(twin->bytes.size(), added.messages()[i].bytes.size()) << twin->what;
  }
}

TEST_F(FirewallTest, RemoveVmOfUnknownTapOrWrongAddressIsNotFound) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  ASSERT_TRUE(firewall->AddVm(FullVm(1)).has_value());
  EXPECT_EQ(firewall->RemoveVm("avm-nope", FullVm(1).address).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(firewall->RemoveVm(FullVm(1).tap, FullVm(2).address).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(recorded_->batches.size(), 2u);
}

TEST_F(FirewallTest, ARefusedBatchRecordsNothing) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  recorded_->fail_next_batch = Error{ErrorCode::kConflict, "nftables refused \"x\": File exists"};
  auto added = firewall->AddVm(FullVm(1));
  ASSERT_FALSE(added.has_value());
  EXPECT_NE(added.error().message.find("File exists"), std::string::npos);
  EXPECT_EQ(firewall->vm_count(), 0u);
  EXPECT_TRUE(firewall->AddVm(FullVm(1)).has_value()) << "the same VM may be tried again";
}

TEST_F(FirewallTest, DestructorDeletesBothTables) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  firewall.reset();
  ASSERT_EQ(recorded_->batches.size(), 2u);
  const NftBatch& batch = recorded_->batches.back();
  ASSERT_EQ(batch.size(), 4u);
  EXPECT_EQ(CountType(batch, NFT_MSG_DELTABLE), 2u);
}

TEST_F(FirewallTest, DroppedPacketsReadsTheVmsCounter) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  // The kernel's answer: the counter object with its values.
  nftnl_obj* obj = nftnl_obj_alloc();
  nftnl_obj_set_u32(obj, NFTNL_OBJ_FAMILY, NFPROTO_INET);
  nftnl_obj_set_str(obj, NFTNL_OBJ_TABLE, "agentvm");
  nftnl_obj_set_str(obj, NFTNL_OBJ_NAME, "drops_10_101_0_2");
  nftnl_obj_set_u32(obj, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
  nftnl_obj_set_u64(obj, NFTNL_OBJ_CTR_PKTS, 7);
  nftnl_obj_set_u64(obj, NFTNL_OBJ_CTR_BYTES, 420);
  NftMessage reply = MakeNftMessage(NFT_MSG_NEWOBJ, NFPROTO_INET, 0, "reply",
                                    [&](nlmsghdr* nlh) { nftnl_obj_nlmsg_build_payload(nlh, obj); });
  nftnl_obj_free(obj);
  recorded_->query_replies = {reply.bytes};

  auto dropped = firewall->DroppedPackets(*Ipv4Address::Parse("10.101.0.2"));
  ASSERT_TRUE(dropped.has_value()) << dropped.error().message;
  EXPECT_EQ(*dropped, 7u);
  ASSERT_EQ(recorded_->queries.size(), 1u);
  EXPECT_EQ(recorded_->queries[0].type, NFT_MSG_GETOBJ);
  EXPECT_EQ(recorded_->queries[0].what, "get counter inet agentvm drops_10_101_0_2");
}

// ---- learned destinations (allow_domains) -----------------------------------

VmNetRules ByNameVm(std::uint32_t n) {
  VmNetRules rules = FullVm(n);
  rules.by_name = true;
  return rules;
}

std::uint16_t FlagsOf(const NftMessage& m) {
  return reinterpret_cast<const nlmsghdr*>(m.bytes.data())->nlmsg_flags;
}

std::vector<ruleset::LearnedElement> Destinations(std::initializer_list<const char*> addresses,
                                                  std::chrono::milliseconds timeout) {
  std::vector<ruleset::LearnedElement> out;
  for (const char* address : addresses) out.push_back({*Ipv4Address::Parse(address), timeout});
  return out;
}

TEST_F(FirewallTest, AGuestAskingEverNewNamesCannotGrowWhatIsKeptOfThem) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  const VmNetRules vm = ByNameVm(1);
  ASSERT_TRUE(firewall->AddVm(vm).has_value());
  EgressByName egress(*firewall);
  egress.SetList(vm.address, {"*.cdn.test"});
  // Every name answers with the same address: only the names pile up.
  const DnsAddress same{*Ipv4Address::Parse("203.0.113.9"), 300};
  for (std::size_t i = 0; i < kMaxLearnedPerVm; ++i) {
    ASSERT_TRUE(egress.Learn(vm.address, "n" + std::to_string(i) + ".cdn.test", {&same, 1}).has_value()) << i;
  }
  auto over = egress.Learn(vm.address, "one-more.cdn.test", {&same, 1});
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code, ErrorCode::kTooLarge);
  // A name already taught is refreshed, not refused.
  EXPECT_TRUE(egress.Learn(vm.address, "n0.cdn.test", {&same, 1}).has_value());
}

TEST_F(FirewallTest, AByNameVmIsInDomainVmsAndLearnsInOneBatch) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  const VmNetRules vm = ByNameVm(1);
  ASSERT_TRUE(firewall->AddVm(vm).has_value());
  auto whats = Whats(recorded_->batches.back());
  EXPECT_NE(std::find(whats.begin(), whats.end(), "add element inet agentvm domain_vms"), whats.end());

  ASSERT_TRUE(firewall->Learn(vm.address, Destinations({"203.0.113.5", "203.0.113.6"}, 60s)).has_value());
  const NftBatch& batch = recorded_->batches.back();
  ASSERT_EQ(batch.size(), 1u) << "both destinations in one message";
  EXPECT_EQ(batch.messages()[0].what, "add element inet agentvm vm_learned");
  EXPECT_EQ(FlagsOf(batch.messages()[0]) & NLM_F_EXCL, 0) << "an element that exists must not fail the batch";
  EXPECT_EQ(firewall->LearnedCount(vm.address), 2u);

  const std::size_t sent = recorded_->batches.size();
  ASSERT_TRUE(firewall->Learn(vm.address, Destinations({"203.0.113.5"}, 30s)).has_value());
  EXPECT_EQ(recorded_->batches.size(), sent) << "a shorter timeout than what is left sends nothing";
  ASSERT_TRUE(firewall->Learn(vm.address, Destinations({"203.0.113.5"}, 600s)).has_value());
  EXPECT_EQ(Whats(recorded_->batches.back()),
            (std::vector<std::string>{"delete element inet agentvm vm_learned", "add element inet agentvm vm_learned"}))
      << "a longer one restarts the element's timeout";
}

TEST_F(FirewallTest, ALearnBatchRefusedForAVanishedElementIsRetriedWithoutDeletes) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  const VmNetRules vm = ByNameVm(1);
  ASSERT_TRUE(firewall->AddVm(vm).has_value());
  ASSERT_TRUE(firewall->Learn(vm.address, Destinations({"203.0.113.5"}, 60s)).has_value());
  recorded_->fail_next_batch = Error{ErrorCode::kNotFound, "nftables refused delete element: No such file"};
  ASSERT_TRUE(firewall->Learn(vm.address, Destinations({"203.0.113.5"}, 600s)).has_value());
  EXPECT_EQ(Whats(recorded_->batches.back()), (std::vector<std::string>{"add element inet agentvm vm_learned"}));
}

TEST_F(FirewallTest, OnlyByNameVmsLearnAndRemovingOneForgetsWhatItLearned) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  const VmNetRules plain = FullVm(1);
  const VmNetRules by_name = ByNameVm(2);
  ASSERT_TRUE(firewall->AddVm(plain).has_value());
  ASSERT_TRUE(firewall->AddVm(by_name).has_value());
  EXPECT_EQ(firewall->Learn(plain.address, Destinations({"203.0.113.5"}, 60s)).error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(firewall->Learn(by_name.address, Destinations({"203.0.113.5"}, 60s)).has_value());
  EXPECT_EQ(firewall->LearnedCount(plain.address), 0u) << "two VMs never share learned destinations";

  ASSERT_TRUE(firewall->RemoveVm(by_name.tap, by_name.address).has_value());
  const auto& batches = recorded_->batches;
  ASSERT_GE(batches.size(), 2u);
  EXPECT_EQ(Whats(batches[batches.size() - 2]), (std::vector<std::string>{"delete element inet agentvm vm_learned"}));
  auto whats = Whats(batches.back());
  EXPECT_NE(std::find(whats.begin(), whats.end(), "delete element inet agentvm domain_vms"), whats.end());
  EXPECT_EQ(firewall->LearnedCount(by_name.address), 0u);
}

TEST_F(FirewallTest, LearnedDestinationsPerVmAreCapped) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  const VmNetRules vm = ByNameVm(1);
  ASSERT_TRUE(firewall->AddVm(vm).has_value());
  std::vector<ruleset::LearnedElement> many;
  for (std::uint32_t i = 0; i <= kMaxLearnedPerVm; ++i) many.push_back({Ipv4Address{0xcb007100 + i}, 60s});
  auto learned = firewall->Learn(vm.address, many);
  ASSERT_FALSE(learned.has_value());
  EXPECT_EQ(learned.error().code, ErrorCode::kTooLarge);
  many.pop_back();
  EXPECT_TRUE(firewall->Learn(vm.address, many).has_value());
}

// ---- live policy changes (PATCH /v1/vms/{id}/network) ------------------------

TEST_F(FirewallTest, UpdateVmSendsOnlyTheDifferenceInOneBatch) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  const VmNetRules before = FullVm(1);  // port 8080, 140.82.112.0/20, 1 MB/s
  ASSERT_TRUE(firewall->AddVm(before).has_value());
  const std::size_t batches = recorded_->batches.size();

  VmNetRules after = before;
  after.extra_tcp_ports = {8080, 8443};
  after.extra_cidrs = {};
  after.bytes_per_second = 2'000'000;
  after.by_name = true;
  ASSERT_TRUE(firewall->UpdateVm(after).has_value());
  ASSERT_EQ(recorded_->batches.size(), batches + 1) << "one batch";
  EXPECT_EQ(Whats(recorded_->batches.back()),
            (std::vector<std::string>{
                "delete element inet agentvm vm_cidrs",
                "add element inet agentvm vm_ports",
                "add element inet agentvm domain_vms",
                "delete element bridge agentvm vm_limit_up",
                "delete element bridge agentvm vm_limit_down",
                "delete limit bridge agentvm up_" + before.tap,
                "delete limit bridge agentvm down_" + before.tap,
                "add limit bridge agentvm up_" + before.tap,
                "add limit bridge agentvm down_" + before.tap,
                "add element bridge agentvm vm_limit_up",
                "add element bridge agentvm vm_limit_down",
            }))
      << "the drop counter, the tap's elements and port 8080 stay";

  // The same rules again: nothing to send. Removing the VM takes what it has now.
  ASSERT_TRUE(firewall->UpdateVm(after).has_value());
  EXPECT_EQ(recorded_->batches.size(), batches + 1);
  ASSERT_TRUE(firewall->RemoveVm(after.tap, after.address).has_value());
  auto whats = Whats(recorded_->batches.back());
  EXPECT_NE(std::find(whats.begin(), whats.end(), "delete element inet agentvm domain_vms"), whats.end());
}

TEST_F(FirewallTest, UpdateVmRefusesBadRulesAndUnknownVms) {
  auto firewall = MakeFirewall();
  ASSERT_TRUE(firewall);
  const VmNetRules vm = FullVm(1);
  ASSERT_TRUE(firewall->AddVm(vm).has_value());
  const std::size_t batches = recorded_->batches.size();
  VmNetRules bad = vm;
  bad.extra_tcp_ports = {53};
  auto refused = firewall->UpdateVm(bad);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  auto unknown = firewall->UpdateVm(FullVm(2));
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(recorded_->batches.size(), batches) << "nothing sent";

  // A failed batch leaves the old rules in place: going back to them is no change.
  VmNetRules more = vm;
  more.extra_tcp_ports = {8080, 9000};
  recorded_->fail_next_batch = Error{ErrorCode::kInternal, "kernel says no"};
  ASSERT_FALSE(firewall->UpdateVm(more).has_value());
  EXPECT_EQ(recorded_->batches.size(), batches + 1);
  ASSERT_TRUE(firewall->UpdateVm(vm).has_value());
  EXPECT_EQ(recorded_->batches.size(), batches + 1) << "the failed change was not recorded as made";
}

}  // namespace
}  // namespace agentvm::net
