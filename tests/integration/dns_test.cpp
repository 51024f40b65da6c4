// Server addresses given as host names, resolved through a hosts file that each test
// controls ([global] hosts_file): names that resolve, resolve late, change address or
// disappear. Names end in ".invalid" (RFC 6761), so the system resolver, asked when the
// hosts file does not list a name, always fails them.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "tests/integration/harness.h"

namespace tandem::it {
namespace {

// Listens on 127.0.0.2:port (TestServer binds 127.0.0.1 only): each connection gets
// "name\n" and is closed. Both addresses are loopback on Linux, so the same port on each
// makes two servers that differ only by address, as a re-created container does.
class SecondLoopbackServer {
 public:
  SecondLoopbackServer(const std::string& name, uint16_t port) : name_(name + "\n") {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.2", &addr.sin_addr);
    listening_ =
        bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd_, 64) == 0;
    if (listening_) {
      thread_ = std::thread([this] { acceptLoop(); });
    }
  }
  ~SecondLoopbackServer() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
    close(fd_);
  }
  SecondLoopbackServer(const SecondLoopbackServer&) = delete;
  SecondLoopbackServer& operator=(const SecondLoopbackServer&) = delete;

  bool listening() const { return listening_; }
  int accepted() const { return accepted_.load(); }

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) {
        continue;
      }
      int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) {
        continue;
      }
      ++accepted_;
      ssize_t sent = send(conn, name_.data(), name_.size(), MSG_NOSIGNAL);
      (void)sent;  // a client that left early is not this server's problem
      close(conn);
    }
  }

  std::string name_;
  int fd_ = -1;
  bool listening_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

class DnsTest : public IntegrationTest {
 protected:
  // .invalid names reach the system resolver, which fails them; where the nameserver drops
  // packets rather than answering, glibc's defaults would take 10 s per failure. tandem
  // inherits this environment.
  static void SetUpTestSuite() { setenv("RES_OPTIONS", "timeout:1 attempts:1", 1); }

  // Replaces the hosts file at once (rename), so that tandem never reads half of it.
  void writeHosts(const std::string& content) {
    std::string tmp = hostsPath() + ".tmp";
    std::ofstream(tmp, std::ios::binary) << content;
    std::filesystem::rename(tmp, hostsPath());
  }
  std::string hostsPath() const { return (dir_.path() / "hosts").string(); }

  // `spec` as TOML with dns_refresh 200ms and the test's hosts file, and each server listed
  // in `names` (server name -> host name) addressed by that host name instead of 127.0.0.1.
  std::string tomlWithNames(const ConfigSpec& spec,
                            const std::vector<std::pair<std::string, std::string>>& names) {
    std::string text = spec.toml();
    std::string global = "[global]\n";
    text.replace(text.find(global), global.size(),
                 global + "dns_refresh = \"200ms\"\nhosts_file = \"" + hostsPath() + "\"\n");
    for (const auto& [server, host] : names) {
      for (const BackendSpec& b : spec.backends) {
        for (const ServerSpec& s : b.servers) {
          if (s.name != server) {
            continue;
          }
          std::string ip = "\"127.0.0.1:" + std::to_string(s.port) + "\"";
          size_t at = text.find(ip);
          EXPECT_NE(at, std::string::npos) << ip;
          text.replace(at, ip.size(), "\"" + host + ":" + std::to_string(s.port) + "\"");
        }
      }
    }
    return text;
  }

  void startWithNames(const ConfigSpec& spec,
                      const std::vector<std::pair<std::string, std::string>>& names) {
    tandem_ =
        std::make_unique<TandemProcess>(dir_.write("tandem.toml", tomlWithNames(spec, names)));
    ASSERT_TRUE(tandem_->waitUntilListening(spec.frontendPort(), kStartTimeout));
  }

  // True once a new connection reaches `name` (each try is a new connection, so a
  // round-robin pair shows both servers within a few tries).
  bool eventuallyReaches(uint16_t port, const std::string& name) {
    return eventually([&] { return askName(port) == name; }, kStateTimeout);
  }
};

// (a) A name only the hosts file knows.
TEST_F(DnsTest, NameFromTheHostsFileTakesTraffic) {
  TestServer web(nameHandler("web"));
  writeHosts("127.0.0.1 web.tandem.invalid\n");
  ConfigSpec spec = ConfigSpec::simpleTcp({{"web", web.port()}});
  ASSERT_NO_FATAL_FAILURE(startWithNames(spec, {{"web", "web.tandem.invalid"}}));
  EXPECT_TRUE(
      tandem().waitForLog("server be/web address is 127.0.0.1:" + std::to_string(web.port()) +
                              " (web.tandem.invalid from hosts_file)",
                          kStateTimeout));
  EXPECT_TRUE(eventuallyReaches(spec.frontendPort(), "web"));
  EXPECT_EQ(askNames(spec.frontendPort(), 5), std::vector<std::string>(5, "web"));
}

