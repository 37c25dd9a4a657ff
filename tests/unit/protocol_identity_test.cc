// The "configure" request on the wire and the checks both ends apply to a
// guest identity before anything is sent or changed.
#include <gtest/gtest.h>

#include <string>

#include "protocol/identity.h"
#include "protocol/messages.h"
#include "guest-images/agent/testing/over_the_wire.h"

namespace agentvm::protocol {
namespace {

GuestIdentity FullIdentity() {
  GuestIdentity identity;
  identity.network = GuestNetwork{"10.101.0.5/16", "10.101.0.1", "10.101.0.1", "02:00:0a:65:00:05"};
  identity.hostname = "vm-7f3a";
  identity.time_unix_ns = 1893456000123456789;
  identity.entropy = std::string("\0\x01\xfe\xff rand", 9);
  return identity;
}

TEST(IdentityTest, ConfigureRoundTrip) {
  Frame frame = OverTheWire(ConfigureFrame(9, FullIdentity()));
  EXPECT_EQ(frame.type, kTypeConfigure);
  EXPECT_EQ(frame.stream, 9u);
  // The wire format docs/guest-protocol.md shows.
  EXPECT_EQ(frame.header["network"]["address"], "10.101.0.5/16");
  EXPECT_EQ(frame.header["network"]["mac"], "02:00:0a:65:00:05");
  EXPECT_EQ(frame.header["time_unix_ns"], 1893456000123456789);
  EXPECT_EQ(frame.payload, FullIdentity().entropy);

  auto parsed = ParseConfigure(frame);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  ASSERT_TRUE(parsed->network.has_value());
  EXPECT_EQ(parsed->network->address, "10.101.0.5/16");
  EXPECT_EQ(parsed->network->gateway, "10.101.0.1");
  EXPECT_EQ(parsed->network->dns, "10.101.0.1");
  EXPECT_EQ(parsed->network->mac, "02:00:0a:65:00:05");
  EXPECT_EQ(parsed->hostname, "vm-7f3a");
  EXPECT_EQ(parsed->time_unix_ns, 1893456000123456789);
  EXPECT_EQ(parsed->entropy, FullIdentity().entropy);
}

TEST(IdentityTest, EverythingIsOptional) {
  Frame frame = OverTheWire(ConfigureFrame(1, GuestIdentity{}));
  EXPECT_FALSE(frame.header.contains("network"));
  EXPECT_FALSE(frame.header.contains("hostname"));
  EXPECT_FALSE(frame.header.contains("time_unix_ns"));
  auto parsed = ParseConfigure(frame);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_FALSE(parsed->network);
  EXPECT_FALSE(parsed->hostname);
  EXPECT_FALSE(parsed->time_unix_ns);
  EXPECT_TRUE(parsed->entropy.empty());

  auto only_dns = ParseConfigure(MakeFrame(kTypeConfigure, 1, {{"network", {{"dns", "1.1.1.1"}}}}));
  ASSERT_TRUE(only_dns.has_value()) << only_dns.error();
  EXPECT_EQ(only_dns->network->dns, "1.1.1.1");
  EXPECT_FALSE(only_dns->network->address);
}

TEST(IdentityTest, WrongTypesAreRefused) {
  auto parse = [](nlohmann::json fields) {
    return ParseConfigure(MakeFrame(kTypeConfigure, 1, std::move(fields)));
  };
  EXPECT_EQ(parse({{"network", "10.0.0.1"}}).error(), "configure: \"network\" is not an object");
  EXPECT_EQ(parse({{"network", {{"address", 5}}}}).error(),
            "configure: \"network.address\" is not a string");
  EXPECT_FALSE(parse({{"hostname", 7}}).has_value());
  EXPECT_FALSE(parse({{"time_unix_ns", -1}}).has_value());
  EXPECT_FALSE(parse({{"time_unix_ns", "now"}}).has_value());
  EXPECT_FALSE(parse({{"time_unix_ns", 18446744073709551615ull}}).has_value());  // > int64
}

TEST(IdentityTest, BadValuesNameTheField) {
  auto parse = [](GuestIdentity identity) { return ParseConfigure(ConfigureFrame(1, identity)); };
  GuestIdentity bad_address;
  bad_address.network = GuestNetwork{"10.101.0.5", {}, {}, {}};
  EXPECT_EQ(parse(bad_address).error(),
            "configure: network.address \"10.101.0.5\": not an IPv4 address with a prefix "
            "length (a.b.c.d/len)");

  GuestIdentity slash;
  slash.hostname = "a/b";
  EXPECT_EQ(parse(slash).error(),
            "configure: hostname \"a/b\": only letters, digits, '-' and '.' allowed");

  GuestIdentity long_name;
  long_name.hostname = std::string(65, 'a');
  EXPECT_NE(parse(long_name).error().find("longer than 64 bytes"), std::string::npos);

  GuestIdentity seconds;
  seconds.time_unix_ns = 1893456000;  // seconds, not nanoseconds
  EXPECT_NE(parse(seconds).error().find("before 2000-01-01"), std::string::npos);

  GuestIdentity flood;
  flood.entropy = std::string(kMaxEntropyBytes + 1, 'x');
  EXPECT_EQ(parse(flood).error(), "configure: entropy of 4097 bytes: more than 4096");
  flood.entropy.pop_back();
  EXPECT_TRUE(parse(flood).has_value());
}

TEST(IdentityTest, Ipv4) {
  for (const char* good : {"0.0.0.0", "10.101.0.1", "255.255.255.255", "1.2.3.4"}) {
    EXPECT_FALSE(CheckIpv4(good)) << good;
  }
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", "a.b.c.d",
                          "1..2.3", "1.2.3.4/8", "-1.2.3.4", "1.2.3.", ".1.2.3"}) {
    EXPECT_TRUE(CheckIpv4(bad)) << bad;
  }
  for (const char* good : {"10.101.0.5/16", "0.0.0.0/0", "1.2.3.4/32"}) {
    EXPECT_FALSE(CheckIpv4Prefix(good)) << good;
  }
  for (const char* bad : {"10.101.0.5", "10.101.0.5/", "10.101.0.5/33", "10.101.0.5/016",
                          "10.101.0.5/1x", "/16", "10.101.0.5/16/1"}) {
    EXPECT_TRUE(CheckIpv4Prefix(bad)) << bad;
  }
}

