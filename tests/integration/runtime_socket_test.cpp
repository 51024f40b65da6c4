// The runtime API on the real binary: tandem with an [admin] socket, driven over a real
// UNIX socket as HAProxy scripts drive HAProxy's stats socket (and through socat itself
// when it is installed).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace tandem::it {
namespace {

// One client connection to the runtime socket.
class SocketClient {
 public:
  explicit SocketClient(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~SocketClient() { ::close(fd_); }
  SocketClient(const SocketClient&) = delete;
  SocketClient& operator=(const SocketClient&) = delete;

  bool connected() const { return connected_; }
  bool send(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  // Reads until the peer closes (the answer of a non-interactive command), or until `until`
  // ends what was read; nullopt on timeout.
  std::optional<std::string> read(const std::string& until = "") {
    std::string out;
    auto deadline = Clock::now() + kIoTimeout;
    for (;;) {
      if (!until.empty() && out.size() >= until.size() &&
          out.compare(out.size() - until.size(), until.size(), until) == 0) {
        return out;
      }
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      pollfd p{fd_, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
        return std::nullopt;
      }
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        return until.empty() ? std::optional<std::string>(out) : std::nullopt;
      }
      out.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class RuntimeSocketTest : public IntegrationTest {
 protected:
  // Two name servers s1 and s2 behind round-robin on one worker, no checks, and the runtime
  // socket only (no admin HTTP listener).
  void start() {
    s1_ = std::make_unique<TestServer>(nameHandler("s1"));
    s2_ = std::make_unique<TestServer>(nameHandler("s2"));
    spec_ = ConfigSpec::simpleTcp({{"s1", s1_->port()}, {"s2", s2_->port()}});
    spec_.threads = 1;  // one round-robin: the shares below are exact
    socket_path_ = (dir_.path() / "admin.sock").string();
    spec_.extra = "[admin]\nsocket = \"" + socket_path_ + "\"\nlisten = \"\"\n";
    ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
    ASSERT_TRUE(eventually([&] { return SocketClient(socket_path_).connected(); }, kStartTimeout))
        << "the runtime socket never accepted";
  }

  // One command the way `echo CMD | socat stdio SOCKET` sends it: the answer up to the close.
  std::string command(const std::string& line) {
    SocketClient client(socket_path_);
    EXPECT_TRUE(client.connected());
    EXPECT_TRUE(client.send(line + "\n"));
    std::optional<std::string> answer = client.read();
    EXPECT_TRUE(answer) << "no answer (or no close) for: " << line;
    return answer.value_or("");
  }

  // The CSV row of backend "be", server `name`, split on commas, and the header's columns.
  std::vector<std::string> statRow(const std::string& name) {
    std::istringstream csv(command("show stat"));
    std::string line;
    while (std::getline(csv, line)) {
      if (line.rfind("be," + name + ",", 0) == 0) {
        return split(line);
      }
    }
    return {};
  }
  size_t column(const std::string& name) {
    std::istringstream csv(command("show stat"));
    std::string header;
    std::getline(csv, header);
    std::vector<std::string> names = split(header.substr(2));
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) {
        return i;
      }
    }
    ADD_FAILURE() << "no column " << name;
    return 0;
  }
  static std::vector<std::string> split(const std::string& row) {
    std::vector<std::string> fields;
    std::istringstream in(row);
    std::string field;
    while (std::getline(in, field, ',')) {
      fields.push_back(field);
    }
    return fields;
  }

  std::unique_ptr<TestServer> s1_;
  std::unique_ptr<TestServer> s2_;
  ConfigSpec spec_;
  std::string socket_path_;
};

TEST_F(RuntimeSocketTest, ShowInfoAndShowStat) {
  ASSERT_NO_FATAL_FAILURE(start());
  std::string info = command("show info");
  EXPECT_EQ(info.rfind("Name: tandem\n", 0), 0U) << info;
  EXPECT_NE(info.find("\nPid: " + std::to_string(tandem().pid()) + "\n"), std::string::npos)
      << info;
  EXPECT_EQ(info.substr(info.size() - 2), "\n\n");  // HAProxy's empty line after the answer

  std::string stat = command("show stat");
  EXPECT_EQ(stat.rfind("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,", 0), 0U) << stat;
  EXPECT_NE(stat.find("\nbe,s1,"), std::string::npos);
  EXPECT_NE(stat.find("\nbe,s2,"), std::string::npos);
  EXPECT_EQ(stat.substr(stat.size() - 2), "\n\n");

  EXPECT_EQ(command("show servers state be").rfind("1\n# be_id be_name srv_id srv_name", 0), 0U);
}

TEST_F(RuntimeSocketTest, DrainStopsNewSessionsToThatServer) {
  ASSERT_NO_FATAL_FAILURE(start());
  std::vector<std::string> before = askNames(spec_.frontendPort(), 4);
  EXPECT_EQ(countOf(before, "s1"), 2);
  EXPECT_EQ(countOf(before, "s2"), 2);

  size_t mark = tandem().logMark();
  EXPECT_EQ(command("set server be/s1 state drain"), "\n");
  EXPECT_TRUE(tandem().waitForLog("server be/s1 is going DRAIN by socket", kStateTimeout, mark));
  std::vector<std::string> row = statRow("s1");
  ASSERT_FALSE(row.empty());
  EXPECT_EQ(row.at(column("status")), "DRAIN");

  std::vector<std::string> drained = askNames(spec_.frontendPort(), 6);
  EXPECT_EQ(countOf(drained, "s2"), 6);

  EXPECT_EQ(command("set server be/s1 state ready"), "\n");
  EXPECT_EQ(statRow("s1").at(column("status")), "no check");  // READY, without checks
  std::vector<std::string> after = askNames(spec_.frontendPort(), 4);
  EXPECT_GE(countOf(after, "s1"), 1);
  EXPECT_GE(countOf(after, "s2"), 1);
}

TEST_F(RuntimeSocketTest, BadCommandsAnswerOneErrorAndChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(start());
  std::string unknown = command("frobnicate be/s1");
  EXPECT_EQ(unknown.rfind("Unknown command. Please enter one of the following commands only:\n", 0),
            0U)
      << unknown;
  EXPECT_NE(unknown.find("  set weight <bk>/<srv>"), std::string::npos);

  EXPECT_EQ(command("set weight be/s1 300"),
            "Absolute weight can only be between 0 and 256 inclusive.\n\n");
  EXPECT_EQ(command("set weight be/s9 3"), "No such server.\n\n");
  EXPECT_EQ(command("set server nosuch/s1 state drain"), "No such backend.\n\n");
  EXPECT_EQ(command("disable server s1"), "Require 'backend/server'.\n\n");
  EXPECT_EQ(command("get weight be/s1"), "1 (initial 1)\n\n");
  EXPECT_EQ(statRow("s1").at(column("weight")), "1");
  EXPECT_EQ(statRow("s1").at(column("status")), "no check");  // READY, without checks

  EXPECT_EQ(command("set weight be/s1 0"), "\n");
  EXPECT_EQ(statRow("s1").at(column("status")), "DRAIN");  // weight 0 shows as DRAIN
  std::vector<std::string> names = askNames(spec_.frontendPort(), 4);
  EXPECT_EQ(countOf(names, "s2"), 4);
}

TEST_F(RuntimeSocketTest, PromptModeKeepsTheConnection) {
  ASSERT_NO_FATAL_FAILURE(start());
  SocketClient client(socket_path_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("prompt\n"));
  EXPECT_EQ(client.read("> "), "\n> ");
  ASSERT_TRUE(client.send("get weight be/s2; disable server be/s2\n"));
  EXPECT_EQ(client.read("\n\n> \n> "), "1 (initial 1)\n\n> \n> ");
  ASSERT_TRUE(client.send("get weight be/s2\n"));
  EXPECT_EQ(client.read("\n\n> "), "1 (initial 1)\n\n> ");
  ASSERT_TRUE(client.send("quit\n"));
  EXPECT_EQ(client.read(), "");
  EXPECT_EQ(statRow("s2").at(column("status")), "MAINT");
}

TEST_F(RuntimeSocketTest, SocatScriptsWork) {
  // scripts/install-deps.sh installs socat: without it this fails, never skips.
  if (std::system("command -v socat >/dev/null 2>&1") != 0) {
    FAIL() << "socat is not installed (scripts/install-deps.sh installs it)";
  }
  ASSERT_NO_FATAL_FAILURE(start());
  std::string cmd =
      "echo 'disable server be/s1; get weight be/s1' | socat stdio UNIX-CONNECT:" + socket_path_;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) {
    out.append(buf, n);
  }
  EXPECT_EQ(::pclose(pipe), 0);
  EXPECT_EQ(out, "\n1 (initial 1)\n\n");
  EXPECT_EQ(statRow("s1").at(column("status")), "MAINT");
}

TEST_F(RuntimeSocketTest, TheSocketIsOwnerOnlyAndRemovedAtExit) {
  ASSERT_NO_FATAL_FAILURE(start());
  struct stat st {};
  ASSERT_EQ(::stat(socket_path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);

  ASSERT_TRUE(tandem().sendSignal(SIGTERM));
  std::optional<ExitStatus> status = tandem().waitExit(kStateTimeout);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->ok()) << status->str();
  EXPECT_FALSE(std::filesystem::exists(socket_path_));
}

TEST_F(RuntimeSocketTest, ASecondTandemDoesNotTakeALiveSocket) {
  ASSERT_NO_FATAL_FAILURE(start());
  ConfigSpec other = ConfigSpec::simpleTcp({{"s1", s1_->port()}});
  other.extra = spec_.extra;
  std::string path = dir_.write("other.toml", other.toml());
  RunResult run = runTandem({"-c", path});
  ASSERT_TRUE(run.status) << "the second tandem did not exit";
  EXPECT_FALSE(run.status->ok());
  EXPECT_NE(run.err.find("another process is listening on " + socket_path_), std::string::npos)
      << run.err;
  // The first one still answers.
  EXPECT_EQ(command("get weight be/s1"), "1 (initial 1)\n\n");
}

}  // namespace
}  // namespace tandem::it
