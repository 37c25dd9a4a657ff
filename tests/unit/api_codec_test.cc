#include "supervisor/api/encoding.h"
#include "supervisor/api/json_codec.h"
#include "supervisor/api/request_validation.h"

#include <algorithm>
#include <string>

#include <gtest/gtest.h>

namespace agentvm::api {
namespace {

using namespace std::string_literals;

TEST(ApiEncodingTest, PercentDecode) {
  EXPECT_EQ(PercentDecode("a%20b%2fc+d").value(), "a b/c+d");
  EXPECT_EQ(PercentDecode("%00").value(), "\0"s);
  EXPECT_FALSE(PercentDecode("%"));
  EXPECT_FALSE(PercentDecode("%4"));
  EXPECT_FALSE(PercentDecode("%g0"));
  EXPECT_EQ(PercentDecode(PercentEncode("/tmp/a b?c&d=é")).value(), "/tmp/a b?c&d=é");
  EXPECT_EQ(PercentEncode("/tmp/a b"), "/tmp/a%20b");
}

TEST(ApiEncodingTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii\n"));
  EXPECT_TRUE(IsValidUtf8("é ✓ 😀"));
  EXPECT_TRUE(IsValidUtf8("\0"s));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST(ApiEncodingTest, Base64RoundTrip) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(Base64Decode(Base64Encode(all)).value(), all);
  EXPECT_FALSE(Base64Decode("Zg="));
  EXPECT_FALSE(Base64Decode("Z=g="));
  EXPECT_FALSE(Base64Decode("Zg==Zg=="));
  EXPECT_FALSE(Base64Decode("Z!=="));
}

TEST(ApiCodecTest, VmInfoRoundTrip) {
  VmInfo info;
  info.id = "vm-7";
  info.image = "tiny";
  info.state = VmState::kFailed;
  info.cpus = 2;
  info.memory_mib = 512;
  info.channel = "virtio-serial";
  info.accel = "tcg";
  info.reason = "qemu exited with signal 9";
  info.created_at = 1700000000;
  auto json = VmInfoToJson(info);
  EXPECT_EQ(json["state"], "failed");
  EXPECT_TRUE(json["pid"].is_null());
  auto back = VmInfoFromJson(json);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->id, "vm-7");
  EXPECT_EQ(back->state, VmState::kFailed);
  EXPECT_EQ(back->reason, info.reason);
  EXPECT_EQ(back->created_at, info.created_at);
  EXPECT_FALSE(back->pid);

  auto list = VmListFromJson(VmListToJson({info, info}));
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 2u);
  EXPECT_FALSE(VmInfoFromJson(nlohmann::json{{"id", "x"}, {"state", "dancing"}}));
}

TEST(ApiCodecTest, ErrorsRoundTripThroughTheirBody) {
  Error error{ErrorCode::kConflict, "VM vm-1 is running"};
  std::string body = ErrorBody(error);
  EXPECT_EQ(nlohmann::json::parse(body)["code"], "conflict");
  Error back = ErrorFromResponse(409, body);
  EXPECT_EQ(back.code, ErrorCode::kConflict);
  EXPECT_EQ(back.message, error.message);

  EXPECT_EQ(ErrorFromResponse(404, "<html>").code, ErrorCode::kNotFound);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kTimeout), 504);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kTooLarge), 413);
  // A message that is not UTF-8 still serializes.
  EXPECT_NO_THROW(ErrorBody(Error{ErrorCode::kNotFound, "no such file: /\xff"}));
}

