// The agent's event loop: one thread, one poll() over the channel, every
// running exec's pipes and pidfds, and the timeouts. It never blocks on the
// host: requests are read while replies wait to be written, and a process
// whose output the host has not taken yet is simply not read from
// (backpressure) instead of being buffered without bound.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "guest-images/agent/channel.h"
#include "guest-images/agent/exec_session.h"
#include "guest-images/agent/guest_system.h"
#include "guest-images/agent/output_queue.h"
#include "protocol/frame.h"

namespace agentvm::guest {

struct AgentOptions {
  // Called once the "ok" for a shutdown request has been written (or after a
  // short grace period). Empty: Run() returns 0 instead. Only main() fills it
  // in, and only for a channel found inside a guest, so no test can reach a
  // real power-off.
  std::function<void()> power_off;
  // What "configure" acts on. Null: configure is refused. Like power_off,
  // main() gives the real one only to an agent that found its channel
  // inside a guest; tests get a recording one (--dry-run-system).
  std::unique_ptr<GuestSystem> system;
  // A serial port whose host end is not connected reports POLLHUP/EOF on
  // every poll; wait this long before looking again.
  std::chrono::milliseconds serial_backoff{100};
  // A directory in a cgroup2 file system under which each exec gets a
  // cgroup of its own (exec_cgroups.h). Empty: process groups only. main()
  // sets it for a guest's agent; tests choose their own.
  std::string exec_cgroup_root;
};

class Agent {
 public:
  Agent(Channel channel, AgentOptions options);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Serves until the channel of kind kFd closes, or a shutdown request
  // without power_off. Returns the process exit status.
  int Run();

 private:
  using Clock = std::chrono::steady_clock;
  struct PollTarget;

  int connection_fd() const;
  void BuildPollSet(std::vector<pollfd>* fds, std::vector<PollTarget>* targets);
  int PollTimeoutMs(Clock::time_point now) const;
  void HandleEvent(const PollTarget& target, short revents);

  void ReadChannel();
  void AcceptConnection();
  void FlushOutput();
  bool HoldingOutput() const { return hold_until_ && output_.total_bytes() == held_bytes_; }
  // The host went away: forget its requests, replies and processes.
  void Disconnected(const std::string& why);

  void HandleFrame(protocol::Frame frame);
  void HandleExec(const protocol::Frame& frame);
  void HandleShutdown(const protocol::Frame& frame);
  void HandleConfigure(const protocol::Frame& frame);
  void Reply(const protocol::Frame& frame);

  void ExpireTimeouts(Clock::time_point now);
  void SweepCgroups(Clock::time_point now);
  void AcknowledgeStdin();
  void ReapAndFinish();

  Channel channel_;
  AgentOptions options_;
  UniqueFd connection_;  // kVsock: the accepted connection; else unused
  protocol::FrameDecoder decoder_;
  OutputQueue output_;
  std::unique_ptr<ExecCgroups> cgroups_;  // declared before sessions_: they use it
  std::optional<Clock::time_point> next_cgroup_sweep_;
  std::map<std::uint32_t, std::unique_ptr<ExecSession>> sessions_;

  bool host_connected_ = true;  // kSerial: false between POLLHUP and the next data
  std::optional<Clock::time_point> serial_retry_at_;
  std::optional<Clock::time_point> shutdown_at_;  // power off / exit at the latest then
  // Queued "started" frames wait until hold_until_ as long as nothing else
  // is queued (the queue holds exactly held_bytes_), so that a short
  // program's "started" and "exit" leave in one write: one notification of
  // the host, and one interrupt back, fewer per exec.
  std::optional<Clock::time_point> hold_until_;
  std::size_t held_bytes_ = 0;
  bool stop_ = false;
  int exit_status_ = 0;
};

}  // namespace agentvm::guest
