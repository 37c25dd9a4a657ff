// agentvm events: its flags (checked with the API's own query rules before
// anything is sent), the query they make, and the line printed per event.
#include <gtest/gtest.h>

#include "cli/cli_args.h"
#include "cli/cli_format.h"

namespace agentvm::cli {
namespace {

std::expected<CliCommand, UsageError> ParseArgs(std::vector<std::string> args) {
  return ParseCli(args, "", [](const std::string&) -> std::optional<std::string> { return std::nullopt; });
}

TEST(CliEventsTest, FlagsMakeTheQuery) {
  auto plain = ParseArgs({"events"});
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->kind, CommandKind::kEvents);
  using Query = std::map<std::string, std::string>;
  // Without -f: what the ring holds, then the end.
  EXPECT_EQ(EventsQueryParams(plain->events, plain->follow), (Query{{"follow", "false"}, {"since", "0"}}));

  auto follow = ParseArgs({"events", "-f", "--vm", "vm-3f2a9c1b7d4e", "--type", "started", "--type=exec_finished",
                           "--since", "41", "--json"});
  ASSERT_TRUE(follow) << follow.error().message;
  EXPECT_TRUE(follow->json);
  EXPECT_EQ(EventsQueryParams(follow->events, follow->follow), (Query{{"follow", "true"},
                                                     {"since", "41"},
                                                     {"vm", "vm-3f2a9c1b7d4e"},
                                                     {"type", "started,exec_finished"}}));
  auto long_follow = ParseArgs({"events", "--follow"});
  ASSERT_TRUE(long_follow);
  EXPECT_TRUE(long_follow->follow);
}

TEST(CliEventsTest, BadFlagsAreUsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"events", "vm-1"}, "unexpected argument \"vm-1\""},
      {{"events", "--since", "-1"}, "--since expects an event's seq"},
      {{"events", "--since", "7x"}, "--since expects an event's seq"},
      {{"events", "--type", "Started"}, "type must be event types"},
      {{"events", "--type", ""}, "type must be event types"},
      {{"events", "--vm", "../x"}, "VM id"},
      {{"events", "--vm"}, "option --vm needs a value"},
      {{"events", "--force"}, "unknown option --force"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseArgs(c.args);
    ASSERT_FALSE(parsed) << c.args.back();
    EXPECT_NE(parsed.error().message.find(c.message), std::string::npos) << parsed.error().message;
    EXPECT_EQ(parsed.error().command, "events");
  }
}

TEST(CliEventsTest, AnEventIsOneLineOfTimeVmTypeAndDetails) {
  auto line = FormatEventLine(
      R"({"seq":9,"time":"2026-12-04T21:22:41.530Z","type":"exec_finished","vm":"vm-3f2a9c1b7d4e","exec":8,"exit_code":0,"ms":11529})");
  ASSERT_TRUE(line) << line.error().message;
  EXPECT_EQ(*line, "2026-12-04T21:22:41.530Z  vm-3f2a9c1b7d4e  exec_finished      exec=8 exit_code=0 ms=11529\n");

  auto marker = FormatEventLine(R"({"time":"2026-12-04T21:22:41.530Z","type":"dropped","count":3})");
  ASSERT_TRUE(marker);
  EXPECT_EQ(*marker, "2026-12-04T21:22:41.530Z  -                dropped            count=3\n");
}

TEST(CliEventsTest, OddValuesAreQuotedSoTheyCannotDriveTheTerminal) {
  auto line = FormatEventLine(
      R"({"time":"t","type":"failed","vm":"vm-1","reason":"qemu exited: \u001b[2Jgone","command":"a=b","ports":[22,443],"none":null})");
  ASSERT_TRUE(line) << line.error().message;
  EXPECT_EQ(line->find('\x1b'), std::string::npos);
  EXPECT_NE(line->find(R"(reason="qemu exited: \u001b[2Jgone")"), std::string::npos) << *line;
  EXPECT_NE(line->find(R"(command="a=b")"), std::string::npos) << *line;
  EXPECT_NE(line->find("ports=[22,443] none=null"), std::string::npos) << *line;
  EXPECT_FALSE(FormatEventLine("[1,2]"));
  EXPECT_FALSE(FormatEventLine("{not json"));
}

}  // namespace
}  // namespace agentvm::cli