TEST(ApiCodecTest, ExecEventsRoundTripAnyBytes) {
  const std::string text = "hello ✓\n";
  const std::string binary = "\xff\xfe\x00\x80"s;
  auto text_line = ExecOutputEvent(protocol::OutputStream::kStdout, text);
  auto binary_line = ExecOutputEvent(protocol::OutputStream::kStderr, binary);
  ASSERT_EQ(text_line.back(), '\n');
  EXPECT_NE(text_line.find("\"data\""), std::string::npos);
  EXPECT_NE(binary_line.find("\"data_b64\""), std::string::npos);
  EXPECT_EQ(std::count(text_line.begin(), text_line.end(), '\n'), 1) << "one event per line";

  auto text_event = ParseExecEvent(text_line);
  ASSERT_TRUE(text_event);
  EXPECT_EQ(text_event->type, ExecEvent::Type::kStdout);
  EXPECT_EQ(text_event->data, text);
  auto binary_event = ParseExecEvent(binary_line);
  ASSERT_TRUE(binary_event);
  EXPECT_EQ(binary_event->type, ExecEvent::Type::kStderr);
  EXPECT_EQ(binary_event->data, binary);
}

// Output events are written by hand and read without a JSON tree when they
// have the daemon's own shape: both must agree with a real JSON codec.
TEST(ApiCodecTest, OutputEventsAreTheJsonANlohmannDumpWouldWrite) {
  std::string controls;
  for (int c = 0; c < 0x20; ++c) controls.push_back(static_cast<char>(c));
  for (const std::string& text : {std::string(), std::string("plain"), "quote \" backslash \\ slash / del \x7f"s,
                                  controls, std::string("multi\nline\ttabs ✓ \u00e9")}) {
    const std::string line = ExecOutputEvent(protocol::OutputStream::kStdout, text);
    const nlohmann::ordered_json expected{{"type", "stdout"}, {"data", text}};
    EXPECT_EQ(line, expected.dump() + "\n");
    auto event = ParseExecEvent(line.substr(0, line.size() - 1));
    ASSERT_TRUE(event);
    EXPECT_EQ(event->data, text);
  }
  std::string binary;
  for (int i = 0; i < 3000; ++i) binary.push_back(static_cast<char>(i * 7));
  const std::string line = ExecOutputEvent(protocol::OutputStream::kStderr, binary);
  EXPECT_EQ(line, (nlohmann::ordered_json{{"type", "stderr"}, {"data_b64", Base64Encode(binary)}}.dump() + "\n"));
  auto event = ParseExecEvent(line);
  ASSERT_TRUE(event);
  EXPECT_EQ(event->type, ExecEvent::Type::kStderr);
  EXPECT_EQ(event->data, binary);
  // Other shapes of the same event still parse: the fast path only skips work.
  auto spaced = ParseExecEvent(R"({ "data_b64": "aGk=", "type": "stdout" })");
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->data, "hi");
  auto escaped = ParseExecEvent(R"({"type":"stdout","data":"a\u0041\n"})");
  ASSERT_TRUE(escaped);
  EXPECT_EQ(escaped->data, "aA\n");
  auto wide = ParseExecEvent(R"({"type":"stdout","data":"\u00e9 \ud83d\ude00 \/"})");
  ASSERT_TRUE(wide);
  EXPECT_EQ(wide->data, "\u00e9 \U0001F600 /");
  EXPECT_FALSE(ParseExecEvent("{\"type\":\"stdout\",\"data\":\"raw \" quote\"}"));
  EXPECT_FALSE(ParseExecEvent(R"({"type":"stdout","data":"bad \q escape"})"));
  EXPECT_FALSE(ParseExecEvent(R"({"type":"stdout","data_b64":"a!=="})"));
}

