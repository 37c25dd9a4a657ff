// The forwarder for a domain-filtered VM (a fake DnsPolicy gives 127.0.0.1 a
// list): refused names never reach upstream, allowed answers are learned
// before the guest sees them.
#include <gtest/gtest.h>

#include "netsetup/dns_forwarder.h"
#include "netsetup/dns_policy.h"
#include "tests/unit/dns_forwarder_fixture.h"

namespace agentvm {
namespace {

class FakePolicy : public net::DnsPolicy {
 public:
  const net::DomainList* ListFor(net::Ipv4Address) const override { return filtered ? &list : nullptr; }
  Result<void> Learn(net::Ipv4Address vm, const std::string& name,
                     std::span<const net::DnsAddress> addresses) override {
    if (on_learn) on_learn();
    learned.push_back({vm, name, std::vector<net::DnsAddress>(addresses.begin(), addresses.end())});
    if (fail) return Fail(ErrorCode::kInternal, "netlink refused");
    return {};
  }
  void Record(const net::DnsQuestionRecord& record) override { records.push_back(record); }

  struct Learned {
    net::Ipv4Address vm;
    std::string name;
    std::vector<net::DnsAddress> addresses;
  };
  bool filtered = true;
  bool fail = false;
  net::DomainList list{{"allowed.test", "*.zone.test"}};
  std::function<void()> on_learn;
  std::vector<Learned> learned;
  std::vector<net::DnsQuestionRecord> records;
};

class DnsFilterTest : public DnsForwarderFixture {
 protected:
  std::unique_ptr<DnsForwarder> Start() {
    auto options = Options();
    options.policy = &policy_;
    return StartForwarder(options);
  }

  // Bytes 2.. of `query` with a type other than A.
  static Bytes WithType(Bytes query, std::uint8_t type) {
    query[query.size() - 3] = type;
    return query;
  }

  FakePolicy policy_;
};

TEST_F(DnsFilterTest, ANameNotOnTheListIsRefusedAndNeverSentUpstream) {
  auto forwarder = Start();
  UdpPeer guest;
  guest.SendTo(MakeQuery(0x0101, "other.test"), forwarder->port());
  guest.SendTo(MakeQuery(0x0102, "zone.test.evil.test"), forwarder->port());
  guest.SendTo(MakeQuery(0x0103, "zone.test"), forwarder->port());
  for (std::uint16_t id : {0x0101, 0x0102, 0x0103}) {
    auto answer = Await(guest);
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(IdOf(answer->data), id);
    EXPECT_EQ(answer->data[3] & 0x0f, 5) << "REFUSED";
  }
  RunUntil([] { return false; }, 100ms);
  EXPECT_FALSE(upstream_.Receive().has_value()) << "a refused name must not leave the host";
  EXPECT_EQ(forwarder->stats().refused, 3u);
  EXPECT_EQ(forwarder->stats().forwarded, 0u);
  ASSERT_EQ(policy_.records.size(), 3u);
  EXPECT_EQ(policy_.records[0].name, "other.test");
  EXPECT_EQ(policy_.records[0].verdict, "refused");
  EXPECT_EQ(policy_.records[0].vm.ToString(), "127.0.0.1");
}

TEST_F(DnsFilterTest, OtherTypesAndNonQueriesOfAnAllowedNameNeverLeave) {
  auto forwarder = Start();
  UdpPeer guest;
  guest.SendTo(WithType(MakeQuery(1, "allowed.test"), 16), forwarder->port());  // TXT
  auto answer = Await(guest);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->data[3] & 0x0f, 5);
  ASSERT_EQ(policy_.records.size(), 1u);
  EXPECT_EQ(policy_.records[0].verdict, "refused-type");

  for (const Bytes& query : NonStandardQueries(2, "allowed.test")) guest.SendTo(query, forwarder->port());
  RunUntil([&] { return forwarder->stats().dropped == 2; }, 1000ms);
  EXPECT_EQ(forwarder->stats().dropped, 2u);
  EXPECT_FALSE(upstream_.Receive().has_value());
  EXPECT_FALSE(guest.Receive().has_value());
}

TEST_F(DnsFilterTest, AnAllowedAnswerIsLearnedBeforeTheGuestGetsIt) {
  auto forwarder = Start();
  UdpPeer guest;
  const Bytes query = MakeQuery(0x7777, "a.zone.test");
  guest.SendTo(query, forwarder->port());
  auto asked = Await(upstream_);
  ASSERT_TRUE(asked.has_value());
  EXPECT_EQ(Body(asked->data), Body(query));
  bool guest_had_answer_at_learn = true;
  policy_.on_learn = [&] { guest_had_answer_at_learn = guest.Receive().has_value(); };
  upstream_.SendTo(AnswerWith(asked->data, {{"a.zone.test", true, "cdn.test", 50}, {"cdn.test", false, "203.0.113.5", 900}}),
                   asked->from_port);
  auto answer = Await(guest);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(IdOf(answer->data), 0x7777);
  EXPECT_EQ(answer->data[3] & 0x0f, 0);
  ASSERT_EQ(policy_.learned.size(), 1u);
  EXPECT_FALSE(guest_had_answer_at_learn) << "the answer must wait for the learned elements";
  EXPECT_EQ(policy_.learned[0].name, "a.zone.test");
  ASSERT_EQ(policy_.learned[0].addresses.size(), 1u);
  EXPECT_EQ(policy_.learned[0].addresses[0].address.ToString(), "203.0.113.5");
  EXPECT_EQ(policy_.learned[0].addresses[0].ttl, 50u);
  ASSERT_EQ(policy_.records.size(), 1u);
  EXPECT_EQ(policy_.records[0].verdict, "allowed");
  EXPECT_EQ(forwarder->stats().learned, 1u);
}

TEST_F(DnsFilterTest, WhenLearningFailsTheGuestGetsServfail) {
  auto forwarder = Start();
  policy_.fail = true;
  UdpPeer guest;
  guest.SendTo(MakeQuery(0x0909, "allowed.test"), forwarder->port());
  auto asked = Await(upstream_);
  ASSERT_TRUE(asked.has_value());
  upstream_.SendTo(AnswerWith(asked->data, {{"allowed.test", false, "203.0.113.9", 60}}), asked->from_port);
  auto answer = Await(guest);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(IdOf(answer->data), 0x0909);
  EXPECT_EQ(answer->data[3] & 0x0f, 2) << "SERVFAIL";
  EXPECT_EQ(answer->data[7], 0) << "no answer records";
  ASSERT_EQ(policy_.records.size(), 1u);
  EXPECT_EQ(policy_.records[0].verdict, "failed");
}

TEST_F(DnsFilterTest, AVmWithoutAListIsRelayedAsBefore) {
  policy_.filtered = false;
  auto forwarder = Start();
  UdpPeer guest;
  guest.SendTo(MakeQuery(5, "other.test"), forwarder->port());
  auto asked = Await(upstream_);
  ASSERT_TRUE(asked.has_value());
  upstream_.SendTo(AnswerWith(asked->data, {{"other.test", false, "203.0.113.1", 60}}), asked->from_port);
  ASSERT_TRUE(Await(guest).has_value());
  EXPECT_TRUE(policy_.learned.empty());
  EXPECT_TRUE(policy_.records.empty());
}

}  // namespace
}  // namespace agentvm
