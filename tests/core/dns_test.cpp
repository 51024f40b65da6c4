#include "core/dns.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <uv.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "core/address.h"
#include "core/config.h"
#include "core/model.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string text(const sockaddr_storage& addr) {
  return formatSockaddr(reinterpret_cast<const sockaddr*>(&addr));
}

// "127.0.0.2:0 ::1:0" style listing of a hosts-file answer.
std::string texts(const std::vector<sockaddr_storage>* list) {
  if (list == nullptr) {
    return "<absent>";
  }
  std::string out;
  for (const sockaddr_storage& a : *list) {
    out += (out.empty() ? "" : " ") + text(a);
  }
  return out;
}

sockaddr_storage ip(const std::string& host, uint16_t port) {
  std::optional<sockaddr_storage> a = literalAddress(HostPort{host, port});
  EXPECT_TRUE(a.has_value()) << host;
  return a.value_or(sockaddr_storage{});
}

TEST(HostsFileTest, ParsesAddressesNamesAndAliases) {
  HostsFile hosts = HostsFile::parse(
      "# a comment line\n"
      "127.0.0.1\tlocalhost\n"
      "10.0.0.5   web1 web1.local   # trailing comment\n"
      "\n"
      "   ::1  ip6-localhost ip6-loopback\n"
      "192.168.1.9 db1");  // no final newline
  EXPECT_EQ(texts(hosts.find("localhost")), "127.0.0.1:0");
  EXPECT_EQ(texts(hosts.find("web1")), "10.0.0.5:0");
  EXPECT_EQ(texts(hosts.find("web1.local")), "10.0.0.5:0");
  EXPECT_EQ(texts(hosts.find("ip6-loopback")), "[::1]:0");
  EXPECT_EQ(texts(hosts.find("db1")), "192.168.1.9:0");
  EXPECT_EQ(hosts.find("web2"), nullptr);
  EXPECT_EQ(hosts.find("comment"), nullptr) << "words after '#' are not names";
  EXPECT_EQ(hosts.nameCount(), 6u);
}

TEST(HostsFileTest, NamesIgnoreCase) {
  HostsFile hosts = HostsFile::parse("10.0.0.5 Web1\n");
  EXPECT_EQ(texts(hosts.find("WEB1")), "10.0.0.5:0");
  EXPECT_EQ(texts(hosts.find("web1")), "10.0.0.5:0");
}

TEST(HostsFileTest, NameOnSeveralLinesKeepsFileOrderWithoutDuplicates) {
  HostsFile hosts = HostsFile::parse(
      "10.0.0.2 web\n"
      "10.0.0.1 web\n"
      "10.0.0.2 web www\n");
  EXPECT_EQ(texts(hosts.find("web")), "10.0.0.2:0 10.0.0.1:0");
  EXPECT_EQ(texts(hosts.find("www")), "10.0.0.2:0");
}

TEST(HostsFileTest, SkipsLinesWithoutAValidAddressOrName) {
  HostsFile hosts = HostsFile::parse(
      "web1 10.0.0.1\n"        // name first: not an address
      "10.0.0.300 bad\n"       // out of range
      "10.0.0.7\n"             // an address without names
      "10.0.0.8 good\r\n"      // CRLF line ending
      "#10.0.0.9 commented\n"  // commented out
      "\t \n");
  EXPECT_EQ(hosts.find("10.0.0.1"), nullptr);
  EXPECT_EQ(hosts.find("bad"), nullptr);
  EXPECT_EQ(hosts.find("commented"), nullptr);
  EXPECT_EQ(texts(hosts.find("good")), "10.0.0.8:0");
  EXPECT_EQ(hosts.nameCount(), 1u);
}

TEST(HostsFileTest, EmptyText) {
  EXPECT_EQ(HostsFile::parse("").nameCount(), 0u);
}

TEST(DnsAddressTest, LiteralAddressOnlyForIpLiterals) {
  EXPECT_EQ(text(ip("10.1.2.3", 80)), "10.1.2.3:80");
  EXPECT_EQ(text(ip("::1", 8080)), "[::1]:8080");
  EXPECT_FALSE(literalAddress(HostPort{"web1", 80}).has_value());
  EXPECT_FALSE(literalAddress(HostPort{"localhost", 80}).has_value());
  EXPECT_FALSE(literalAddress(HostPort{"10.1.2", 80}).has_value()) << "no inet_aton shorthands";
}