TEST(ApiCodecTest, ExitAndErrorEvents) {
  protocol::ExecResult timed_out;
  timed_out.signal = 9;
  timed_out.timed_out = true;
  auto line = ExecExitEvent(timed_out);
  auto json = nlohmann::json::parse(line);
  EXPECT_EQ(json["type"], "exit");
  EXPECT_TRUE(json["exit_code"].is_null());
  EXPECT_EQ(json["signal"], 9);
  EXPECT_EQ(json["status"], 124);
  auto event = ParseExecEvent(line);
  ASSERT_TRUE(event);
  EXPECT_EQ(event->result.ShellStatus(), 124);

  auto error = ParseExecEvent(ExecErrorEvent(Error{ErrorCode::kUnavailable, "guest went away"}));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->type, ExecEvent::Type::kError);
  EXPECT_EQ(error->error.code, ErrorCode::kUnavailable);
  EXPECT_EQ(error->error.message, "guest went away");

  EXPECT_FALSE(ParseExecEvent("not json"));
  EXPECT_FALSE(ParseExecEvent(R"({"type":"dance"})"));
}

TEST(ApiCodecTest, TimeoutSecondsRoundUpToMillisecondsAndBack) {
  EXPECT_EQ(TimeoutFromSeconds(1.5), std::chrono::milliseconds(1500));
  EXPECT_EQ(TimeoutFromSeconds(0.0001), std::chrono::milliseconds(1)) << "never shorter than asked";
  EXPECT_EQ(TimeoutFromSeconds(0), std::chrono::milliseconds(0));
  EXPECT_DOUBLE_EQ(TimeoutToSeconds(std::chrono::milliseconds(2500)), 2.5);
  // What a client sends in ms comes back the same, however binary rounds it.
  for (std::int64_t ms : {1, 7, 999, 2007, 2011, 86'400'123, 604'800'000}) {
    EXPECT_EQ(TimeoutFromSeconds(TimeoutToSeconds(std::chrono::milliseconds(ms))), std::chrono::milliseconds(ms))
        << ms;
  }
}

TEST(ApiCodecTest, RequestBodiesParseBackOnTheServerSide) {
  protocol::ExecRequest request;
  request.argv = {"cat"};
  request.stdin_data = "\xff\x01"s;
  request.timeout = std::chrono::milliseconds(1500);
  request.env = {{"HOME", "/root"}};
  request.cwd = "/tmp";
  std::string body = ExecRequestToJson(request);
  EXPECT_NE(body.find("stdin_b64"), std::string::npos);
  auto parsed = ParseExecBody(body);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->argv, request.argv);
  EXPECT_EQ(parsed->stdin_data, request.stdin_data);
  EXPECT_EQ(parsed->timeout, request.timeout);
  EXPECT_EQ(parsed->env, request.env);
  EXPECT_EQ(parsed->cwd, request.cwd);

  CreateVmRequest create{"tiny", 2, 512};
  auto created = ParseCreateVmBody(CreateVmRequestToJson(create));
  ASSERT_TRUE(created);
  EXPECT_EQ(created->cpus, 2);
  EXPECT_EQ(created->memory_mib, 512);
}

