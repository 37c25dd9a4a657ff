// agentvm-guest-probe: where one exec's time goes inside a guest. Not part of
// any image: copy it into a running VM (`agentvm cp`) and run it there
// (`agentvm exec VM -- /tmp/agentvm-guest-probe`). It times, N times each,
// the steps the agent takes per exec next to the floor (fork + execve +
// waitpid, what a shell pays), and then the whole agent over a socketpair,
// without the virtio channel or the host: the difference between that row
// and the host's round trip is the transport's.
//
// Usage: agentvm-guest-probe [--runs N] [--program PATH] [--cgroups DIR]
//   --cgroups: a cgroup2 directory for exec cgroups (default
//   /sys/fs/cgroup/agentvm-probe; removed again at the end).
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "guest-images/agent/agent.h"
#include "guest-images/agent/exec_cgroups.h"
#include "guest-images/agent/exec_launch.h"
#include "guest-images/agent/spawn.h"
#include "protocol/frame.h"
#include "protocol/messages.h"

namespace agentvm::guest {
namespace {

using Clock = std::chrono::steady_clock;

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

struct Row {
  std::string name;
  std::vector<double> us;
};

void Print(const Row& row) {
  std::vector<double> v = row.us;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  std::printf("| %-58s | %9.1f | %9.1f | %9.1f |\n", row.name.c_str(), v[v.size() / 2], sum / v.size(), v.front());
  std::fflush(stdout);
}

// The steps run interleaved, one of each per round in a rotating order, so
// a load that drifts during the run (the host is shared) hits all alike.
struct Steps {
  std::vector<std::string> names;
  std::vector<std::function<void()>> fns;
  void Add(std::string name, std::function<void()> fn) {
    names.push_back(std::move(name));
    fns.push_back(std::move(fn));
  }
  void Run(int runs) {
    std::vector<Row> rows;
    for (const auto& name : names) rows.push_back(Row{name, {}});
    for (auto& fn : fns) fn();  // warm-up: page cache, TCG's translation cache
    for (int i = 0; i < runs; ++i) {
      for (std::size_t k = 0; k < fns.size(); ++k) {
        std::size_t j = (i + k) % fns.size();
        auto start = Clock::now();
        fns[j]();
        rows[j].us.push_back(Micros(Clock::now() - start));
      }
    }
    for (const Row& row : rows) Print(row);
  }
};

void WaitFor(pid_t pid) {
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// A blocking frame client on one end of a socketpair.
struct Client {
  int fd;
  protocol::FrameDecoder decoder;
  void Send(const protocol::Frame& frame) {
    std::string bytes = protocol::EncodeFrame(frame);
    std::string_view rest = bytes;
    while (!rest.empty()) {
      ssize_t n = ::write(fd, rest.data(), rest.size());
      if (n <= 0) std::exit(3);
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  protocol::Frame Next() {
    while (true) {
      if (auto event = decoder.Next()) {
        if (auto* frame = std::get_if<protocol::Frame>(&*event)) return std::move(*frame);
        continue;
      }
      char buf[65536];
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) std::exit(4);
      decoder.Feed(std::string_view(buf, static_cast<std::size_t>(n)));
    }
  }
  // Frames until the terminal one of `stream`; returns their types.
  std::string Until(std::uint32_t stream) {
    std::string types;
    while (true) {
      protocol::Frame f = Next();
      if (f.stream != stream) continue;
      types += f.type + " ";
      if (f.type == protocol::kTypeExit || f.type == protocol::kTypeError || f.type == protocol::kTypePong) {
        if (f.type == protocol::kTypeError) std::fprintf(stderr, "error: %s\n", f.header.dump().c_str());
        return types;
      }
    }
  }
};

int Main(int argc, char** argv) {
  int runs = 100;
  std::string program = "/bin/true";
  std::string cgroup_dir = "/sys/fs/cgroup/agentvm-probe";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view arg = argv[i];
    if (arg == "--runs") runs = std::atoi(argv[i + 1]);
    if (arg == "--program") program = argv[i + 1];
    if (arg == "--cgroups") cgroup_dir = argv[i + 1];
  }
  ::mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  ::mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
  ::signal(SIGPIPE, SIG_IGN);
  std::printf("clocksource: %s; cgroup root options: %s; %d runs each, program %s\n\n",
              FirstLine("/sys/devices/system/clocksource/clocksource0/current_clocksource").c_str(),
              cgroup_dir.c_str(), runs, program.c_str());
  std::printf("| step (microseconds) | p50 | mean | min |\n|---|---:|---:|---:|\n");
  Steps steps;

  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  char* const true_argv[] = {program.data(), nullptr};
  char* const empty_env[] = {nullptr};

  steps.Add("clock_gettime (steady_clock::now)", [] { (void)Clock::now(); });
  steps.Add("getppid (one cheap system call)", [] { (void)::syscall(SYS_getppid); });
  steps.Add("64 x rt_sigaction (the child's signal reset)", [] {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP && sig != SIGPIPE) ::sigaction(sig, &dfl, nullptr);
    }
  });
  steps.Add("3 x pipe2 + 6 x close", [] {
    int p[6] = {-1, -1, -1, -1, -1, -1};
    for (int i = 0; i < 3; ++i) {
      if (::pipe2(p + 2 * i, O_CLOEXEC) != 0) std::perror("pipe2");
    }
    for (int fd : p) ::close(fd);
  });
  steps.Add("floor: fork + execve + waitpid", [&] {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::execve(true_argv[0], true_argv, empty_env);
      ::_exit(127);
    }
    WaitFor(pid);
  });
  steps.Add("vfork + execve + waitpid", [&] {
    pid_t pid = ::vfork();
    if (pid == 0) {
      ::execve(true_argv[0], true_argv, empty_env);
      ::_exit(127);
    }
    WaitFor(pid);
  });
  SpawnPlan plan;
  plan.candidates = {program};
  plan.argv = {program};
  plan.cwd = "/";
  plan.stdin_fd = plan.stdout_fd = plan.stderr_fd = devnull.get();
  steps.Add("Spawn() + waitpid (agent's clone, no cgroup)", [&] {
    auto pid = Spawn(plan);
    if (pid) WaitFor(*pid);
  });