TEST(DnsAddressTest, SameSockaddrComparesFamilyAddressAndPort) {
  EXPECT_TRUE(sameSockaddr(ip("10.0.0.1", 80), ip("10.0.0.1", 80)));
  EXPECT_FALSE(sameSockaddr(ip("10.0.0.1", 80), ip("10.0.0.2", 80)));
  EXPECT_FALSE(sameSockaddr(ip("10.0.0.1", 80), ip("10.0.0.1", 81)));
  EXPECT_FALSE(sameSockaddr(ip("::1", 80), ip("127.0.0.1", 80)));
  EXPECT_TRUE(sameSockaddr(ip("::1", 80), ip("::1", 80)));
  EXPECT_TRUE(sameSockaddr(Server::kNoAddress, sockaddr_storage{}));
  EXPECT_FALSE(sameSockaddr(Server::kNoAddress, ip("0.0.0.0", 80)));
}

TEST(DnsAddressTest, WithPortKeepsTheAddress) {
  EXPECT_EQ(text(withPort(ip("10.0.0.1", 0), 3306)), "10.0.0.1:3306");
  EXPECT_EQ(text(withPort(ip("fe80::1", 1), 8090)), "[fe80::1]:8090");
}

// A private directory removed with its files.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tandem-dns-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& content) const {
    std::string path = path_ + "/" + name;
    std::string tmp = path + ".tmp";
    std::ofstream(tmp, std::ios::binary) << content;
    std::filesystem::rename(tmp, path);  // readers never see a half-written file
    return path;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ReadHostsFileTest, ReadsAFile) {
  TempDir dir;
  std::string path = dir.write("hosts", "10.0.0.1 web1\n");
  std::string content, error;
  ASSERT_TRUE(readHostsFile(path, &content, &error)) << error;
  EXPECT_EQ(content, "10.0.0.1 web1\n");
}

TEST(ReadHostsFileTest, MissingFileSaysWhy) {
  TempDir dir;
  std::string content, error;
  EXPECT_FALSE(readHostsFile(dir.path() + "/nope", &content, &error));
  EXPECT_EQ(error, dir.path() + "/nope: No such file or directory");
}

TEST(ReadHostsFileTest, DirectorySaysWhy) {
  TempDir dir;
  std::string content, error;
  EXPECT_FALSE(readHostsFile(dir.path(), &content, &error));
  EXPECT_EQ(error, dir.path() + ": Is a directory");
}

TEST(ReadHostsFileTest, RefusesAHugeFile) {
  TempDir dir;
  std::string path = dir.write("hosts", std::string(kMaxHostsFileBytes + 1, '#'));
  std::string content, error;
  EXPECT_FALSE(readHostsFile(path, &content, &error));
  EXPECT_THAT(error, HasSubstr("larger than 1048576 bytes"));
  EXPECT_TRUE(content.empty());
}

// ---- the model's address ----

constexpr const char* kFrontend = R"(
[[frontend]]
name = "fe"
listen = "127.0.0.1:1"
backend = "be"
)";

Config configWith(const std::string& global, const std::string& backend) {
  return loadConfigString(
      "[global]\n" + global + "\n[[backend]]\nname = \"be\"\n" + backend + kFrontend, "t.toml");
}

TEST(ServerAddressTest, IpLiteralsResolveInTheRuntimeAndNamesWait) {
  Runtime rt(configWith("",
                        "servers = [{ name = \"a\", address = \"10.0.0.1:80\" },\n"
                        "           { name = \"b\", address = \"web.invalid:80\" }]\n"));
  const Server& a = *rt.backends()[0]->servers()[0];
  const Server& b = *rt.backends()[0]->servers()[1];
  EXPECT_FALSE(a.byName());
  EXPECT_TRUE(a.hasAddr());
  EXPECT_EQ(text(a.addr()), "10.0.0.1:80");
  EXPECT_TRUE(a.usable());
  EXPECT_TRUE(b.byName());
  EXPECT_FALSE(b.hasAddr());
  EXPECT_EQ(b.addr().ss_family, AF_UNSPEC);
  EXPECT_TRUE(b.up.load()) << "not DOWN before its first lookup";
  EXPECT_FALSE(b.usable()) << "but it takes no traffic without an address";
}

TEST(ServerAddressTest, SetAddrSwapsCopiesAndReusesThemForKnownAddresses) {
  Runtime rt(configWith("", "servers = [{ name = \"s\", address = \"web.invalid:80\" }]\n"));
  Server& s = *rt.backends()[0]->servers()[0];
  EXPECT_TRUE(s.setAddr(ip("10.0.0.1", 80)));
  const sockaddr_storage* first = &s.addr();
  EXPECT_FALSE(s.setAddr(ip("10.0.0.1", 80))) << "the same address is no change";
  EXPECT_EQ(&s.addr(), first);
  EXPECT_TRUE(s.setAddr(ip("10.0.0.2", 80)));
  const sockaddr_storage* second = &s.addr();
  EXPECT_NE(second, first);
  EXPECT_EQ(text(*first), "10.0.0.1:80") << "a reference taken earlier stays valid";
  EXPECT_TRUE(s.setAddr(ip("10.0.0.1", 80)));
  EXPECT_EQ(&s.addr(), first) << "flapping back reuses the first copy";
  EXPECT_EQ(text(s.addr()), "10.0.0.1:80");
}

