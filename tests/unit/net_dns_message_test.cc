// The DNS wire parsing behind domain filtering: which queries count as one
// plain question, the REFUSED answer, and which addresses an answer gives.
#include "netsetup/dns_message.h"

#include <gtest/gtest.h>

#include "tests/unit/dns_forwarder_fixture.h"

namespace agentvm::net {
namespace {

TEST(DnsMessageTest, AStandardQueryHasOneLowerCasedQuestion) {
  const Bytes query = MakeQuery(0x4242, "Api.Example.TEST");
  auto question = ParseStandardQuery(query);
  ASSERT_TRUE(question.has_value());
  EXPECT_EQ(question->name, "api.example.test");
  EXPECT_EQ(question->type, kDnsTypeA);
  EXPECT_EQ(question->klass, 1);
  EXPECT_EQ(question->end, query.size());
}

TEST(DnsMessageTest, AnythingButOnePlainQuestionIsNotAStandardQuery) {
  Bytes response = AnswerTo(MakeQuery(1, "a.test"));
  EXPECT_FALSE(ParseStandardQuery(response));
  Bytes notify = MakeQuery(1, "a.test");
  notify[2] |= 4 << 3;  // opcode NOTIFY
  EXPECT_FALSE(ParseStandardQuery(notify));
  Bytes two = MakeQuery(1, "a.test");
  two[5] = 2;
  EXPECT_FALSE(ParseStandardQuery(two));
  Bytes zero = MakeQuery(1, "a.test");
  zero[5] = 0;
  EXPECT_FALSE(ParseStandardQuery(zero));
  EXPECT_FALSE(ParseStandardQuery(MakeQuery(1, "a\x01z.test"))->plain) << "a label with a control byte";
  Bytes cut = MakeQuery(1, "a.b");
  cut.resize(cut.size() - 3);
  EXPECT_FALSE(ParseStandardQuery(cut)) << "truncated question";
  Bytes dotted = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a', '.', 'b', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
  EXPECT_FALSE(ParseStandardQuery(dotted)->plain) << "a dot inside a label would fake another name";
  Bytes pointer_loop = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
  EXPECT_FALSE(ParseStandardQuery(pointer_loop));
}

TEST(DnsMessageTest, RefusedKeepsIdRdAndQuestionAndDropsTheRest) {
  Bytes query = MakeQuery(0xbeef, "other.test");
  const std::size_t question_end = query.size();
  query[11] = 1;  // an EDNS record in the additional section
  query.insert(query.end(), {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0});
  auto question = ParseStandardQuery(query);
  ASSERT_TRUE(question.has_value());
  const Bytes reply = ErrorReply(query, *question, kDnsRcodeRefused);
  ASSERT_EQ(reply.size(), question_end);
  EXPECT_EQ(IdOf(reply), 0xbeef);
  EXPECT_EQ(reply[2], 0x81) << "QR, opcode QUERY, RD";
  EXPECT_EQ(reply[3], 0x85) << "RA, REFUSED";
  EXPECT_EQ(Bytes(reply.begin() + 4, reply.begin() + 12), (Bytes{0, 1, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(Bytes(reply.begin() + 12, reply.end()), Bytes(query.begin() + 12, query.begin() + question_end));
}

TEST(DnsMessageTest, AddressesFollowCnamesAndIgnoreOtherNames) {
  const Bytes query = MakeQuery(9, "www.allowed.test");
  const Bytes reply = AnswerWith(query, {{"www.allowed.test", true, "edge.cdn.test", 120},
                                         {"edge.cdn.test", false, "203.0.113.7", 600},
                                         {"edge.cdn.test", false, "203.0.113.8", 30},
                                         {"unrelated.test", false, "198.51.100.99", 600}});
  auto addresses = AnswerAddresses(reply, "www.allowed.test");
  ASSERT_EQ(addresses.size(), 2u);
  EXPECT_EQ(addresses[0].address.ToString(), "203.0.113.7");
  EXPECT_EQ(addresses[0].ttl, 120u) << "the CNAME's shorter ttl bounds the address";
  EXPECT_EQ(addresses[1].address.ToString(), "203.0.113.8");
  EXPECT_EQ(addresses[1].ttl, 30u);
  EXPECT_TRUE(AnswerAddresses(reply, "unasked.test").empty());
}

TEST(DnsMessageTest, ErrorsAndGarbageGiveNoAddresses) {
  const Bytes query = MakeQuery(9, "a.test");
  Bytes nxdomain = AnswerWith(query, {{"a.test", false, "203.0.113.7", 60}});
  nxdomain[3] |= 3;
  EXPECT_TRUE(AnswerAddresses(nxdomain, "a.test").empty());
  EXPECT_TRUE(AnswerAddresses(query, "a.test").empty()) << "not a response";
  Bytes cut = AnswerWith(query, {{"a.test", false, "203.0.113.7", 60}});
  cut.resize(cut.size() - 2);
  EXPECT_TRUE(AnswerAddresses(cut, "a.test").empty());
  Bytes loop = AnswerWith(query, {{"a.test", true, "b.test", 60}, {"b.test", true, "a.test", 60}});
  EXPECT_TRUE(AnswerAddresses(loop, "a.test").empty());
}

}  // namespace
}  // namespace agentvm::net
