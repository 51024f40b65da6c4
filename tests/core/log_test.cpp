// The in-memory ring of recent log lines that the admin page's log view reads.
#include "core/log.h"

#include <gtest/gtest.h>

#include <string>

namespace tandem {
namespace {

TEST(LogRingTest, KeepsLinesInOrderWithSequenceNumbers) {
  uint64_t before = 0;
  std::vector<LogRecord> all = recentLogRecords(0, kLogRingSize);
  if (!all.empty()) {
    before = all.back().seq;
  }
  TLOG_WARN("ring test %d", 1);
  TLOG_ERROR("ring test %s", "two");
  std::vector<LogRecord> got = recentLogRecords(before, 10);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].seq, before + 1);
  EXPECT_EQ(got[0].text, "ring test 1");
  EXPECT_EQ(got[0].level, LogLevel::kWarning);
  EXPECT_EQ(got[1].seq, before + 2);
  EXPECT_EQ(got[1].text, "ring test two");
  EXPECT_EQ(got[1].level, LogLevel::kError);
  EXPECT_GT(got[1].time_ms, 1700000000000);
  EXPECT_TRUE(recentLogRecords(before + 2, 10).empty());
}

TEST(LogRingTest, BoundedAndNewestFirstWhenLimited) {
  for (size_t i = 0; i < kLogRingSize + 50; ++i) {
    TLOG_NOTICE("flood %zu", i);
  }
  std::vector<LogRecord> all = recentLogRecords(0, kLogRingSize * 2);
  ASSERT_EQ(all.size(), kLogRingSize);
  EXPECT_EQ(all.back().text, "flood " + std::to_string(kLogRingSize + 49));
  std::vector<LogRecord> last3 = recentLogRecords(0, 3);
  ASSERT_EQ(last3.size(), 3u);
  EXPECT_EQ(last3[0].text, "flood " + std::to_string(kLogRingSize + 47));
  EXPECT_EQ(last3[2].text, "flood " + std::to_string(kLogRingSize + 49));
}

TEST(LogRingTest, DisabledLevelsAreNotKept) {
  setLogLevel(LogLevel::kWarning);
  uint64_t last = recentLogRecords(0, 1).empty() ? 0 : recentLogRecords(0, 1)[0].seq;
  TLOG_INFO("not kept");
  EXPECT_TRUE(recentLogRecords(last, 10).empty());
  setLogLevel(LogLevel::kInfo);
}

}  // namespace
}  // namespace tandem
