// The debian image (guest-images/debian) as an agent uses it: one VM for the
// whole suite, cold-booted by a real agentvmd in NetWorld's namespaces
// (nat-filtered, plus TCP 8443 for an HTTPS server). The toolchain runs, the
// agent user exists with passwordless sudo, the npm package scripts/test
// bakes in with --npm (semver) is on PATH, and python, node, curl and git
// reach the test internet: plain HTTP, git's own protocol, git over dumb HTTP,
// and HTTPS with a certificate from a test CA added to the guest's trust store.
//
// Sh runs commands as root (-u root); AsAgent as the image's default user,
// which is who an exec without -u runs as.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/files.h"
#include "tests/support/command.h"
#include "tests/support/daemon.h"
#include "tests/support/net_world.h"

namespace agentvm::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kHttpsPort = 8443;  // the web address's TLS server; this VM may open it
constexpr char kRepoText[] = "hello from a test repository\n";

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::filesystem::path DebianDir() { return std::filesystem::path(ImageDir()) / "debian"; }

// A command on the host that must work for the suite to make sense.
void Must(const std::vector<std::string>& argv) {
  auto result = RunCommand(argv, 60s);
  if (result.exit_code != 0) {
    std::string line;
    for (const auto& a : argv) line += a + " ";
    throw std::runtime_error(line + "failed: " + result.err);
  }
}

class VmDebianImageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(std::filesystem::exists(DebianDir() / "image.json"))
        << "no debian image in " << ImageDir() << ": scripts/build-image debian --out " << ImageDir()
        << " --npm semver@7";
    world_ = new NetWorld();
    // Minted before the guest boots: its clock (from the RTC) is then past
    // the certificate's notBefore.
    ASSERT_NO_THROW(StartTestServers());
    // Golden snapshots on for the last test's clone; the suite's own VM
    // boots cold so no background build competes with the tests.
    daemon_ = new Daemon({.netns = world_->daemon_ns(),
                          .extra_args = {"--dns-upstream", std::string(NetWorld::kDnsAddress)},
                          .golden_snapshots = true});
    const auto started = std::chrono::steady_clock::now();
    auto [status, text] = daemon_->Http(
        "POST", "/v1/vms",
        R"({"image": "debian", "memory_mib": 1024, "boot": "cold",
            "network": {"mode": "nat-filtered", "allow_tcp_ports": [)" +
            std::to_string(kHttpsPort) + "]}}");
    boot_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ASSERT_EQ(status, 201) << text << "\n" << daemon_->Log();
    auto vm = json::parse(text, nullptr, false);
    ASSERT_TRUE(vm.is_object()) << text;
    id_ = vm["id"].get<std::string>();
  }

  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
    delete world_;
    world_ = nullptr;
  }

  void SetUp() override { ASSERT_FALSE(id_.empty()) << "the debian VM did not boot"; }

  // A git repository served by `git daemon` (git://web.test/repo.git) and,
  // made ready for git's dumb HTTP protocol, by the port-80 web server
  // (http://web.test/repo.git); a test CA and an HTTPS server for web.test
  // on port 8443 (openssl s_server) serving hello.txt.
  static void StartTestServers() {
    const auto dir = world_->dir();
    const auto work = dir / "repo-work";
    const auto bare = dir / "www80" / "repo.git";
    std::filesystem::create_directories(work);
    WriteFile(work / "README", kRepoText);
    const std::vector<std::string> git = {"git", "-c", "user.name=agentvm", "-c", "user.email=agentvm@test",
                                          "-c", "init.defaultBranch=main", "-C", work.string()};
    auto in_work = [&](std::vector<std::string> args) {
      std::vector<std::string> argv = git;
      argv.insert(argv.end(), args.begin(), args.end());
      Must(argv);
    };
    in_work({"init", "-q"});
    in_work({"add", "README"});
    in_work({"commit", "-q", "-m", "first"});
    Must({"git", "clone", "-q", "--bare", work.string(), bare.string()});
    Must({"git", "-C", bare.string(), "update-server-info"});
    world_->StartServer("git-daemon", {"git", "daemon", "--reuseaddr", "--export-all",
                                       "--listen=" + std::string(NetWorld::kWebAddress), "--port=9418",
                                       "--base-path=" + (dir / "www80").string(), (dir / "www80").string()});

    const auto tls = dir / "tls";
    std::filesystem::create_directories(tls);
    const std::string t = tls.string();
    Must({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
          "/CN=agentvm test CA", "-keyout", t + "/ca.key", "-out", t + "/ca.crt"});
    Must({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj",
          std::string("/CN=") + NetWorld::kWebName, "-keyout", t + "/server.key", "-out", t + "/server.csr"});
    WriteFile(tls / "server.ext", std::string("subjectAltName=DNS:") + NetWorld::kWebName +
                                      "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
    Must({"openssl", "x509", "-req", "-in", t + "/server.csr", "-CA", t + "/ca.crt", "-CAkey", t + "/ca.key",
          "-CAcreateserial", "-days", "2", "-extfile", t + "/server.ext", "-out", t + "/server.crt"});
    WriteFile(tls / "hello.txt", "hello over tls\n");
    // -WWW serves files relative to the working directory.
    world_->StartServer("https", {"sh", "-c", "cd " + t + " && exec openssl s_server -quiet -WWW -accept " +
                                                  NetWorld::kWebAddress + ":" + std::to_string(kHttpsPort) +
                                                  " -cert server.crt -key server.key"});

    const auto deadline = std::chrono::steady_clock::now() + 15s;
    const std::string web = NetWorld::kWebAddress;
    const std::string tls_host = std::string(NetWorld::kWebName) + ":" + std::to_string(kHttpsPort);
    while (true) {
      bool git_up = world_->InInternet({"git", "ls-remote", "git://" + web + "/repo.git"}, 5s).exit_code == 0;
      bool tls_up = world_->InInternet({"curl", "-sf", "--cacert", t + "/ca.crt", "--resolve", tls_host + ":" + web,
                                         "https://" + tls_host + "/hello.txt"},
                                        5s)
                        .exit_code == 0;
      if (git_up && tls_up) return;
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("test servers did not come up: git " + std::to_string(git_up) + ", https " +
                                 std::to_string(tls_up) + "\n" + ReadFile(dir / "git-daemon.log") +
                                 ReadFile(dir / "https.log"));
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  // `bash -c script` in the guest, as root.
  static CommandResult Sh(const std::string& script) {
    return daemon_->Cli({"exec", "-u", "root", id_, "--", "bash", "-c", script});
  }
  // The script as the image's default user (no -u), the way an agent runs.
  static CommandResult AsAgent(const std::string& script) {
    return daemon_->Cli({"exec", id_, "--", "bash", "-c", script});
  }

  static inline NetWorld* world_ = nullptr;
  static inline Daemon* daemon_ = nullptr;
  static inline std::string id_;
  static inline double boot_seconds_ = 0;
};

TEST_F(VmDebianImageTest, ImageJsonListsPackagesAndTheDefaultUser) {
  RecordProperty("boot_to_agent_seconds", std::to_string(boot_seconds_));
  auto image = json::parse(ReadFile(DebianDir() / "image.json"), nullptr, false);
  ASSERT_TRUE(image.is_object());
  EXPECT_EQ(image.value("default_user", ""), "agent");
  EXPECT_EQ(image.value("debian_suite", ""), "bookworm");
  ASSERT_TRUE(image["packages"].is_object());
  for (const char* name :
       {"bash", "python3", "nodejs", "git", "curl", "ca-certificates", "sudo", "busybox"}) {
    EXPECT_TRUE(image["packages"].contains(name)) << name;
  }
  ASSERT_TRUE(image["npm_packages"].is_object());
  EXPECT_TRUE(image["npm_packages"].contains("npm"));
  EXPECT_TRUE(image["npm_packages"].contains("semver")) << "build the test image with --npm semver@7";
  for (const char* module : {"virtiofs", "fuse", "overlay", "virtio_net"}) {
    EXPECT_NE(image.value("modules", "").find(module), std::string::npos) << module;
  }
}

TEST_F(VmDebianImageTest, TheToolchainRuns) {
  struct Case {
    std::string script, expected;
  };
  for (const Case& c : std::vector<Case>{
           {"python3 --version", "Python 3.11."},
           {"node -e 'console.log(1+1)'", "2\n"},
           {"git --version", "git version 2."},
           {"curl --version", "curl 7."},
           {"npm --version", "10."},
           // A venv with pip takes ~40 s under TCG (ensurepip); the parts suffice.
           {"python3 -m venv --without-pip /tmp/venv && /tmp/venv/bin/python -c 'import ensurepip' && "
            "python3 -m pip --version",
            "pip "},
           {"jq -n '1+1'", "2\n"},
           {"rg --version", "ripgrep "},
           {"test -f /etc/ssl/certs/ca-certificates.crt && echo present", "present\n"},
       }) {
    auto result = Sh(c.script);
    EXPECT_EQ(result.exit_code, 0) << c.script << ": " << result.err;
    EXPECT_NE(result.out.find(c.expected), std::string::npos) << c.script << ": " << result.out;
  }
}

TEST_F(VmDebianImageTest, TheAgentUserHasAHomeAndPasswordlessSudo) {
  auto entry = Sh("getent passwd agent");
  EXPECT_EQ(entry.out, "agent:x:1000:1000:agentvm user:/home/agent:/bin/bash\n") << entry.err;
  EXPECT_EQ(Sh("getent group agent").out, "agent:x:1000:\n");
  auto sudo = Sh("sudo -n -u agent id -un");
  EXPECT_EQ(sudo.exit_code, 0) << sudo.err;
  EXPECT_EQ(sudo.out, "agent\n");
  auto back = AsAgent("sudo -n id -u && touch ~/written && pwd");
  EXPECT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, "0\n/home/agent\n");
  // An exec gets a login environment: the image's locale and /usr/local/bin (npm -g).
  auto env = AsAgent("echo \"$LANG\"; echo \"$PATH\"; locale 2>&1 >/dev/null | wc -l");
  EXPECT_EQ(env.exit_code, 0) << env.err;
  EXPECT_NE(env.out.find("C.UTF-8\n"), std::string::npos) << env.out;
  EXPECT_NE(env.out.find("/usr/local/bin"), std::string::npos) << env.out;
  EXPECT_TRUE(env.out.ends_with("\n0\n")) << "locale complains:\n" << env.out;
}

TEST_F(VmDebianImageTest, ExecRunsAsTheDefaultUserInItsHomeUnlessToldOtherwise) {
  auto who = AsAgent("id -un; id -G; pwd; echo \"$HOME $USER $SHELL\"; sudo -n true && echo sudo-ok");
  EXPECT_EQ(who.exit_code, 0) << who.err;
  EXPECT_EQ(who.out, "agent\n1000\n/home/agent\n/home/agent agent /bin/bash\nsudo-ok\n");
  auto root = daemon_->Cli({"exec", "-u", "root", "-w", "/tmp", id_, "--", "sh", "-c", "id -un; pwd"});
  EXPECT_EQ(root.exit_code, 0) << root.err;
  EXPECT_EQ(root.out, "root\n/tmp\n");
  auto nobody = daemon_->Cli({"exec", "-u", "no-such-user", id_, "--", "true"});
  EXPECT_EQ(nobody.exit_code, 125);
  EXPECT_NE(nobody.err.find("no-such-user"), std::string::npos) << nobody.err;
}

// `cp` reads as root whether or not -r is given (a file through the agent,
// a tree through tar), and writes a tree as the default user, who owns it.
TEST_F(VmDebianImageTest, CopiesTakeRootsFilesOutAndPutTheAgentsFilesIn) {
  ASSERT_EQ(Sh("mkdir -p /root/proj/sub && echo secret > /root/proj/sub/f && chmod -R go-rwx /root").exit_code, 0);
  const std::filesystem::path out = std::filesystem::path(daemon_->root()) / "from-root";
  auto tree = daemon_->Cli({"cp", "-r", id_ + ":/root/proj", out.string()});
  EXPECT_EQ(tree.exit_code, 0) << tree.err;
  EXPECT_EQ(ReadFile(out / "sub" / "f"), "secret\n");
  auto file = daemon_->Cli({"cp", id_ + ":/root/proj/sub/f", (out / "single").string()});
  EXPECT_EQ(file.exit_code, 0) << file.err;
  EXPECT_EQ(ReadFile(out / "single"), "secret\n");

  auto in = daemon_->Cli({"cp", "-r", out.string(), id_ + ":/home/agent/copied"});
  EXPECT_EQ(in.exit_code, 0) << in.err;
  auto owner = AsAgent("stat -c %U /home/agent/copied/sub/f && echo more >> /home/agent/copied/sub/f");
  EXPECT_EQ(owner.out, "agent\n") << owner.err;
}

TEST_F(VmDebianImageTest, NpmPackagesBakedInAreOnPath) {
  auto semver = AsAgent("command -v semver && semver -r '>=1.2' 1.2.3 0.9.0");
  EXPECT_EQ(semver.exit_code, 0) << semver.err;
  EXPECT_EQ(semver.out, "/usr/local/bin/semver\n1.2.3\n");
}

TEST_F(VmDebianImageTest, InitMountsTheSystemAndReapsOrphans) {
  auto shown = Sh(
      "cat /proc/1/comm; hostname; "
      "findmnt -no FSTYPE,OPTIONS /sys/fs/cgroup; findmnt -no OPTIONS /dev/pts; "
      "for m in /dev/shm /run /tmp; do findmnt -no FSTYPE $m; done");
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(shown.out.substr(0, shown.out.find('\n')), "init");
  EXPECT_NE(shown.out.find("\n" + id_ + "\n"), std::string::npos) << "hostname: " << shown.out;
  EXPECT_NE(shown.out.find("cgroup2 "), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("ptmxmode=666"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("tmpfs\ntmpfs\ntmpfs\n"), std::string::npos) << shown.out;
  // An orphan is re-parented to PID 1, which must reap it.
  auto orphan = Sh("sh -c 'sleep 0.3 & exit 0'; sleep 1; ps -eo stat= | grep -c '^Z' || true");
  EXPECT_EQ(orphan.out, "0\n") << "zombies left";
}

TEST_F(VmDebianImageTest, PythonNodeAndCurlReachTheWebOverHttp) {
  const std::string url = "http://" + std::string(NetWorld::kWebName) + "/";
  auto python = Sh("python3 -c 'import urllib.request; print(urllib.request.urlopen(\"" + url +
                   "\", timeout=10).status)'");
  EXPECT_EQ(python.out, "200\n") << python.err;
  auto node =
      Sh("node -e 'fetch(\"" + url + "\").then(r => r.text()).then(t => process.stdout.write(t))' 2>/dev/null");
  EXPECT_EQ(node.out, NetWorld::HttpBody(80)) << node.err;
  auto curl = Sh("curl -sS --max-time 10 " + url);
  EXPECT_EQ(curl.out, NetWorld::HttpBody(80)) << curl.err;
  // 8080 is not on this VM's whitelist: the connection is dropped.
  auto blocked = Sh("curl -sS --connect-timeout 3 http://" + std::string(NetWorld::kWebName) + ":8080/");
  EXPECT_NE(blocked.exit_code, 0) << blocked.out;
}

TEST_F(VmDebianImageTest, GitClonesOverItsOwnProtocolAndDumbHttp) {
  const std::string host = NetWorld::kWebName;
  auto daemon = AsAgent("git clone -q git://" + host + "/repo.git /tmp/over-git && cat /tmp/over-git/README");
  EXPECT_EQ(daemon.exit_code, 0) << daemon.err;
  EXPECT_EQ(daemon.out, kRepoText);
  auto http =
      AsAgent("git clone -q http://" + host + "/repo.git /tmp/over-http && cat /tmp/over-http/README");
  EXPECT_EQ(http.exit_code, 0) << http.err;
  EXPECT_EQ(http.out, kRepoText);
}

TEST_F(VmDebianImageTest, HttpsTrustsACaAddedToTheSystemStore) {
  const std::string url = "https://" + std::string(NetWorld::kWebName) + ":" + std::to_string(kHttpsPort) +
                          "/hello.txt";
  auto untrusted = Sh("curl -sS --max-time 10 " + url);
  EXPECT_NE(untrusted.exit_code, 0) << "a test CA's certificate was trusted before the CA was added";

  auto copied = daemon_->Cli({"cp", (world_->dir() / "tls" / "ca.crt").string(),
                              id_ + ":/usr/local/share/ca-certificates/agentvm-test-ca.crt"});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  // ~30 s under TCG: a few processes per certificate of the store.
  auto updated = Sh("update-ca-certificates");
  ASSERT_EQ(updated.exit_code, 0) << updated.err;
  EXPECT_NE(updated.out.find("1 added"), std::string::npos) << updated.out;

  auto curl = Sh("curl -sS --max-time 10 " + url);
  EXPECT_EQ(curl.out, "hello over tls\n") << curl.err;
  auto python = Sh("python3 -c 'import urllib.request; print(urllib.request.urlopen(\"" + url +
                   "\", timeout=10).read().decode(), end=\"\")'");
  EXPECT_EQ(python.out, "hello over tls\n") << python.err;
  // node has its own CA list; login shells point NODE_EXTRA_CA_CERTS at the
  // system bundle (/etc/environment via /etc/profile.d/agentvm.sh).
  const std::string node_fetch =
      "node -e 'fetch(\"" + url + "\").then(r => r.text()).then(t => process.stdout.write(t))' 2>&1";
  auto node = AsAgent(node_fetch);
  EXPECT_NE(node.out.find("hello over tls\n"), std::string::npos) << node.out << node.err;
  auto git = AsAgent("git ls-remote https://" + std::string(NetWorld::kWebName) + ":" +
                     std::to_string(kHttpsPort) + "/none.git 2>&1");
  // s_server is no git server, but the TLS handshake must succeed first.
  EXPECT_EQ(git.out.find("certificate"), std::string::npos) << git.out;
}

// A clone restored from the golden snapshot gets its address, MAC, route and
// host name from the agent's configure request, which runs `ip`: here
// Debian's iproute2, not busybox.
TEST_F(VmDebianImageTest, ARestoredCloneTakesItsIdentityThroughDebiansIp) {
  auto [status, text] = daemon_->Http("POST", "/v1/vms", R"({"image": "debian", "boot": "restore"})");
  ASSERT_EQ(status, 201) << text << "\n" << daemon_->Log();
  auto vm = json::parse(text, nullptr, false);
  ASSERT_TRUE(vm.is_object()) << text;
  const std::string id = vm["id"].get<std::string>();
  EXPECT_EQ(vm.value("boot", ""), "restore") << "restore_error: " << vm.value("restore_error", "");
  const std::string address = vm["network"]["address"].get<std::string>();
  auto shown = daemon_->Cli({"exec", id, "--", "sh", "-c",
                             "hostname; ip -4 -o addr show dev eth0; ip route show default; sudo -n true"});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_TRUE(shown.out.starts_with(id + "\n")) << shown.out;
  EXPECT_NE(shown.out.find("inet " + address + "/16"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("default via 10.101.0.1 dev eth0"), std::string::npos) << shown.out;
  // libnss-myhostname resolves the new name: sudo does not complain.
  EXPECT_EQ(shown.err, "");
  EXPECT_EQ(daemon_->Cli({"rm", "-f", id}).exit_code, 0);
}

}  // namespace
}  // namespace agentvm::testing
