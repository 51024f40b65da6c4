// The runtime commands over a real model and the real operations: a Runtime from a config
// string, a Checker and a WriterElection on a uv loop, ControlOperations over them. The
// loop never runs a check here (it only runs to close the handles at the end), so the
// servers' health stays what each test sets.
#include "admin/commands.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/log.h"
#include "health/checker.h"
#include "health/control_operations.h"
#include "health/writer_election.h"

namespace tandem {
namespace {

constexpr const char* kConfig = R"(
[[backend]]
name = "web"
mode = "http"
check = { interval = "10s" }
servers = [
  { name = "web1", address = "127.0.0.1:9", weight = 10 },
  { name = "web2", address = "127.0.0.1:9", check = false },
]

[[backend]]
name = "db"
role = "writer"
check = { type = "mysql", interval = "10s" }
servers = [
  { name = "db1", address = "127.0.0.1:9" },
  { name = "db2", address = "127.0.0.1:9" },
]

[[frontend]]
name = "fe"
mode = "http"
listen = "127.0.0.1:9"
backend = "web"
)";

// Everything a server shows to the commands, to prove that a refused command changed none.
struct ServerFacts {
  AdminState admin;
  int weight;
  bool up;
  bool check_enabled;
  bool operator==(const ServerFacts&) const = default;
};

class CommandsTest : public testing::Test {
 protected:
  void SetUp() override {
    setLogLevel(LogLevel::kInfo);
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    runtime_ = std::make_unique<Runtime>(loadConfigString(kConfig, "commands_test.toml"));
    checker_ = std::make_unique<Checker>(&loop_, *runtime_);
    election_ = std::make_unique<WriterElection>(&loop_, *runtime_);
    operations_ = std::make_unique<ControlOperations>(*runtime_, *checker_, *election_);
    checker_->start();
    election_->start();
    process_.pid = 4242;
    process_.version = "test";
    view_ = std::make_unique<StatsView>(StatsView{*runtime_, process_, nullptr, 0});
    context_ =
        std::make_unique<CommandContext>(CommandContext{*runtime_, *operations_, *view_, "socket"});
  }