// ---- DnsRefresher on a real loop ----

class DnsRefresherTest : public ::testing::Test {
 protected:
  // The .invalid names below reach the system resolver, which fails them; where its
  // nameserver drops packets instead of answering, glibc's defaults would make each failure
  // take 10 s. RES_OPTIONS (read when the resolver first initialises) keeps that short.
  static void SetUpTestSuite() { setenv("RES_OPTIONS", "timeout:1 attempts:1", 1); }

  DnsRefresherTest() { uv_loop_init(&loop_); }
  ~DnsRefresherTest() override {
    if (refresher_) {
      bool stopped = false;
      refresher_->stop([&stopped] { stopped = true; });
      uv_run(&loop_, UV_RUN_DEFAULT);
      EXPECT_TRUE(stopped);
    }
    refresher_.reset();
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle or request outlived stop()";
  }

  // Starts a refresher over servers `servers` (a TOML array body), with the test's hosts
  // file (initially `hosts`) and dns_refresh 100ms.
  void start(const std::string& servers, const std::string& hosts,
             const std::string& extra_backend = "", const std::string& refresh = "100ms") {
    hosts_path_ = dir_.write("hosts", hosts);
    runtime_ = std::make_unique<Runtime>(
        configWith("dns_refresh = \"" + refresh + "\"\nhosts_file = \"" + hosts_path_ + "\"\n",
                   extra_backend + "servers = [" + servers + "]\n"));
    refresher_ = std::make_unique<DnsRefresher>(&loop_, *runtime_);
    refresher_->start();
  }

  Server& server(size_t i) { return *runtime_->backends()[0]->servers()[i]; }

  // Runs the loop for `n` refresh periods (100 ms each), counted by a timer of its own.
  bool waitPeriods(int n) {
    int periods = 0;
    uv_timer_t counter;
    uv_timer_init(&loop_, &counter);
    counter.data = &periods;
    uv_timer_start(
        &counter, [](uv_timer_t* t) { ++*static_cast<int*>(t->data); }, 100, 100);
    bool ok = runUntil([&] { return periods >= n; });
    bool closed = false;
    counter.data = &closed;
    uv_close(reinterpret_cast<uv_handle_t*>(&counter),
             [](uv_handle_t* h) { *static_cast<bool*>(h->data) = true; });
    runUntil([&] { return closed; });  // `counter` lives on this stack
    return ok;
  }

  // Runs the loop until `done` holds; false after 10 s (a bound for a broken build, not a
  // speed assertion).
  bool runUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }

  uv_loop_t loop_{};
  TempDir dir_;
  std::string hosts_path_;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<DnsRefresher> refresher_;
};

TEST_F(DnsRefresherTest, HostsFileNameGetsItsAddressWithTheConfiguredPort) {
  start("{ name = \"a\", address = \"web-a.invalid:8080\" }", "127.0.0.5 web-a.invalid\n");
  ASSERT_TRUE(runUntil([&] { return server(0).hasAddr(); }));
  EXPECT_EQ(text(server(0).addr()), "127.0.0.5:8080");
  EXPECT_TRUE(server(0).usable());
}

TEST_F(DnsRefresherTest, FollowsAnAddressChange) {
  start("{ name = \"a\", address = \"web-a.invalid:80\" }", "127.0.0.5 web-a.invalid\n");
  ASSERT_TRUE(runUntil([&] { return server(0).hasAddr(); }));
  dir_.write("hosts", "127.0.0.6 web-a.invalid\n");
  ASSERT_TRUE(runUntil([&] { return text(server(0).addr()) == "127.0.0.6:80"; }))
      << text(server(0).addr());
}

TEST_F(DnsRefresherTest, KeepsTheCurrentAddressWhileTheNameStillListsIt) {
  start("{ name = \"a\", address = \"web-a.invalid:80\" }", "127.0.0.5 web-a.invalid\n");
  ASSERT_TRUE(runUntil([&] { return server(0).hasAddr(); }));
  // The current address now comes second: a rotating DNS answer, in effect.
  dir_.write("hosts", "127.0.0.9 web-a.invalid\n127.0.0.5 web-a.invalid\n");
  ASSERT_TRUE(waitPeriods(5));
  EXPECT_EQ(text(server(0).addr()), "127.0.0.5:80");
}

