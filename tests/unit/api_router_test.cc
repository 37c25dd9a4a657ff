#include "supervisor/api/router.h"

#include <string>

#include <gtest/gtest.h>

namespace agentvm::api {
namespace {

struct RouteCase {
  std::string method;
  std::string target;
  Route route;
  std::string vm_id;
};

TEST(ApiRouterTest, MatchesEveryEndpoint) {
  const RouteCase cases[] = {
      {"POST", "/v1/vms", Route::kCreateVm, ""},
      {"GET", "/v1/vms", Route::kListVms, ""},
      {"GET", "/v1/vms/vm-1", Route::kGetVm, "vm-1"},
      {"DELETE", "/v1/vms/vm-1?force=true", Route::kDeleteVm, "vm-1"},
      {"POST", "/v1/vms/vm-1/stop", Route::kStopVm, "vm-1"},
      {"POST", "/v1/vms/vm-1/exec", Route::kExec, "vm-1"},
      {"GET", "/v1/vms/vm-1/exec", Route::kExecInteractive, "vm-1"},
      {"PUT", "/v1/vms/vm-1/files?path=/tmp/x", Route::kPutFile, "vm-1"},
      {"GET", "/v1/vms/vm-1/files?path=/tmp/x", Route::kGetFile, "vm-1"},
      {"GET", "/v1/vms/vm-1/console", Route::kConsole, "vm-1"},
      {"POST", "/v1/vms/vm-1/release", Route::kReleaseVm, "vm-1"},
      {"GET", "/v1/pools", Route::kListPools, ""},
      {"GET", "/v1/presets", Route::kListPresets, ""},
      {"GET", "/v1/vms/vm-1/egress?after=3", Route::kEgressLog, "vm-1"},
      {"POST", "/v1/vms/vm-1/snapshots", Route::kSaveSnapshot, "vm-1"},
      {"GET", "/v1/vms/vm-1/snapshots", Route::kListSnapshots, "vm-1"},
      {"DELETE", "/v1/vms/vm-1/snapshots/before-test", Route::kDeleteSnapshot, "vm-1"},
      {"POST", "/v1/vms/vm-1/snapshots/before-test/restore", Route::kRestoreSnapshot, "vm-1"},
      // Percent-encoded ids are decoded before matching.
      {"GET", "/v1/vms/vm%2D1", Route::kGetVm, "vm-1"},
  };
  for (const auto& c : cases) {
    auto match = MatchRoute(c.method, c.target);
    ASSERT_TRUE(match) << c.method << " " << c.target << ": " << match.error().error.message;
    EXPECT_EQ(match->route, c.route) << c.target;
    EXPECT_EQ(match->vm_id, c.vm_id) << c.target;
  }
}

TEST(ApiRouterTest, SnapshotRoutesCarryTheDecodedName) {
  auto restore = MatchRoute("POST", "/v1/vms/vm-1/snapshots/Before_v2.1/restore");
  ASSERT_TRUE(restore);
  EXPECT_EQ(restore->vm_id, "vm-1");
  EXPECT_EQ(restore->snapshot, "Before_v2.1");

  auto encoded = MatchRoute("DELETE", "/v1/vms/vm-1/snapshots/a%2Db");
  ASSERT_TRUE(encoded);
  EXPECT_EQ(encoded->snapshot, "a-b");

  auto longest = MatchRoute("DELETE", "/v1/vms/vm-1/snapshots/" + std::string(64, 's'));
  ASSERT_TRUE(longest);
  EXPECT_EQ(longest->snapshot, std::string(64, 's'));

  EXPECT_EQ(MatchRoute("GET", "/v1/vms/vm-1/snapshots")->snapshot, "");
}

TEST(ApiRouterTest, DecodesQueryParameters) {
  auto match = MatchRoute("PUT", "/v1/vms/vm-1/files?path=/tmp/a%20b%2Bc&mode=0600");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->query.at("path"), "/tmp/a b+c");
  EXPECT_EQ(match->query.at("mode"), "0600");
}

struct ErrorCase {
  std::string method;
  std::string target;
  int status;
};

TEST(ApiRouterTest, RefusesUnknownRoutesWrongMethodsAndHostileIds) {
  const std::string junk(4096, 'A');
  const ErrorCase cases[] = {
      {"GET", "/", 404},
      {"GET", "/v2/vms", 404},
      {"GET", "/v1/vm", 404},
      {"GET", "/v1/vms/vm-1/reboot", 404},
      {"GET", "/v1/vms/vm-1/exec/extra", 404},
      {"GET", "/v1/vms/vm-1/", 404},
      {"PUT", "/v1/vms", 405},
      {"PUT", "/v1/vms/vm-1/exec", 405},
      {"POST", "/v1/vms/vm-1", 405},
      {"DELETE", "/v1/vms/vm-1/files?path=/x", 405},
      // Hostile ids: refused as ids, with a 400, however they are spelled.
      {"GET", "/v1/vms/..", 400},
      {"GET", "/v1/vms/%2e%2e", 400},
      {"GET", "/v1/vms/%2E%2E/exec", 400},
      {"GET", "/v1/vms/../../etc/passwd", 400},
      {"GET", "/v1/vms/..%2f..%2fetc%2fpasswd", 400},
      {"GET", "/v1/vms/vm-1;rm%20-rf%20%2F", 400},
      {"GET", "/v1/vms/vm-1$(reboot)", 400},
      {"GET", "/v1/vms/vm-1%00", 400},
      {"GET", "/v1/vms/VM-1", 400},
      {"GET", "/v1/vms/-vm", 400},
      {"GET", "/v1/vms/" + junk, 400},
      {"GET", "/v1/vms/%zz", 400},
      {"GET", "/v1/vms/vm-1/files?path=%", 400},
      {"GET", "/v1/vms?a=1&a=2", 400},
      {"GET", "http://host/v1/vms", 400},
      {"GET", "/v1/vms/" + std::string(20000, 'a'), 400},
      // The new routes: unknown shapes, wrong methods.
      {"GET", "/v1/pools/tiny", 404},
      {"GET", "/v1/pools/", 404},
      {"GET", "/v1/vms/vm-1/release/now", 404},
      {"POST", "/v1/vms/vm-1/snapshots/s1/load", 404},
      {"POST", "/v1/vms/vm-1/snapshots/s1/restore/x", 404},
      {"POST", "/v1/pools", 405},
      {"GET", "/v1/vms/vm-1/release", 405},
      {"DELETE", "/v1/vms/vm-1/release", 405},
      {"PUT", "/v1/vms/vm-1/snapshots", 405},
      {"DELETE", "/v1/vms/vm-1/snapshots", 405},
      {"GET", "/v1/vms/vm-1/snapshots/s1", 405},
      {"POST", "/v1/vms/vm-1/snapshots/s1", 405},
      {"GET", "/v1/vms/vm-1/snapshots/s1/restore", 405},
      // Hostile ids on the new routes.
      {"POST", "/v1/vms/../release", 400},
      {"GET", "/v1/vms/%2e%2e/snapshots", 400},
      {"POST", "/v1/vms/..%2F..%2Fetc/snapshots/s1/restore", 400},
      // Hostile snapshot names: refused as names, whatever comes after them.
      {"DELETE", "/v1/vms/vm-1/snapshots/..", 400},
      {"DELETE", "/v1/vms/vm-1/snapshots/%2e%2e", 400},
      {"POST", "/v1/vms/vm-1/snapshots/%2E%2E/restore", 400},
      {"DELETE", "/v1/vms/vm-1/snapshots/a%2Fb", 400},
      {"DELETE", "/v1/vms/vm-1/snapshots/..%2F..%2Fetc%2Fpasswd", 400},
      {"POST", "/v1/vms/vm-1/snapshots//restore", 400},
      {"DELETE", "/v1/vms/vm-1/snapshots/", 400},
      {"DELETE", "/v1/vms/vm-1/snapshots/" + std::string(65, 's'), 400},
      {"DELETE", "/v1/vms/vm-1/snapshots/.hidden", 400},
      {"DELETE", "/v1/vms/vm-1/snapshots/-rf", 400},
      {"DELETE", "/v1/vms/vm-1/snapshots/a%20b", 400},
      {"DELETE", "/v1/vms/vm-1/snapshots/a%00b", 400},
      {"DELETE", "/v1/vms/vm-1/snapshots/a;reboot", 400},
      {"GET", "/v1/vms/vm-1/snapshots/../../etc/passwd", 400},
      {"GET", "/v1/vms/vm-1/snapshots/" + junk, 400},
      {"GET", "/v1/vms/vm-1/snapshots/s1/%zz", 400},
  };
  for (const auto& c : cases) {
    auto match = MatchRoute(c.method, c.target);
    ASSERT_FALSE(match) << c.method << " " << c.target.substr(0, 80);
    EXPECT_EQ(match.error().http_status, c.status) << c.method << " " << c.target.substr(0, 80);
    EXPECT_FALSE(match.error().error.message.empty());
    EXPECT_LT(match.error().error.message.size(), 300u) << "error echoes junk back";
  }
}

TEST(ApiRouterTest, MethodNotAllowedListsTheAllowedMethods) {
  auto match = MatchRoute("PATCH", "/v1/vms/vm-1");
  ASSERT_FALSE(match);
  EXPECT_EQ(match.error().http_status, 405);
  EXPECT_EQ(match.error().allow, "GET, DELETE");

  const std::pair<std::string, std::string> cases[] = {
      {"/v1/pools", "GET"},
      {"/v1/vms/vm-1/release", "POST"},
      {"/v1/vms/vm-1/snapshots", "GET, POST"},
      {"/v1/vms/vm-1/snapshots/s1", "DELETE"},
      {"/v1/vms/vm-1/snapshots/s1/restore", "POST"},
  };
  for (const auto& [target, allow] : cases) {
    auto refused = MatchRoute("PATCH", target);
    ASSERT_FALSE(refused) << target;
    EXPECT_EQ(refused.error().http_status, 405) << target;
    EXPECT_EQ(refused.error().allow, allow) << target;
  }
}

TEST(ApiRouterTest, HostileSnapshotNamesAreNamedInTheError) {
  auto refused = MatchRoute("DELETE", "/v1/vms/vm-1/snapshots/%2e%2e");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().error.message.find("invalid snapshot name \"..\""), std::string::npos)
      << refused.error().error.message;
  auto bad_id = MatchRoute("DELETE", "/v1/vms/VM/snapshots/%2e%2e");
  ASSERT_FALSE(bad_id);
  EXPECT_NE(bad_id.error().error.message.find("invalid VM id"), std::string::npos)
      << "the id is checked first";
}

TEST(ApiRouterTest, ParseQueryHandlesEdgeCases) {
  auto empty = ParseQuery("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());

  auto flag = ParseQuery("force&&x=");
  ASSERT_TRUE(flag);
  EXPECT_EQ(flag->at("force"), "");
  EXPECT_EQ(flag->at("x"), "");

  EXPECT_FALSE(ParseQuery("=1"));
  EXPECT_FALSE(ParseQuery("a=%4"));
  EXPECT_FALSE(ParseQuery("a=1&a=1"));
}

}  // namespace
}  // namespace agentvm::api