  void TearDown() override {
    election_->stop();
    checker_->stop(nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  CommandResult run(std::string_view line) { return runCommand(line, *context_); }

  Server& server(const std::string& backend, const std::string& name) {
    return *runtime_->findBackend(backend)->findServer(name);
  }

  ServerFacts facts(const std::string& backend, const std::string& name) {
    Server& s = server(backend, name);
    std::lock_guard<std::mutex> lock(s.check_mutex);
    return ServerFacts{s.admin.load(), s.weight.load(), s.up.load(), s.check_info.enabled};
  }

  // Every server's facts, in order, for "nothing changed anywhere".
  std::vector<ServerFacts> allFacts() {
    std::vector<ServerFacts> all;
    for (const auto& b : runtime_->backends()) {
      for (const auto& s : b->servers()) {
        all.push_back(facts(b->name(), s->name()));
      }
    }
    return all;
  }

  uint64_t lastLogSeq() {
    std::vector<LogRecord> records = recentLogRecords(0, 1);
    return records.empty() ? 0 : records.back().seq;
  }

  std::vector<std::string> logSince(uint64_t seq) {
    std::vector<std::string> lines;
    for (const LogRecord& r : recentLogRecords(seq, kLogRingSize)) {
      lines.push_back(r.text);
    }
    return lines;
  }

  uv_loop_t loop_{};
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<Checker> checker_;
  std::unique_ptr<WriterElection> election_;
  std::unique_ptr<ControlOperations> operations_;
  ProcessInfo process_;
  std::unique_ptr<StatsView> view_;
  std::unique_ptr<CommandContext> context_;
};

TEST_F(CommandsTest, HelpListsEveryCommand) {
  CommandResult r = run("help");
  EXPECT_TRUE(r.ok);
  for (const char* command :
       {"show info", "show stat", "show servers state", "show writer", "disable server",
        "enable server", "set server", "set weight", "get weight", "disable health",
        "enable health", "set writer", "prompt", "quit"}) {
    EXPECT_NE(r.output.find("  " + std::string(command)), std::string::npos) << command;
  }
}

TEST_F(CommandsTest, UnknownCommandAnswersTheHelp) {
  std::vector<ServerFacts> before = allFacts();
  for (const char* line : {"frob", "show", "set", "set foo web/web1", "enable", "show stats"}) {
    CommandResult r = run(line);
    EXPECT_FALSE(r.ok) << line;
    EXPECT_EQ(
        r.output.rfind("Unknown command. Please enter one of the following commands only:\n", 0),
        0U)
        << line;
    EXPECT_NE(r.output.find("  set weight <bk>/<srv>"), std::string::npos);
  }
  EXPECT_EQ(allFacts(), before);
}

TEST_F(CommandsTest, EmptyLineAnswersNothing) {
  CommandResult r = run("   ");
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.output, "");
}

TEST_F(CommandsTest, ShowInfoAndShowStatUseTheRenderers) {
  CommandResult info = run("show info");
  EXPECT_TRUE(info.ok);
  EXPECT_EQ(info.output, renderShowInfo(*view_));
  EXPECT_NE(info.output.find("Pid: 4242"), std::string::npos);

  CommandResult stat = run("show stat");
  EXPECT_TRUE(stat.ok);
  EXPECT_EQ(stat.output, renderStatsCsv(*view_));
  EXPECT_EQ(stat.output.rfind("# pxname,svname,", 0), 0U);
}

// Rows of a CSV answer, as "pxname/svname".
std::vector<std::string> rowNames(const std::string& csv) {
  std::vector<std::string> names;
  size_t start = csv.find('\n') + 1;  // past the header
  while (start < csv.size()) {
    size_t end = csv.find('\n', start);
    std::string row = csv.substr(start, end - start);
    start = end + 1;
    if (row.empty()) {
      continue;
    }
    size_t first = row.find(',');
    size_t second = row.find(',', first + 1);
    names.push_back(row.substr(0, first) + "/" + row.substr(first + 1, second - first - 1));
  }
  return names;
}

TEST_F(CommandsTest, ShowStatFiltersAsHaproxy) {
  // Type 4: servers only; of backend "web" by name.
  EXPECT_EQ(rowNames(run("show stat web 4 -1").output),
            (std::vector<std::string>{"web/web1", "web/web2"}));
  // Types 1 + 2 of every proxy: the frontend row and the BACKEND rows.
  EXPECT_EQ(rowNames(run("show stat -1 3 -1").output),
            (std::vector<std::string>{"fe/FRONTEND", "web/BACKEND", "db/BACKEND"}));
  // sid 2 filters servers only.
  EXPECT_EQ(rowNames(run("show stat db 6 2").output),
            (std::vector<std::string>{"db/db2", "db/BACKEND"}));

  ASSERT_TRUE(run("disable server web/web1").ok);
  std::vector<std::string> rows = rowNames(run("show stat no-maint").output);
  EXPECT_EQ(std::count(rows.begin(), rows.end(), "web/web1"), 0);
  EXPECT_EQ(std::count(rows.begin(), rows.end(), "web/web2"), 1);

  CommandResult bad = run("show stat nosuch 4 -1");
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.output, "No such proxy.\n");
  EXPECT_FALSE(run("show stat -1 4").ok);
  EXPECT_FALSE(run("show stat -1 x -1").ok);
  EXPECT_FALSE(run("show stat json").ok);
}

TEST_F(CommandsTest, ShowServersState) {
  CommandResult all = run("show servers state");
  EXPECT_TRUE(all.ok);
  EXPECT_EQ(all.output.rfind("1\n", 0), 0U);
  EXPECT_NE(all.output.find("web1"), std::string::npos);
  EXPECT_NE(all.output.find("db2"), std::string::npos);

  CommandResult one = run("show servers state db");
  EXPECT_TRUE(one.ok);
  EXPECT_EQ(one.output.find("web1"), std::string::npos);
  EXPECT_NE(one.output.find("db1"), std::string::npos);

  CommandResult bad = run("show servers state nosuch");
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.output, "Can't find backend.\n");
}

TEST_F(CommandsTest, ShowWriter) {
  CommandResult r = run("show writer db");
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.output, "db/db1\n");

  runtime_->findBackend("db")->writer.store(nullptr);
  server("db", "db1").up.store(false);
  server("db", "db2").admin.store(AdminState::kMaint);
  r = run("show writer db");
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.output, "No writer elected: db1 is DOWN, db2 is in MAINT.\n");

  EXPECT_EQ(run("show writer web").output, "Backend web has no writer role.\n");
  EXPECT_EQ(run("show writer nosuch").output, "No such backend.\n");
  EXPECT_EQ(run("show writer").output, "Require 'backend'.\n");
}

