#include "core/duration.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

constexpr int64_t kDayMs = int64_t{24} * 3600 * 1000;

TEST(DurationTest, ParsesEveryUnit) {
  EXPECT_EQ(parseDuration("250ms"), Millis(250));
  EXPECT_EQ(parseDuration("2s"), Millis(2000));
  EXPECT_EQ(parseDuration("1m"), Millis(60000));
  EXPECT_EQ(parseDuration("1h"), Millis(3600 * 1000));
  EXPECT_EQ(parseDuration("1d"), Millis(kDayMs));
  EXPECT_EQ(parseDuration("0ms"), Millis(0));
  EXPECT_EQ(parseDuration("0s"), Millis(0));
  EXPECT_EQ(parseDuration("007s"), Millis(7000));
}

TEST(DurationTest, RefusesMalformedText) {
  for (const char* bad : {"", "2", "ms", "s", "2x", "2 s", " 2s", "2s ", "2S", "2MS", "1.5s", "-1s",
                          "+1s", "2sec", "2ms2", "1h30m", "0x10s", "１s"}) {
    EXPECT_EQ(parseDuration(bad), std::nullopt) << '"' << bad << '"';
  }
}

TEST(DurationTest, RefusesMoreThanThirtyDays) {
  EXPECT_EQ(parseDuration("30d"), Millis(30 * kDayMs));
  EXPECT_EQ(parseDuration("720h"), Millis(30 * kDayMs));
  EXPECT_EQ(parseDuration("2592000000ms"), Millis(30 * kDayMs));
  EXPECT_EQ(parseDuration("2592000001ms"), std::nullopt);
  EXPECT_EQ(parseDuration("31d"), std::nullopt);
  EXPECT_EQ(parseDuration("721h"), std::nullopt);
  EXPECT_EQ(parseDuration("43201m"), std::nullopt);
}

// Digits far past int64 must be refused, not wrapped around into a small positive value.
TEST(DurationTest, RefusesNumbersThatWouldOverflow) {
  EXPECT_EQ(parseDuration("99999999999999999999999999ms"), std::nullopt);
  EXPECT_EQ(parseDuration("18446744073709551617ms"), std::nullopt);  // 2^64 + 1
  EXPECT_EQ(parseDuration("9223372036854775807d"), std::nullopt);    // INT64_MAX days
  EXPECT_EQ(parseDuration("2592000000d"), std::nullopt);             // ms limit, but in days
}

TEST(DurationTest, FormatsWithTheLargestExactUnit) {
  EXPECT_EQ(formatDuration(Millis(0)), "0ms");
  EXPECT_EQ(formatDuration(Millis(1)), "1ms");
  EXPECT_EQ(formatDuration(Millis(1500)), "1500ms");
  EXPECT_EQ(formatDuration(Millis(2000)), "2s");
  EXPECT_EQ(formatDuration(Millis(90000)), "90s");
  EXPECT_EQ(formatDuration(Millis(60000)), "1m");
  EXPECT_EQ(formatDuration(Millis(3600 * 1000)), "1h");
  EXPECT_EQ(formatDuration(Millis(36 * 3600 * 1000)), "36h");
  EXPECT_EQ(formatDuration(Millis(kDayMs)), "1d");
  EXPECT_EQ(formatDuration(Millis(30 * kDayMs)), "30d");
}

TEST(DurationTest, FormatThenParseRoundTrips) {
  for (int64_t ms : {int64_t{1}, int64_t{999}, int64_t{1001}, int64_t{60000}, int64_t{61000},
                     int64_t{3600 * 1000}, 7 * kDayMs, 30 * kDayMs}) {
    EXPECT_EQ(parseDuration(formatDuration(Millis(ms))), Millis(ms)) << ms;
  }
}

}  // namespace
}  // namespace tandem