// (b) Without checks: DOWN while the name does not resolve, UP as soon as it does.
TEST_F(DnsTest, LateNameWithoutChecksTakesTrafficOnceItResolves) {
  TestServer s1(nameHandler("s1"));
  TestServer late(nameHandler("late"));
  writeHosts("# late.tandem.invalid is not here yet\n");
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", s1.port()}, {"late", late.port()}});
  ASSERT_NO_FATAL_FAILURE(startWithNames(spec, {{"late", "late.tandem.invalid"}}));
  ASSERT_TRUE(tandem().waitForLog("server be/late is DOWN, reason: unresolved: ", kStateTimeout));
  EXPECT_EQ(askNames(spec.frontendPort(), 6), std::vector<std::string>(6, "s1"));
  EXPECT_EQ(late.accepted(), 0);

  writeHosts("127.0.0.1 late.tandem.invalid\n");
  EXPECT_TRUE(tandem().waitForLog(
      "server be/late is UP, reason: resolved to 127.0.0.1:" + std::to_string(late.port()),
      kStateTimeout));
  EXPECT_TRUE(eventuallyReaches(spec.frontendPort(), "late"));
}

// (b) With checks: the check reports "unresolved" and, once the name resolves, brings the
// server UP by the rise rule.
TEST_F(DnsTest, LateNameWithChecksComesUpThroughItsChecks) {
  TestServer s1(nameHandler("s1"));
  TestServer late(nameHandler("late"));
  writeHosts("");
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", s1.port()}, {"late", late.port()}});
  spec.backend().check = CheckSpec{};  // tcp, every 100ms, rise 2, fall 2
  ASSERT_NO_FATAL_FAILURE(startWithNames(spec, {{"late", "late.tandem.invalid"}}));
  ASSERT_TRUE(tandem().waitForLog("server be/late is DOWN, reason: unresolved: ", kStateTimeout));
  EXPECT_EQ(askNames(spec.frontendPort(), 6), std::vector<std::string>(6, "s1"));

  size_t mark = tandem().logMark();
  writeHosts("127.0.0.1 late.tandem.invalid\n");
  EXPECT_TRUE(tandem().waitForLog("server be/late is UP, reason: Layer4 check passed",
                                  kStateTimeout, mark));
  EXPECT_TRUE(eventuallyReaches(spec.frontendPort(), "late"));
}

// (c) The name moves to another address: new connections follow, an open session stays.
TEST_F(DnsTest, AddressChangeMovesNewConnections) {
  TestServer old_server(nameHandler("old"));                  // 127.0.0.1:P, echoes after its name
  SecondLoopbackServer new_server("new", old_server.port());  // 127.0.0.2:P
  ASSERT_TRUE(new_server.listening()) << "cannot listen on 127.0.0.2:" << old_server.port();
  writeHosts("127.0.0.1 app.tandem.invalid\n");
  ConfigSpec spec = ConfigSpec::simpleTcp({{"app", old_server.port()}});
  ASSERT_NO_FATAL_FAILURE(startWithNames(spec, {{"app", "app.tandem.invalid"}}));
  ASSERT_TRUE(eventuallyReaches(spec.frontendPort(), "old"));

  Socket open = connectTo(spec.frontendPort());
  ASSERT_EQ(open.readLine(kIoTimeout), "old");

  std::string port = std::to_string(old_server.port());
  writeHosts("# moved\n127.0.0.2 app.tandem.invalid\n");
  EXPECT_TRUE(tandem().waitForLog(
      "server be/app address changed from 127.0.0.1:" + port + " to 127.0.0.2:" + port,
      kStateTimeout));
  EXPECT_EQ(askNames(spec.frontendPort(), 5), std::vector<std::string>(5, "new"));
  EXPECT_GE(new_server.accepted(), 5);

  // The session opened before the change still talks to the old server.
  ASSERT_TRUE(open.sendAll("still here\n"));
  EXPECT_EQ(open.readLine(kIoTimeout), "still here");
}

// (d) The name leaves the hosts file and the system resolver fails it too: the last good
// address keeps serving.
TEST_F(DnsTest, LastGoodAddressServesWhenTheNameDisappears) {
  TestServer web(nameHandler("web"));
  writeHosts("127.0.0.1 gone.tandem.invalid\n");
  ConfigSpec spec = ConfigSpec::simpleTcp({{"web", web.port()}});
  ASSERT_NO_FATAL_FAILURE(startWithNames(spec, {{"web", "gone.tandem.invalid"}}));
  ASSERT_TRUE(eventuallyReaches(spec.frontendPort(), "web"));

  writeHosts("# gone\n");
  ASSERT_TRUE(
      tandem().waitForLog("server be/web: cannot resolve gone.tandem.invalid (", kStateTimeout));
  EXPECT_TRUE(tandem().waitForLog(
      "keeping the last good address 127.0.0.1:" + std::to_string(web.port()), kStateTimeout));
  size_t mark = tandem().logMark();
  EXPECT_EQ(askNames(spec.frontendPort(), 5), std::vector<std::string>(5, "web"));
  // A few more failing rounds, still serving, and the warning is not repeated.
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_EQ(askName(spec.frontendPort()), "web");
  EXPECT_EQ(tandem().log().find("cannot resolve", mark), std::string::npos) << "one per streak";
}

// `tandem --check` looks nothing up: a name that does not resolve is a valid config.
TEST_F(DnsTest, CheckAcceptsNamesThatDoNotResolve) {
  ConfigSpec spec = ConfigSpec::simpleTcp({{"web", 8080}});
  std::string path =
      dir_.write("check.toml", tomlWithNames(spec, {{"web", "nowhere.tandem.invalid"}}));
  RunResult r = runTandem({"--check", "-c", path});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_TRUE(r.status->ok()) << r.err;
}

}  // namespace
}  // namespace tandem::it