TEST_F(CommandsTest, SetServerStateAndTheOldForms) {
  uint64_t seq = lastLogSeq();
  CommandResult r = run("set server web/web1 state drain");
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.output, "");
  EXPECT_EQ(server("web", "web1").admin.load(), AdminState::kDrain);
  std::vector<std::string> log = logSince(seq);
  ASSERT_EQ(log.size(), 1U);
  EXPECT_EQ(log[0].rfind("server web/web1 is going DRAIN by socket, 1 active", 0), 0U) << log[0];

  EXPECT_TRUE(run("set server web/web1 state maint").ok);
  EXPECT_EQ(server("web", "web1").admin.load(), AdminState::kMaint);
  EXPECT_TRUE(run("set server web/web1 state ready").ok);
  EXPECT_EQ(server("web", "web1").admin.load(), AdminState::kReady);

  EXPECT_TRUE(run("disable server web/web2").ok);
  EXPECT_EQ(server("web", "web2").admin.load(), AdminState::kMaint);
  EXPECT_TRUE(run("enable server web/web2").ok);
  EXPECT_EQ(server("web", "web2").admin.load(), AdminState::kReady);

  // Already READY: accepted, nothing logged.
  seq = lastLogSeq();
  EXPECT_TRUE(run("enable server web/web2").ok);
  EXPECT_TRUE(logSince(seq).empty());
}

TEST_F(CommandsTest, BadServerArgumentsChangeNothing) {
  std::vector<ServerFacts> before = allFacts();
  uint64_t seq = lastLogSeq();
  struct Case {
    const char* line;
    const char* answer;
  };
  for (const Case& c : {
           Case{"disable server web", "Require 'backend/server'.\n"},
           Case{"disable server", "Require 'backend/server'.\n"},
           Case{"disable server /web1", "Require 'backend/server'.\n"},
           Case{"disable server web/", "Require 'backend/server'.\n"},
           Case{"disable server nosuch/web1", "No such backend.\n"},
           Case{"disable server web/nosuch", "No such server.\n"},
           Case{"enable server web/web9", "No such server.\n"},
           Case{"disable server web/web1 now", "Too many arguments after 'web/web1'.\n"},
           Case{"set server web/web1 state",
                "'set server <srv> state' expects 'ready', "
                "'drain' and 'maint'.\n"},
           Case{"set server web/web1 state stop",
                "'set server <srv> state' expects 'ready', "
                "'drain' and 'maint'.\n"},
           Case{"set server web/web1 state drain now",
                "'set server <srv> state' expects "
                "'ready', 'drain' and 'maint'.\n"},
           Case{"set server web/web1", "usage: set server <backend>/<server> state | weight\n"},
           Case{"set server web/web1 addr 1.2.3.4",
                "usage: set server <backend>/<server> state | weight\n"},
           Case{"set server nosuch/x state drain", "No such backend.\n"},
           Case{"disable health web/web2", "server web/web2 has no health check\n"},
           Case{"enable health web", "Require 'backend/server'.\n"},
       }) {
    CommandResult r = run(c.line);
    EXPECT_FALSE(r.ok) << c.line;
    EXPECT_EQ(r.output, c.answer) << c.line;
  }
  EXPECT_EQ(allFacts(), before);
  EXPECT_TRUE(logSince(seq).empty());
}

TEST_F(CommandsTest, SetWeightAbsoluteAndRelative) {
  uint64_t seq = lastLogSeq();
  EXPECT_TRUE(run("set weight web/web1 20").ok);
  EXPECT_EQ(server("web", "web1").weight.load(), 20);
  std::vector<std::string> log = logSince(seq);
  ASSERT_EQ(log.size(), 1U);
  EXPECT_EQ(
      log[0].rfind("server web/web1 weight changed from 10 to 20 by socket (configured 10)", 0), 0U)
      << log[0];

  // Percentages are of the configured weight (10), capped at 256.
  EXPECT_TRUE(run("set weight web/web1 50%").ok);
  EXPECT_EQ(server("web", "web1").weight.load(), 5);
  EXPECT_TRUE(run("set server web/web1 weight 3000%").ok);
  EXPECT_EQ(server("web", "web1").weight.load(), 256);
  EXPECT_TRUE(run("set server web/web1 weight 0").ok);
  EXPECT_EQ(server("web", "web1").weight.load(), 0);
  EXPECT_EQ(run("get weight web/web1").output, "0 (initial 10)\n");
  EXPECT_TRUE(run("set weight web/web1 256").ok);
  EXPECT_EQ(run("get weight web/web1").output, "256 (initial 10)\n");
}