TEST(ApiCodecTest, VmNetworkRoundTrip) {
  VmInfo info;
  info.id = "vm-2";
  info.state = VmState::kRunning;
  info.network.mode = NetworkMode::kNatFiltered;
  info.network.address = "10.101.0.2";
  info.network.gateway = "10.101.0.1";
  info.network.dns = "10.101.0.1";
  info.network.mac = "52:54:00:12:34:56";
  info.network.tap = "avm-vm-2";
  info.network.bridge = "agentvm0";
  info.network.allow_tcp_ports = {8080, 5432};
  info.network.allow_cidrs = {"203.0.113.0/24"};
  info.network.bandwidth_bytes_per_sec = 1000000;
  info.network.dropped_connections = 3;

  auto json = VmInfoToJson(info);
  const auto& network = json["network"];
  EXPECT_EQ(network["mode"], "nat-filtered");
  EXPECT_EQ(network["address"], "10.101.0.2");
  EXPECT_EQ(network["allow_tcp_ports"], nlohmann::json::array({8080, 5432}));
  EXPECT_EQ(network["bandwidth_bytes_per_sec"], 1000000);
  EXPECT_EQ(network["dropped_connections"], 3);
  // The documented order, so `agentvm inspect` reads the same every time.
  std::vector<std::string> keys;
  for (const auto& [key, value] : network.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"mode", "address", "gateway", "dns", "mac", "tap",
                                            "bridge", "allow_tcp_ports", "allow_cidrs", "allow_domains", "presets",
                                            "preset_domains", "bandwidth_bytes_per_sec", "dropped_connections", "dns_queries"}));

  auto back = VmInfoFromJson(nlohmann::json::parse(DumpJson(json)));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->network.mode, NetworkMode::kNatFiltered);
  EXPECT_EQ(back->network.address, "10.101.0.2");
  EXPECT_EQ(back->network.gateway, "10.101.0.1");
  EXPECT_EQ(back->network.dns, "10.101.0.1");
  EXPECT_EQ(back->network.mac, "52:54:00:12:34:56");
  EXPECT_EQ(back->network.tap, "avm-vm-2");
  EXPECT_EQ(back->network.bridge, "agentvm0");
  EXPECT_EQ(back->network.allow_tcp_ports, info.network.allow_tcp_ports);
  EXPECT_EQ(back->network.allow_cidrs, info.network.allow_cidrs);
  EXPECT_EQ(back->network.bandwidth_bytes_per_sec, 1000000u);
  EXPECT_EQ(back->network.dropped_connections, 3u);
}

TEST(ApiCodecTest, IsolatedVmHasEmptyStringsAndNullBandwidth) {
  VmInfo info;
  info.id = "vm-3";
  info.network.mode = NetworkMode::kIsolated;
  auto network = VmInfoToJson(info)["network"];
  EXPECT_EQ(network["mode"], "isolated");
  EXPECT_EQ(network["address"], "");
  EXPECT_EQ(network["tap"], "");
  EXPECT_TRUE(network["allow_tcp_ports"].is_array());
  EXPECT_TRUE(network["allow_tcp_ports"].empty());
  EXPECT_TRUE(network["bandwidth_bytes_per_sec"].is_null());
  EXPECT_EQ(network["dropped_connections"], 0);
  auto back = VmInfoFromJson(VmInfoToJson(info));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->network.mode, NetworkMode::kIsolated);
  EXPECT_FALSE(back->network.bandwidth_bytes_per_sec);
}

TEST(ApiCodecTest, VmNetworkDecodingToleratesOldAndRefusesNonsense) {
  // A daemon from before networking sends no "network".
  auto old = VmInfoFromJson(nlohmann::json{{"id", "x"}, {"state", "running"}});
  ASSERT_TRUE(old);
  EXPECT_EQ(old->network.mode, NetworkMode::kIsolated);
  EXPECT_EQ(old->network.address, "");

  auto with = [](nlohmann::json network) {
    return VmInfoFromJson(nlohmann::json{{"id", "x"}, {"state", "running"}, {"network", network}});
  };
  EXPECT_FALSE(with("nat-filtered"));
  EXPECT_FALSE(with(nlohmann::json::object()));
  EXPECT_FALSE(with({{"mode", "wormhole"}}));
  // Junk inside a known mode is dropped field by field.
  auto junk = with({{"mode", "nat-filtered"},
                    {"address", 7},
                    {"allow_tcp_ports", {80, -1, 70000, "x", 443}},
                    {"allow_cidrs", {"10.0.0.0/8", 5}},
                    {"bandwidth_bytes_per_sec", -5},
                    {"dropped_connections", "many"}});
  ASSERT_TRUE(junk);
  EXPECT_EQ(junk->network.address, "");
  EXPECT_EQ(junk->network.allow_tcp_ports, (std::vector<std::uint16_t>{80, 443}));
  EXPECT_EQ(junk->network.allow_cidrs, (std::vector<std::string>{"10.0.0.0/8"}));
  EXPECT_FALSE(junk->network.bandwidth_bytes_per_sec);
  EXPECT_EQ(junk->network.dropped_connections, 0u);
}