TEST(IdentityTest, Mac) {
  for (const char* good : {"02:00:0a:65:00:05", "52:54:00:AB:cd:EF"}) {
    EXPECT_FALSE(CheckMac(good)) << good;
  }
  EXPECT_EQ(CheckMac("01:00:5e:00:00:01"), "a multicast address, not a NIC's");
  EXPECT_EQ(CheckMac("00:00:00:00:00:00"), "all zero");
  for (const char* bad : {"", "02:00:0a:65:00", "02-00-0a-65-00-05", "02:00:0a:65:00:0g",
                          "02:00:0a:65:00:05:06", "2:0:a:65:0:5"}) {
    EXPECT_TRUE(CheckMac(bad)) << bad;
  }
}

TEST(IdentityTest, Hostname) {
  for (const char* good : {"a", "vm-1", "VM.example.com", "0abc"}) {
    EXPECT_FALSE(CheckHostname(good)) << good;
  }
  EXPECT_FALSE(CheckHostname(std::string(64, 'x')));
  for (std::string bad : {std::string(), std::string("-vm"), std::string(".vm"),
                          std::string("vm 1"), std::string("vm_1"), std::string("../etc"),
                          std::string("vm\n"), std::string("vm\0x", 4), std::string(65, 'x')}) {
    EXPECT_TRUE(CheckHostname(bad)) << bad;
  }
}

TEST(IdentityTest, HugeBadValuesAreNotEchoedWhole) {
  GuestIdentity identity;
  identity.hostname = std::string(100000, '/');
  auto bad = CheckIdentity(identity);
  ASSERT_TRUE(bad);
  EXPECT_LT(bad->size(), 200u);
}

}  // namespace
}  // namespace agentvm::protocol
