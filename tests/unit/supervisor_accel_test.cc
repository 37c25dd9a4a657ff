#include "supervisor/accel.h"

#include <gtest/gtest.h>

namespace agentvm {
namespace {

constexpr HostFacts kKvmHost{.kvm_usable = true, .cpu_virtualization = true, .vhost_vsock = true};
// Our CI machines: /dev/kvm opens but the CPU shows no vmx/svm (a PVM host).
constexpr HostFacts kPvmHost{.kvm_usable = true, .cpu_virtualization = false, .vhost_vsock = false};
constexpr HostFacts kBareHost{};

TEST(AccelTest, AutoPicksKvmOnlyWhenDeviceAndCpuFlagsAgree) {
  EXPECT_EQ(ChooseAccel("auto", kKvmHost)->accel, Accel::kKvm);
  EXPECT_TRUE(ChooseAccel("auto", kKvmHost)->warning.empty());

  auto pvm = ChooseAccel("auto", kPvmHost);
  ASSERT_TRUE(pvm);
  EXPECT_EQ(pvm->accel, Accel::kTcg);
  EXPECT_NE(pvm->warning.find("vmx"), std::string::npos) << pvm->warning;

  auto bare = ChooseAccel("auto", kBareHost);
  EXPECT_EQ(bare->accel, Accel::kTcg);
  EXPECT_NE(bare->warning.find("/dev/kvm"), std::string::npos) << bare->warning;
}

TEST(AccelTest, ForcedModes) {
  EXPECT_EQ(ChooseAccel("tcg", kKvmHost)->accel, Accel::kTcg);
  EXPECT_EQ(ChooseAccel("kvm", kKvmHost)->accel, Accel::kKvm);
  auto refused = ChooseAccel("kvm", kPvmHost);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(ChooseAccel("hvf", kKvmHost));
}

TEST(AccelTest, ChannelIsVsockWhereTheHostHasIt) {
  EXPECT_EQ(ChooseChannel(kKvmHost), ChannelKind::kVsock);
  EXPECT_EQ(ChooseChannel(kPvmHost), ChannelKind::kVirtioSerial);
}

}  // namespace
}  // namespace agentvm
