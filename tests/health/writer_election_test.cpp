// WriterElection: one writer per backend, moved only when it must be (or by the operator),
// never moved back by itself unless failback = "auto", remembered across restarts.
#include "health/writer_election.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace tandem {
namespace {

Config pairConfig(const std::string& state_file = "", Failback failback = Failback::kManual) {
  Config c;
  c.global.state_file = state_file;
  BackendConfig writer;
  writer.name = "db";
  writer.role = Role::kWriter;
  writer.failback = failback;
  writer.failback_after = Millis(30);
  BackendConfig reader;
  reader.name = "db-read";
  reader.role = Role::kReader;
  reader.max_lag = Millis(10000);
  for (int i = 1; i <= 2; ++i) {
    ServerConfig s;
    s.name = "db" + std::to_string(i);
    s.address = HostPort{"127.0.0.1", static_cast<uint16_t>(13305 + i)};
    writer.servers.push_back(s);
    reader.servers.push_back(s);
  }
  c.backends = {writer, reader};
  return c;
}

void setReplication(Server& s, bool io, bool sql, int64_t lag, bool applied = true) {
  std::lock_guard<std::mutex> lock(s.check_mutex);
  s.replication.known = true;
  s.replication.is_replica = true;
  s.replication.io_running = io;
  s.replication.sql_running = sql;
  s.replication.lag_seconds = lag;
  s.replication.applied_all_received = applied;
}

class WriterElectionTest : public testing::Test {
 protected:
  void SetUp() override { uv_loop_init(&loop_); }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_NOWAIT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  uv_loop_t loop_;
};

TEST_F(WriterElectionTest, FirstServerLeadsAtStart) {
  Runtime rt(pairConfig());
  WriterElection e(&loop_, rt);
  e.start();
  Backend& db = *rt.findBackend("db");
  EXPECT_EQ(db.writer.load(), db.findServer("db1"));
  EXPECT_EQ(rt.findBackend("db-read")->writer_source, &db);
  e.stop();
}

TEST_F(WriterElectionTest, DownWriterMovesToTheOtherAndClosesItsSessions) {
  Runtime rt(pairConfig());
  WriterElection e(&loop_, rt);
  e.start();
  Backend& db = *rt.findBackend("db");
  Server* db1 = db.findServer("db1");
  uint32_t epoch = db1->shutdown_epoch.load();
  db1->up.store(false);
  e.evaluate();
  EXPECT_EQ(db.writer.load(), db.findServer("db2"));
  EXPECT_NE(db1->shutdown_epoch.load(), epoch) << "sessions on the old writer must close";
  e.stop();
}

TEST_F(WriterElectionTest, ManualFailbackKeepsTheNewWriter) {
  Runtime rt(pairConfig());
  WriterElection e(&loop_, rt);
  e.start();
  Backend& db = *rt.findBackend("db");
  Server* db1 = db.findServer("db1");
  db1->up.store(false);
  e.evaluate();
  db1->up.store(true);
  setReplication(*db1, true, true, 0);
  e.evaluate();
  EXPECT_EQ(db.writer.load(), db.findServer("db2"));
  e.stop();
}

TEST_F(WriterElectionTest, AutoFailbackWaitsUntilCaughtUpForTheConfiguredTime) {
  Runtime rt(pairConfig("", Failback::kAuto));
  WriterElection e(&loop_, rt);
  e.start();
  Backend& db = *rt.findBackend("db");
  Server* db1 = db.findServer("db1");
  db1->up.store(false);
  e.evaluate();
  ASSERT_EQ(db.writer.load(), db.findServer("db2"));

  db1->up.store(true);
  setReplication(*db1, true, true, 5);  // back, but lagging: stays away
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    uv_update_time(&loop_);
    e.evaluate();
  }
  EXPECT_EQ(db.writer.load(), db.findServer("db2"));

  setReplication(*db1, true, true, 0);
  e.evaluate();  // caught up from now on
  EXPECT_EQ(db.writer.load(), db.findServer("db2")) << "must hold failback_after first";
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  uv_update_time(&loop_);
  e.evaluate();
  EXPECT_EQ(db.writer.load(), db1);
  e.stop();
}

