// The fixture of most qmp unit tests: a QmpClient wired to a FakeQmpPeer on a
// socketpair, both on one CoroutineRunner.
#pragma once

#include <gtest/gtest.h>

#include "qmp/testing/coroutine_test.h"
#include "qmp/testing/fake_qmp_peer.h"

namespace agentvm::qmp::testing {

class QmpPeerTest : public ::testing::Test {
 protected:
  CoroutineRunner runner_;
  ClientAndPeer pair_ = MakeClientAndPeer(runner_.executor());
  QmpClient& client() { return *pair_.client; }
  FakeQmpPeer& peer() { return *pair_.peer; }
};

}  // namespace agentvm::qmp::testing