TEST(ApiCodecTest, CreateRequestSendsNetworkOnlyWhenSet) {
  CreateVmRequest plain;
  EXPECT_FALSE(nlohmann::json::parse(CreateVmRequestToJson(plain)).contains("network"));

  CreateVmRequest ports_only;
  ports_only.network.allow_tcp_ports = {8080};
  auto body = nlohmann::json::parse(CreateVmRequestToJson(ports_only));
  EXPECT_EQ(body["network"], nlohmann::json::parse(R"({"allow_tcp_ports":[8080]})"))
      << "no mode: the daemon's default applies";

  CreateVmRequest full;
  full.network.mode = NetworkMode::kNatFiltered;
  full.network.allow_tcp_ports = {8080, 5432};
  full.network.allow_cidrs = {"203.0.113.0/24"};
  full.network.bandwidth_bytes_per_sec = 2000000;
  auto parsed = ParseCreateVmBody(CreateVmRequestToJson(full));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->network.mode, NetworkMode::kNatFiltered);
  EXPECT_EQ(parsed->network.allow_tcp_ports, full.network.allow_tcp_ports);
  EXPECT_EQ(parsed->network.allow_cidrs, full.network.allow_cidrs);
  EXPECT_EQ(parsed->network.bandwidth_bytes_per_sec, 2000000u);

  CreateVmRequest bridge;
  bridge.network.mode = NetworkMode::kBridge;
  bridge.network.bridge = "br-lab";
  auto bridged = ParseCreateVmBody(CreateVmRequestToJson(bridge));
  ASSERT_TRUE(bridged) << bridged.error().message;
  EXPECT_EQ(bridged->network.bridge, "br-lab");
}

TEST(ApiCodecTest, VmBootFieldsRoundTripAndComeBeforeTheNetwork) {
  VmInfo info;
  info.id = "vm-9";
  info.state = VmState::kRunning;
  info.boot = "cold";
  info.restore_error = "state file checksum mismatch";
  info.pool = "tiny-1c-256m-isolated";
  info.guest_channel_error = "the guest agent broke the protocol 16 times";
  auto json = VmInfoToJson(info);
  std::vector<std::string> keys;
  for (const auto& [key, value] : json.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"id", "image", "state", "cpus", "memory_mib", "pid",
                                            "channel", "accel", "reason", "created_at", "boot",
                                            "restore_error", "pool", "guest_channel_error", "network"}));
  auto back = VmInfoFromJson(nlohmann::json::parse(DumpJson(json)));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->boot, "cold");
  EXPECT_EQ(back->restore_error, info.restore_error);
  EXPECT_EQ(back->pool, info.pool);
  EXPECT_EQ(back->guest_channel_error, info.guest_channel_error);

  // Empty means "none", sent as "" like reason; an older daemon sends nothing.
  VmInfo plain;
  plain.id = "vm-1";
  EXPECT_EQ(VmInfoToJson(plain)["restore_error"], "");
  EXPECT_EQ(VmInfoToJson(plain)["pool"], "");
  auto old = VmInfoFromJson(nlohmann::json{{"id", "vm-1"}, {"state", "running"}});
  ASSERT_TRUE(old);
  EXPECT_EQ(old->boot, "");
  EXPECT_EQ(old->pool, "");
}

TEST(ApiCodecTest, CreateRequestSendsBootOnlyWhenNotAuto) {
  CreateVmRequest plain;
  EXPECT_FALSE(nlohmann::json::parse(CreateVmRequestToJson(plain)).contains("boot"));
  for (BootMode mode : {BootMode::kRestore, BootMode::kCold}) {
    CreateVmRequest request;
    request.boot = mode;
    auto body = nlohmann::json::parse(CreateVmRequestToJson(request));
    EXPECT_EQ(body["boot"], BootModeName(mode));
    auto parsed = ParseCreateVmBody(CreateVmRequestToJson(request));
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->boot, mode);
  }
}