  // Open() makes the directory: only inside a cgroup2 hierarchy.
  struct statfs parent {};
  std::unique_ptr<ExecCgroups> cgroups;
  std::unique_ptr<ExecCgroup> reused;
  if (::statfs(cgroup_dir.substr(0, cgroup_dir.rfind('/')).c_str(), &parent) == 0 &&
      parent.f_type == CGROUP2_SUPER_MAGIC) {
    cgroups = ExecCgroups::Open(cgroup_dir);
  }
  if (cgroups) {
    steps.Add("cgroup: Create (mkdir, open procs) + Retire (rmdir)", [&] {
      auto cg = cgroups->Create();
      if (cg) cgroups->Retire(std::move(*cg));
    });
    steps.Add("Spawn() into a new cgroup + waitpid + Retire", [&] {
      auto cg = cgroups->Create();
      if (!cg) return;
      SpawnPlan in = plan;
      in.cgroup_fd = (*cg)->dir_fd();
      auto pid = Spawn(in);
      if (pid) WaitFor(*pid);
      cgroups->Retire(std::move(*cg));
    });
    if (auto cg = cgroups->Create()) reused = std::move(*cg);
    steps.Add("Spawn() into one existing cgroup + waitpid", [&] {
      SpawnPlan in = plan;
      in.cgroup_fd = reused ? reused->dir_fd() : -1;
      auto pid = Spawn(in);
      if (pid) WaitFor(*pid);
    });
  } else {
    std::printf("(no cgroup2 at %s: cgroup rows left out)\n", cgroup_dir.c_str());
  }

  protocol::ExecStart start;
  start.request.argv = {program};
  const protocol::ExecRequest& request = start.request;
  steps.Add("LaunchExec() (env, pipes, cgroup) + waitpid + Retire", [&] {
    std::unique_ptr<ExecCgroup> cg;
    if (cgroups) {
      if (auto made = cgroups->Create()) cg = std::move(*made);
    }
    auto launched = LaunchExec(start, cg.get());
    if (launched) WaitFor(launched->pid);
    if (cgroups) cgroups->Retire(std::move(cg));
  });

  // The whole agent, in a child process, over a socketpair: with exec
  // cgroups (as in a guest) and without.
  struct AgentChild {
    pid_t pid;
    Client client;
    std::uint32_t stream = 1;
  };
  std::vector<std::unique_ptr<AgentChild>> agents;
  auto start_agent = [&](bool with_cgroups) -> std::unique_ptr<AgentChild> {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::exit(2);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(sv[0]);
      // Not the other agents' ends: each must see its channel close.
      for (const auto& other : agents) ::close(other->client.fd);
      AgentOptions options;
      if (with_cgroups) options.exec_cgroup_root = cgroup_dir + "/agent";
      Agent agent(Channel{ChannelKind::kFd, UniqueFd(sv[1]), "probe socketpair"}, std::move(options));
      ::_exit(agent.Run());
    }
    ::close(sv[1]);
    return std::unique_ptr<AgentChild>(new AgentChild{pid, Client{sv[0], protocol::FrameDecoder()}});
  };
  struct Variant {
    bool cgroups;
    std::string name;
  };
  std::vector<Variant> variants = {{true, "agent"}, {false, "agent, no exec cgroups"}};
  if (!cgroups) variants.resize(1);
  for (const Variant& v : variants) agents.push_back(start_agent(v.cgroups && cgroups));
  std::string types;
  for (std::size_t a = 0; a < agents.size(); ++a) {
    AgentChild* agent = agents[a].get();
    std::string which = variants[a].name;
    steps.Add(which + ": ping -> pong", [agent] {
      agent->client.Send(protocol::PingFrame(agent->stream));
      agent->client.Until(agent->stream++);
    });
    steps.Add(which + ": exec -> started, exit", [agent, &request, &types] {
      agent->client.Send(protocol::ExecFrame(agent->stream, request, {}, true, protocol::kDefaultOutputWindow));
      types = agent->client.Until(agent->stream++);
    });
  }
  steps.Run(runs);
  std::printf("\n(frames of the last exec: %s)\n", types.c_str());
  for (auto& agent : agents) {
    ::close(agent->client.fd);
    WaitFor(agent->pid);
  }
  if (cgroups) {
    cgroups->Retire(std::move(reused));
    ::rmdir((cgroup_dir + "/agent").c_str());
    ::rmdir(cgroup_dir.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace agentvm::guest

int main(int argc, char** argv) { return agentvm::guest::Main(argc, argv); }
