// Test helper: a frame as the other end of the channel sees it, after the
// encoder and the decoder.
#pragma once

#include <gtest/gtest.h>

#include <utility>
#include <variant>

#include "protocol/frame.h"

namespace agentvm::protocol {

inline Frame OverTheWire(const Frame& frame) {
  FrameDecoder decoder;
  decoder.Feed(EncodeFrame(frame));
  auto event = decoder.Next();
  EXPECT_TRUE(event.has_value());
  return std::get<Frame>(std::move(*event));
}

}  // namespace agentvm::protocol
