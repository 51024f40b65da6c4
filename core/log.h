// Process-wide logging: one line per event on stderr, with a UTC timestamp and a level.
//
//   2026-12-03T13:01:02.345Z [warning] server db/db1 is DOWN, reason: connection refused, ...
//
// Log state changes, not traffic: nothing on the request path logs per request except
// through a rate-limited helper. Lines from different threads never interleave.
#pragma once

#include <cstdarg>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

enum class LogLevel { kDebug = 0, kInfo, kNotice, kWarning, kError };

std::optional<LogLevel> parseLogLevel(std::string_view name);
const char* logLevelName(LogLevel level);

void setLogLevel(LogLevel level);
bool logEnabled(LogLevel level);

// printf-style; the line gets its timestamp, level and trailing newline here.
void logf(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// The most recent lines (kLogRingSize), kept in memory for the admin interface's log view.
// Every line written to stderr is kept; seq numbers them from 1 so that a reader can ask
// for what came after the last line it saw.
struct LogRecord {
  uint64_t seq = 0;
  int64_t time_ms = 0;  // wall clock, ms since the epoch
  LogLevel level = LogLevel::kInfo;
  std::string text;  // the message, without timestamp, level or newline
};
constexpr size_t kLogRingSize = 1000;
// Lines with seq > after, oldest first, at most `max` of them (the newest ones). Thread-safe.
std::vector<LogRecord> recentLogRecords(uint64_t after, size_t max);

#define TLOG_DEBUG(...) ::tandem::logf(::tandem::LogLevel::kDebug, __VA_ARGS__)
#define TLOG_INFO(...) ::tandem::logf(::tandem::LogLevel::kInfo, __VA_ARGS__)
#define TLOG_NOTICE(...) ::tandem::logf(::tandem::LogLevel::kNotice, __VA_ARGS__)
#define TLOG_WARN(...) ::tandem::logf(::tandem::LogLevel::kWarning, __VA_ARGS__)
#define TLOG_ERROR(...) ::tandem::logf(::tandem::LogLevel::kError, __VA_ARGS__)

}  // namespace tandem
