#include "core/log.h"

#include <sys/time.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>

namespace tandem {

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_write_mutex;

// Guarded by g_write_mutex.
std::deque<LogRecord> g_ring;
uint64_t g_seq = 0;

constexpr const char* kNames[] = {"debug", "info", "notice", "warning", "error"};

}  // namespace

std::optional<LogLevel> parseLogLevel(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(LogLevel::kError); ++i) {
    if (name == kNames[i]) {
      return static_cast<LogLevel>(i);
    }
  }
  return std::nullopt;
}

const char* logLevelName(LogLevel level) {
  return kNames[static_cast<int>(level)];
}

void setLogLevel(LogLevel level) {
  g_level.store(static_cast<int>(level));
}

bool logEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load();
}

void logf(LogLevel level, const char* fmt, ...) {
  if (!logEnabled(level)) {
    return;
  }
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm utc;
  gmtime_r(&tv.tv_sec, &utc);
  char line[2048];
  int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ [%s] ",
                   utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                   utc.tm_sec, static_cast<int>(tv.tv_usec / 1000), logLevelName(level));
  va_list args;
  va_start(args, fmt);
  int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, args);
  va_end(args);
  size_t len = std::min(sizeof(line) - 2, static_cast<size_t>(n + (m > 0 ? m : 0)));
  line[len] = '\n';
  std::lock_guard<std::mutex> lock(g_write_mutex);
  fwrite(line, 1, len + 1, stderr);
  fflush(stderr);
  if (g_ring.size() == kLogRingSize) {
    g_ring.pop_front();
  }
  g_ring.push_back(LogRecord{++g_seq, static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000,
                             level, std::string(line + n, len - n)});
}

std::vector<LogRecord> recentLogRecords(uint64_t after, size_t max) {
  std::lock_guard<std::mutex> lock(g_write_mutex);
  std::vector<LogRecord> out;
  size_t first = g_ring.size();
  while (first > 0 && g_ring[first - 1].seq > after && g_ring.size() - first < max) {
    --first;
  }
  out.assign(g_ring.begin() + static_cast<std::ptrdiff_t>(first), g_ring.end());
  return out;
}

}  // namespace tandem