TEST_F(WriterElectionTest, BrokenReplicaIsNotElectedUnlessAllowedAndAlone) {
  Runtime rt(pairConfig());
  WriterElection e(&loop_, rt);
  e.start();
  Backend& db = *rt.findBackend("db");
  Server* db1 = db.findServer("db1");
  Server* db2 = db.findServer("db2");
  db2->replication_broken.store(true);
  db1->up.store(false);
  e.evaluate();
  EXPECT_EQ(db.writer.load(), db1) << "a broken replica must not take the role";
  e.stop();

  Config allowed = pairConfig();
  allowed.backends[0].allow_broken_replica_failover = true;
  Runtime rt2(allowed);
  WriterElection e2(&loop_, rt2);
  e2.start();
  Backend& db_b = *rt2.findBackend("db");
  db_b.findServer("db2")->replication_broken.store(true);
  db_b.findServer("db1")->up.store(false);
  e2.evaluate();
  EXPECT_EQ(db_b.writer.load(), db_b.findServer("db2"));
  e2.stop();
}

TEST_F(WriterElectionTest, BrokenWriterKeepsTheRole) {
  Runtime rt(pairConfig());
  WriterElection e(&loop_, rt);
  e.start();
  Backend& db = *rt.findBackend("db");
  db.findServer("db1")->replication_broken.store(true);
  e.evaluate();
  EXPECT_EQ(db.writer.load(), db.findServer("db1"));
  e.stop();
}

TEST_F(WriterElectionTest, PrefersTheCandidateThatAppliedEverything) {
  Config c = pairConfig();
  ServerConfig db3;
  db3.name = "db3";
  db3.address = HostPort{"127.0.0.1", 13309};
  c.backends[0].servers.push_back(db3);
  Runtime rt(c);
  Backend& db = *rt.findBackend("db");
  setReplication(*db.findServer("db2"), true, true, 0, false);
  setReplication(*db.findServer("db3"), true, true, 3, true);
  EXPECT_EQ(election::bestCandidate(db, db.findServer("db1")), db.findServer("db3"));
  setReplication(*db.findServer("db2"), true, true, 0, true);
  EXPECT_EQ(election::bestCandidate(db, db.findServer("db1")), db.findServer("db2"));
}

TEST_F(WriterElectionTest, StateFileKeepsTheWriterAcrossRestarts) {
  char path[] = "/tmp/tandem-state-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    Runtime rt(pairConfig(path));
    WriterElection e(&loop_, rt);
    e.start();
    rt.findBackend("db")->findServer("db1")->up.store(false);
    e.evaluate();
    e.stop();
    uv_run(&loop_, UV_RUN_NOWAIT);
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("db db2"), std::string::npos) << text.str();
  {
    Runtime rt(pairConfig(path));  // a restart: db1 is fine again, db2 stays the writer
    WriterElection e(&loop_, rt);
    e.start();
    Backend& db = *rt.findBackend("db");
    EXPECT_EQ(db.writer.load(), db.findServer("db2"));
    e.stop();
    uv_run(&loop_, UV_RUN_NOWAIT);
  }
  std::remove(path);
}

TEST_F(WriterElectionTest, OperatorSwitchChecksTheTarget) {
  Runtime rt(pairConfig());
  WriterElection e(&loop_, rt);
  e.start();
  Backend& db = *rt.findBackend("db");
  std::string why;
  EXPECT_TRUE(e.setWriter(db, *db.findServer("db2"), &why)) << why;
  EXPECT_EQ(db.writer.load(), db.findServer("db2"));
  db.findServer("db1")->up.store(false);
  EXPECT_FALSE(e.setWriter(db, *db.findServer("db1"), &why));
  EXPECT_NE(why.find("not UP"), std::string::npos) << why;
  Backend& reader = *rt.findBackend("db-read");
  EXPECT_FALSE(e.setWriter(reader, *reader.findServer("db1"), &why));
  e.stop();
}

TEST_F(WriterElectionTest, ReadersLeaveThePoolWhenLaggingOrBroken) {
  Runtime rt(pairConfig());
  WriterElection e(&loop_, rt);
  e.start();
  Backend& reader = *rt.findBackend("db-read");
  Server* r2 = reader.findServer("db2");
  setReplication(*r2, true, true, 42);
  e.evaluate();
  EXPECT_FALSE(r2->reads_ok.load()) << "lag 42s > max_lag 10s";
  setReplication(*r2, true, true, 1);
  e.evaluate();
  EXPECT_TRUE(r2->reads_ok.load());
  setReplication(*r2, true, false, -1);  // SQL thread stopped: lag unknown
  e.evaluate();
  EXPECT_FALSE(r2->reads_ok.load());
  e.stop();
}

}  // namespace
}  // namespace tandem