TEST(ApiCodecTest, SnapshotsRoundTrip) {
  SnapshotInfo info{"before-upgrade", 100663296, 1732400000};
  auto json = SnapshotInfoToJson(info);
  EXPECT_EQ(DumpJson(json),
            R"({"name":"before-upgrade","vm_state_bytes":100663296,"created_at":1732400000})");
  auto list = SnapshotListFromJson(nlohmann::json::parse(DumpJson(SnapshotListToJson({info, info}))));
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].name, "before-upgrade");
  EXPECT_EQ((*list)[1].vm_state_bytes, 100663296u);
  EXPECT_EQ((*list)[1].created_at, 1732400000);

  EXPECT_EQ(DumpJson(SnapshotListToJson({})), R"({"snapshots":[]})");
  EXPECT_FALSE(SnapshotListFromJson(nlohmann::json::parse(R"({"snapshots":{}})")));
  EXPECT_FALSE(SnapshotListFromJson(nlohmann::json::parse(R"({"snapshots":[{"size":1}]})")));
  EXPECT_FALSE(SnapshotInfoFromJson(nlohmann::json::parse(R"("s1")")));
  EXPECT_EQ(nlohmann::json::parse(SaveSnapshotRequestToJson("s1")), nlohmann::json({{"name", "s1"}}));
  EXPECT_EQ(ParseSaveSnapshotBody(SaveSnapshotRequestToJson("s1")).value(), "s1");
}

TEST(ApiCodecTest, PoolsRoundTrip) {
  PoolInfo pool;
  pool.name = "tiny-1c-256m-isolated";
  pool.image = "tiny";
  pool.cpus = 1;
  pool.memory_mib = 256;
  pool.network = NetworkMode::kIsolated;
  pool.min_ready = 3;
  pool.max_total = 6;
  pool.fill_parallelism = 2;
  pool.ready = 2;
  pool.starting = 1;
  pool.in_use = 3;
  pool.taken = 40;
  pool.replaced = 2;
  pool.failed = 1;
  pool.golden_ready = true;
  pool.last_error = "clone vm-x: guest agent did not answer";
  auto json = PoolInfoToJson(pool);
  std::vector<std::string> keys;
  for (const auto& [key, value] : json.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"name", "image", "cpus", "memory_mib", "network",
                                            "min_ready", "max_total", "fill_parallelism", "ready",
                                            "starting", "in_use",
                                            "taken", "replaced", "failed", "golden_ready",
                                            "last_error"}));
  EXPECT_EQ(json["network"], "isolated");

  auto list = PoolListFromJson(nlohmann::json::parse(DumpJson(PoolListToJson({pool}))));
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 1u);
  const PoolInfo& back = list->front();
  EXPECT_EQ(back.name, pool.name);
  EXPECT_EQ(back.network, NetworkMode::kIsolated);
  EXPECT_EQ(back.min_ready, 3);
  EXPECT_EQ(back.max_total, 6);
  EXPECT_EQ(back.fill_parallelism, 2);
  EXPECT_EQ(back.ready, 2);
  EXPECT_EQ(back.starting, 1);
  EXPECT_EQ(back.in_use, 3);
  EXPECT_EQ(back.taken, 40u);
  EXPECT_EQ(back.replaced, 2u);
  EXPECT_EQ(back.failed, 1u);
  EXPECT_TRUE(back.golden_ready);
  EXPECT_EQ(back.last_error, pool.last_error);

  EXPECT_EQ(DumpJson(PoolListToJson({})), R"({"pools":[]})");
  EXPECT_FALSE(PoolListFromJson(nlohmann::json::parse(R"([])")));
  EXPECT_FALSE(PoolListFromJson(nlohmann::json::parse(R"({"pools":[{"name":"p","network":"open"}]})")));
}

}  // namespace
}  // namespace agentvm::api
