#include "netsetup/nft_batch.h"

#include <gtest/gtest.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <vector>

namespace agentvm::net {
namespace {

NftMessage TableMessage(std::uint16_t type, const char* name) {
  nftnl_table* table = nftnl_table_alloc();
  nftnl_table_set_u32(table, NFTNL_TABLE_FAMILY, NFPROTO_INET);
  nftnl_table_set_str(table, NFTNL_TABLE_NAME, name);
  NftMessage message = MakeNftMessage(type, NFPROTO_INET, NLM_F_CREATE, std::string("table ") + name,
                                      [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, table); });
  nftnl_table_free(table);
  return message;
}

std::vector<const nlmsghdr*> Split(const std::vector<std::uint8_t>& bytes) {
  std::vector<const nlmsghdr*> out;
  int len = static_cast<int>(bytes.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(bytes.data()); NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
    out.push_back(nlh);
  }
  EXPECT_EQ(len, 0) << "trailing bytes";
  return out;
}

TEST(NftBatchTest, MessagesCarryTheirTypeAndFamily) {
  NftMessage message = TableMessage(NFT_MSG_NEWTABLE, "agentvm");
  EXPECT_EQ(message.type, NFT_MSG_NEWTABLE);
  EXPECT_EQ(message.family, NFPROTO_INET);
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(message.bytes.data());
  EXPECT_EQ(nlh->nlmsg_type, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE);
  EXPECT_EQ(nlh->nlmsg_len, message.bytes.size());

  nftnl_table* parsed = nftnl_table_alloc();
  ASSERT_EQ(nftnl_table_nlmsg_parse(nlh, parsed), 0);
  EXPECT_STREQ(nftnl_table_get_str(parsed, NFTNL_TABLE_NAME), "agentvm");
  nftnl_table_free(parsed);
}

TEST(NftBatchTest, EncodesOneTransactionWithAnAckPerMessage) {
  NftBatch batch;
  batch.Add(TableMessage(NFT_MSG_NEWTABLE, "a"));
  batch.Add(TableMessage(NFT_MSG_DELTABLE, "a"));
  batch.Add(TableMessage(NFT_MSG_NEWTABLE, "b"));
  const std::vector<std::uint8_t> bytes = batch.Encode(100);
  auto messages = Split(bytes);
  ASSERT_EQ(messages.size(), 5u);
  EXPECT_EQ(messages.front()->nlmsg_type, NFNL_MSG_BATCH_BEGIN);
  EXPECT_EQ(messages.front()->nlmsg_seq, 100u);
  for (std::size_t i = 1; i <= 3; ++i) {
    EXPECT_EQ(messages[i]->nlmsg_seq, 100u + i);
    EXPECT_TRUE(messages[i]->nlmsg_flags & NLM_F_ACK);
    EXPECT_TRUE(messages[i]->nlmsg_flags & NLM_F_REQUEST);
  }
  EXPECT_EQ(messages[2]->nlmsg_type & 0xff, NFT_MSG_DELTABLE);
  EXPECT_EQ(messages.back()->nlmsg_type, NFNL_MSG_BATCH_END);
  EXPECT_EQ(messages.back()->nlmsg_seq, 104u);
  // Encoding leaves the batch itself alone.
  EXPECT_EQ(reinterpret_cast<const nlmsghdr*>(batch.messages()[0].bytes.data())->nlmsg_seq, 0u);
}

}  // namespace
}  // namespace agentvm::net