TEST_F(CommandsTest, BadWeightsChangeNothing) {
  ASSERT_TRUE(run("set weight web/web1 7").ok);
  std::vector<ServerFacts> before = allFacts();
  uint64_t seq = lastLogSeq();
  struct Case {
    const char* line;
    const char* answer;
  };
  for (const Case& c : {
           Case{"set weight web/web1 257",
                "Absolute weight can only be between 0 and 256 "
                "inclusive.\n"},
           Case{"set weight web/web1 -1",
                "Absolute weight can only be between 0 and 256 "
                "inclusive.\n"},
           Case{"set server web/web1 weight 99999999999999999999",
                "Invalid weight '99999999999999999999': expected <weight> or <weight%>.\n"},
           Case{"set weight web/web1 -5%", "Relative weight must be positive.\n"},
           Case{"set weight web/web1 abc",
                "Invalid weight 'abc': expected <weight> or "
                "<weight%>.\n"},
           Case{"set weight web/web1 5x", "Invalid weight '5x': expected <weight> or <weight%>.\n"},
           Case{"set weight web/web1 %", "Invalid weight '%': expected <weight> or <weight%>.\n"},
           Case{"set weight web/web1", "Require <weight> or <weight%>.\n"},
           Case{"set weight web/web1 1 2", "Require <weight> or <weight%>.\n"},
           Case{"set server web/web1 weight", "Require <weight> or <weight%>.\n"},
           Case{"set weight web 5", "Require 'backend/server'.\n"},
           Case{"set weight nosuch/web1 5", "No such backend.\n"},
           Case{"set weight web/nosuch 5", "No such server.\n"},
       }) {
    CommandResult r = run(c.line);
    EXPECT_FALSE(r.ok) << c.line;
    EXPECT_EQ(r.output, c.answer) << c.line;
  }
  EXPECT_EQ(allFacts(), before);
  EXPECT_TRUE(logSince(seq).empty());
}

TEST_F(CommandsTest, DisableHealthKeepsADownServerUpAndEnableResumes) {
  Server& web1 = server("web", "web1");
  web1.up.store(false);  // as if its checks had failed
  EXPECT_TRUE(run("disable health web/web1").ok);
  EXPECT_TRUE(web1.up.load());
  EXPECT_FALSE(facts("web", "web1").check_enabled);
  // Twice: accepted, no change.
  uint64_t seq = lastLogSeq();
  EXPECT_TRUE(run("disable health web/web1").ok);
  EXPECT_TRUE(logSince(seq).empty());

  EXPECT_TRUE(run("enable health web/web1").ok);
  EXPECT_TRUE(facts("web", "web1").check_enabled);
  EXPECT_TRUE(web1.up.load());
}

TEST_F(CommandsTest, SetWriterMovesTheRoleOrSaysWhyNot) {
  Backend& db = *runtime_->findBackend("db");
  ASSERT_EQ(db.writer.load(), db.findServer("db1"));
  EXPECT_TRUE(run("set writer db/db2").ok);
  EXPECT_EQ(db.writer.load(), db.findServer("db2"));
  EXPECT_EQ(run("show writer db").output, "db/db2\n");

  db.findServer("db1")->up.store(false);
  CommandResult r = run("set writer db/db1");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.output, "server db/db1 cannot take the writer role: it is not UP and ready\n");
  EXPECT_EQ(db.writer.load(), db.findServer("db2"));

  r = run("set writer web/web1");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.output, "backend web has no writer role\n");
  EXPECT_EQ(run("set writer db/db9").output, "No such server.\n");
}

TEST_F(CommandsTest, SemicolonsRunEachCommandInOrder) {
  CommandResult r =
      run("set weight web/web1 3; get weight web/web1 ;set weight web/web1 999;"
          "get weight web/web1\n");
  EXPECT_FALSE(r.ok);  // one of them failed
  EXPECT_EQ(r.output,
            "3 (initial 10)\n"
            "Absolute weight can only be between 0 and 256 inclusive.\n"
            "3 (initial 10)\n");
}

TEST_F(CommandsTest, PromptAndQuitBelongToTheSocket) {
  EXPECT_FALSE(run("prompt").ok);
  EXPECT_FALSE(run("quit").ok);
}

}  // namespace
}  // namespace tandem
