#include "common/error.h"

#include <set>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace agentvm {
namespace {

using namespace std::string_literals;

TEST(ErrorCodeTest, EveryCodeHasItsOwnNameAndComesBackFromIt) {
  std::set<std::string_view> names;
  for (ErrorCode code : kAllErrorCodes) {
    EXPECT_TRUE(names.insert(ErrorCodeName(code)).second) << ErrorCodeName(code);
    EXPECT_EQ(ErrorCodeFromName(ErrorCodeName(code)), code);
  }
  EXPECT_EQ(ErrorCodeFromName("not_found"), ErrorCode::kNotFound);
}

TEST(ErrorCodeTest, AnUnknownNameIsInternal) {
  EXPECT_EQ(ErrorCodeFromName(""), ErrorCode::kInternal);
  EXPECT_EQ(ErrorCodeFromName("NOT_FOUND"), ErrorCode::kInternal);
  EXPECT_EQ(ErrorCodeFromName("no_such_code"), ErrorCode::kInternal);
}

TEST(QuoteForErrorTest, IsShortAndPrintable) {
  std::string quoted = QuoteForError("a\nb\0c"s + std::string(4096, 'z'));
  EXPECT_EQ(quoted.find('\n'), std::string::npos);
  EXPECT_NE(quoted.find("\\x0a"), std::string::npos);
  EXPECT_LT(quoted.size(), 120u);
}

}  // namespace
}  // namespace agentvm