// Without checks the refresher itself marks the server DOWN, then UP once it resolves.
TEST_F(DnsRefresherTest, UncheckedServerIsDownUntilItsNameResolves) {
  start("{ name = \"a\", address = \"late.invalid:80\" }", "# empty for now\n");
  ASSERT_TRUE(runUntil([&] { return !server(0).up.load(); }));
  EXPECT_FALSE(server(0).usable());
  EXPECT_THAT(server(0).unresolvedReason(), StartsWith("unresolved: "));
  {
    std::lock_guard<std::mutex> lock(server(0).check_mutex);
    EXPECT_EQ(server(0).check_info.status, "RESOLV");
    EXPECT_THAT(server(0).check_info.reason, StartsWith("unresolved: "));
  }
  dir_.write("hosts", "127.0.0.7 late.invalid\n");
  ASSERT_TRUE(runUntil([&] { return server(0).usable(); }));
  EXPECT_TRUE(server(0).up.load());
  EXPECT_EQ(text(server(0).addr()), "127.0.0.7:80");
  EXPECT_EQ(server(0).unresolvedReason(), "");
}

// With checks, the refresher leaves `up` to them and only records why.
TEST_F(DnsRefresherTest, CheckedServerGetsAReasonForItsChecks) {
  start("{ name = \"a\", address = \"late.invalid:80\" }", "", "check = {}\n");
  ASSERT_TRUE(runUntil([&] { return !server(0).unresolvedReason().empty(); }));
  EXPECT_TRUE(server(0).up.load()) << "the check, not the refresher, takes it DOWN";
  EXPECT_FALSE(server(0).usable());
}

TEST_F(DnsRefresherTest, KeepsTheLastGoodAddressWhenTheNameDisappears) {
  start("{ name = \"a\", address = \"gone.invalid:80\" }", "127.0.0.5 gone.invalid\n");
  ASSERT_TRUE(runUntil([&] { return server(0).hasAddr(); }));
  dir_.write("hosts", "127.0.0.1 sentinel.invalid\n");
  ASSERT_TRUE(waitPeriods(5));  // several rounds fail: no resolver knows a .invalid name
  EXPECT_EQ(text(server(0).addr()), "127.0.0.5:80");
  EXPECT_TRUE(server(0).usable());
  EXPECT_EQ(server(0).unresolvedReason(), "");
}

TEST_F(DnsRefresherTest, OneNameServesEveryServerUsingIt) {
  start(
      "{ name = \"a\", address = \"db.invalid:3306\" },\n"
      "{ name = \"b\", address = \"db.invalid:3307\" },\n"
      "{ name = \"c\", address = \"127.0.0.1:3308\" }",
      "127.0.0.8 db.invalid\n");
  ASSERT_TRUE(runUntil([&] { return server(0).hasAddr() && server(1).hasAddr(); }));
  EXPECT_EQ(text(server(0).addr()), "127.0.0.8:3306");
  EXPECT_EQ(text(server(1).addr()), "127.0.0.8:3307");
  EXPECT_EQ(text(server(2).addr()), "127.0.0.1:3308");
}

// dns_refresh = "0s": a name is looked up until it resolves (every kUnresolvedRetry), then
// never again.
TEST_F(DnsRefresherTest, ZeroRefreshRetriesUnresolvedNamesOnly) {
  start("{ name = \"a\", address = \"late.invalid:80\" }", "", "", "0s");
  ASSERT_TRUE(runUntil([&] { return !server(0).up.load(); }));
  dir_.write("hosts", "127.0.0.5 late.invalid\n");
  ASSERT_TRUE(runUntil([&] { return server(0).usable(); }));
  dir_.write("hosts", "127.0.0.6 late.invalid\n");
  ASSERT_TRUE(waitPeriods(15));  // 1.5 rounds of kUnresolvedRetry, had the rounds gone on
  EXPECT_EQ(text(server(0).addr()), "127.0.0.5:80");
}

TEST_F(DnsRefresherTest, StopEndsWithNothingLeftOnTheLoop) {
  start("{ name = \"a\", address = \"a.invalid:80\" }", "");
  uv_run(&loop_, UV_RUN_NOWAIT);  // a round may be in flight now
  // The fixture's destructor stops it and checks that the loop closes cleanly.
}

TEST(DnsRefresherNoNamesTest, StartsNothingWithoutHostNames) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Runtime rt(configWith("", "servers = [{ name = \"a\", address = \"10.0.0.1:80\" }]\n"));
  DnsRefresher refresher(&loop, rt);
  refresher.start();
  EXPECT_EQ(uv_loop_alive(&loop), 0);
  bool stopped = false;
  refresher.stop([&stopped] { stopped = true; });
  EXPECT_TRUE(stopped);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace tandem
