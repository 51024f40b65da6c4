#include "core/access_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tandem {
namespace {

using namespace std::chrono_literals;

// 03/Dec/2026:13:01:02.345 UTC
std::chrono::system_clock::time_point exampleDate() {
  using namespace std::chrono;
  return sys_days{year{2026} / December / 3} + 13h + 1min + 2s + 345ms;
}

// The line from the contract: a GET answered by web1 in 4 ms.
AccessLogRecord normalRecord() {
  AccessLogRecord r;
  r.client_ip = "127.0.0.1";
  r.client_port = 41234;
  r.accept_date = exampleDate();
  r.frontend = "web-in";
  r.backend = "web";
  r.server = "web1";
  r.timers = {0, 0, 1, 3, 4};
  r.status = 200;
  r.bytes_sent = 187;
  r.actconn = 1;
  r.feconn = 1;
  r.request_line = "GET /index.php HTTP/1.1";
  r.request_id = "7f3a9c";
  return r;
}

// No server was available: HAProxy's 503 with <NOSRV> and the steps that never ran at -1.
AccessLogRecord noServerRecord() {
  AccessLogRecord r = normalRecord();
  r.server.clear();
  r.timers = {0, -1, -1, -1, 0};
  r.status = 503;
  r.bytes_sent = 217;
  r.termination_state = "SC--";
  r.request_line = "GET / HTTP/1.1";
  return r;
}

// Bytes a client may send in a request line: quotes, a backslash, '#', control bytes, a
// CRLF that would split a naive log, valid UTF-8 and each class of invalid UTF-8.
std::string hostileRequestLine() {
  return std::string("GET /q?a=\"b\"&c=\\d#e") + "\x01\x1f\x7f\r\n" +
         " caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 " +  // é € 😀: valid
         "\xff" +                                         // never valid
         "\xc0\xaf" +                                     // overlong '/'
         "\xed\xa0\x80" +                                 // UTF-16 surrogate
         "\xf4\x90\x80\x80" +                             // past U+10FFFF
         " HTTP/1.1" + "\xe2\x82";                        // cut in the middle
}

// ---------------------------------------------------------------------------------------
// A strict little JSON checker: one value, well-formed, strings in valid UTF-8 with no raw
// control characters. Enough to prove that a hostile client cannot break a line.

class JsonChecker {
 public:
  explicit JsonChecker(std::string_view text) : text_(text) {}

  bool valid() { return value() && pos_ == text_.size(); }

 private:
  bool value() {
    if (pos_ >= text_.size()) {
      return false;
    }
    char c = text_[pos_];
    if (c == '{') {
      return object();
    }
    if (c == '"') {
      return string();
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      return number();
    }
    return literal("true") || literal("false") || literal("null");
  }

  bool object() {
    ++pos_;
    if (consume('}')) {
      return true;
    }
    do {
      if (!string() || !consume(':') || !value()) {
        return false;
      }
    } while (consume(','));
    return consume('}');
  }

  bool number() {
    consume('-');
    size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      ++pos_;
    }
    size_t digits = pos_ - start;
    return digits > 0 && (digits == 1 || text_[start] != '0');
  }

  bool string() {
    if (!consume('"')) {
      return false;
    }
    while (pos_ < text_.size()) {
      auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      bool ok = c == '\\' ? escape() : c < 0x20 ? false : c < 0x80 ? (++pos_, true) : utf8();
      if (!ok) {
        return false;
      }
    }
    return false;
  }

  bool escape() {
    ++pos_;
    if (pos_ >= text_.size()) {
      return false;
    }
    char c = text_[pos_++];
    if (std::string_view("\"\\/bfnrt").find(c) != std::string_view::npos) {
      return true;
    }
    if (c != 'u' || pos_ + 4 > text_.size()) {
      return false;
    }
    for (int i = 0; i < 4; ++i) {
      if (!isxdigit(static_cast<unsigned char>(text_[pos_++]))) {
        return false;
      }
    }
    return true;
  }

  // Decodes one sequence and checks it is the shortest form of a scalar value.
  bool utf8() {
    auto lead = static_cast<unsigned char>(text_[pos_]);
    int length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0;
    if (length == 0 || lead >= 0xF8 || pos_ + length > text_.size()) {
      return false;
    }
    uint32_t code = lead & (0x7F >> length);
    for (int i = 1; i < length; ++i) {
      auto next = static_cast<unsigned char>(text_[pos_ + i]);
      if ((next & 0xC0) != 0x80) {
        return false;
      }
      code = (code << 6) | (next & 0x3F);
    }
    pos_ += length;
    const uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    return code >= kMinimum[length] && code <= 0x10FFFF && (code < 0xD800 || code > 0xDFFF);
  }

  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) {
      return false;
    }
    pos_ += word.size();
    return true;
  }

  bool consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

TEST(JsonCheckerTest, TellsWellFormedFromBroken) {
  EXPECT_TRUE(JsonChecker(R"({"a":"x\"\u00e9","b":-1,"c":{"d":true}})").valid());
  EXPECT_TRUE(JsonChecker("{\"a\":\"caf\xc3\xa9\"}").valid());
  EXPECT_FALSE(JsonChecker(R"({"a":"x)").valid());
  EXPECT_FALSE(JsonChecker("{\"a\":\"\n\"}").valid());
  EXPECT_FALSE(JsonChecker("{\"a\":\"\xff\"}").valid());
  EXPECT_FALSE(JsonChecker("{\"a\":\"\xc0\xaf\"}").valid());
  EXPECT_FALSE(JsonChecker("{\"a\":\"\xed\xa0\x80\"}").valid());
  EXPECT_FALSE(JsonChecker(R"({"a":1}x)").valid());
  EXPECT_FALSE(JsonChecker(R"({"a":01})").valid());
}

// ---------------------------------------------------------------------------------------
// httplog

TEST(AccessLogFormatTest, HttplogNormalRequest) {
  EXPECT_EQ(formatHttplog(normalRecord()),
            "127.0.0.1:41234 [03/Dec/2026:13:01:02.345] web-in web/web1 0/0/1/3/4 200 187 - - "
            "---- 1/1/0/0/0 0/0 \"GET /index.php HTTP/1.1\"");
}

TEST(AccessLogFormatTest, HttplogWithoutServer) {
  EXPECT_EQ(formatHttplog(noServerRecord()),
            "127.0.0.1:41234 [03/Dec/2026:13:01:02.345] web-in web/<NOSRV> 0/-1/-1/-1/0 503 217 "
            "- - SC-- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\"");
}

// A request refused before routing: no backend (HAProxy shows the frontend), no status
// sent because the client left, no request line.
TEST(AccessLogFormatTest, HttplogBeforeRouting) {
  AccessLogRecord r = normalRecord();
  r.backend.clear();
  r.server.clear();
  r.timers = {-1, -1, -1, -1, 10001};
  r.status = -1;
  r.bytes_sent = 0;
  r.termination_state = "cR";
  r.request_line.clear();
  EXPECT_EQ(formatHttplog(r),
            "127.0.0.1:41234 [03/Dec/2026:13:01:02.345] web-in web-in/<NOSRV> -1/-1/-1/-1/10001 "
            "-1 0 - - cR-- 1/1/0/0/0 0/0 \"<BADREQ>\"");
}

TEST(AccessLogFormatTest, HttplogRetriesAndRedispatch) {
  AccessLogRecord r = normalRecord();
  r.server = "web2";
  r.timers = {0, 0, 3005, 2, 3008};
  r.actconn = 12;
  r.feconn = 11;
  r.beconn = 7;
  r.srv_conn = 3;
  r.retries = 1;
  r.redispatched = true;
  r.srv_queue = 2;
  r.backend_queue = 5;
  EXPECT_EQ(formatHttplog(r),
            "127.0.0.1:41234 [03/Dec/2026:13:01:02.345] web-in web/web2 0/0/3005/2/3008 200 187 "
            "- - ---- 12/11/7/3/+1 2/5 \"GET /index.php HTTP/1.1\"");
  r.redispatched = false;
  r.retries = 3;
  EXPECT_NE(formatHttplog(r).find(" 12/11/7/3/3 2/5 "), std::string::npos);
}

TEST(AccessLogFormatTest, HttplogIpv6AndLargeValues) {
  AccessLogRecord r = normalRecord();
  r.client_ip = "2001:db8::7";
  r.client_port = 65535;
  r.bytes_sent = 5000000000ULL;
  r.termination_state = "CD--";
  EXPECT_EQ(formatHttplog(r),
            "2001:db8::7:65535 [03/Dec/2026:13:01:02.345] web-in web/web1 0/0/1/3/4 200 "
            "5000000000 - - CD-- 1/1/0/0/0 0/0 \"GET /index.php HTTP/1.1\"");
}

TEST(AccessLogFormatTest, HttplogDatesInUtcToTheMillisecond) {
  using namespace std::chrono;
  AccessLogRecord r = normalRecord();
  r.accept_date = sys_days{year{2027} / January / 1} + 0ms;
  EXPECT_NE(formatHttplog(r).find(" [01/Jan/2027:00:00:00.000] "), std::string::npos);
  // Sub-millisecond parts are cut, never rounded up into the next second.
  r.accept_date = sys_days{year{2026} / July / 9} + 23h + 59min + 59s + 999999us;
  EXPECT_NE(formatHttplog(r).find(" [09/Jul/2026:23:59:59.999] "), std::string::npos);
  // Before 1970 the milliseconds still count up from the second before.
  r.accept_date = system_clock::time_point{} - 1ms;
  EXPECT_NE(formatHttplog(r).find(" [31/Dec/1969:23:59:59.999] "), std::string::npos);
}

TEST(AccessLogFormatTest, HttplogEscapesHostileRequestLine) {
  AccessLogRecord r = normalRecord();
  r.request_line = hostileRequestLine();
  EXPECT_EQ(formatHttplog(r),
            "127.0.0.1:41234 [03/Dec/2026:13:01:02.345] web-in web/web1 0/0/1/3/4 200 187 - - "
            "---- 1/1/0/0/0 0/0 \"GET /q?a=#22b#22&c=\\d#23e#01#1F#7F#0D#0A caf#C3#A9 #E2#82#AC "
            "#F0#9F#98#80 #FF#C0#AF#ED#A0#80#F4#90#80#80 HTTP/1.1#E2#82\"");
}

TEST(AccessLogFormatTest, RequestLineIsCutAtOneKibibyte) {
  AccessLogRecord r = normalRecord();
  r.request_line = "GET /" + std::string(3000, 'a') + " HTTP/1.1";
  std::string line = formatHttplog(r);
  std::string expected_request = "\"GET /" + std::string(kMaxRequestLine - 5, 'a') + "\"";
  ASSERT_GE(line.size(), expected_request.size());
  EXPECT_EQ(line.substr(line.size() - expected_request.size()), expected_request);

  std::string json = formatJson(r);
  std::string expected_json = "\"request\":\"GET /" + std::string(kMaxRequestLine - 5, 'a') +
                              "\",\"request_id\":\"7f3a9c\"}";
  ASSERT_GE(json.size(), expected_json.size());
  EXPECT_EQ(json.substr(json.size() - expected_json.size()), expected_json);
}

// ---------------------------------------------------------------------------------------
// JSON

TEST(AccessLogFormatTest, JsonNormalRequest) {
  EXPECT_EQ(
      formatJson(normalRecord()),
      R"({"client_ip":"127.0.0.1","client_port":41234,"accept_date":"2026-12-03T13:01:02.345Z",)"
      R"("frontend":"web-in","backend":"web","server":"web1","timers":{"request_ms":0,)"
      R"("queue_ms":0,"connect_ms":1,"response_ms":3,"active_ms":4},"status":200,"bytes":187,)"
      R"("termination_state":"----","actconn":1,"feconn":1,"beconn":0,"srv_conn":0,)"
      R"("retries":0,"redispatched":false,"srv_queue":0,"backend_queue":0,)"
      R"("request":"GET /index.php HTTP/1.1","request_id":"7f3a9c"})");
}

TEST(AccessLogFormatTest, JsonWithoutServer) {
  EXPECT_EQ(
      formatJson(noServerRecord()),
      R"({"client_ip":"127.0.0.1","client_port":41234,"accept_date":"2026-12-03T13:01:02.345Z",)"
      R"("frontend":"web-in","backend":"web","server":"<NOSRV>","timers":{"request_ms":0,)"
      R"("queue_ms":-1,"connect_ms":-1,"response_ms":-1,"active_ms":0},"status":503,)"
      R"("bytes":217,"termination_state":"SC--","actconn":1,"feconn":1,"beconn":0,)"
      R"("srv_conn":0,"retries":0,"redispatched":false,"srv_queue":0,"backend_queue":0,)"
      R"("request":"GET / HTTP/1.1","request_id":"7f3a9c"})");
}

TEST(AccessLogFormatTest, JsonRetriesAndRedispatch) {
  AccessLogRecord r = normalRecord();
  r.retries = 1;
  r.redispatched = true;
  std::string json = formatJson(r);
  EXPECT_NE(json.find(R"("retries":1,"redispatched":true,)"), std::string::npos) << json;
  EXPECT_TRUE(JsonChecker(json).valid());
}

TEST(AccessLogFormatTest, JsonEscapesHostileStrings) {
  AccessLogRecord r = normalRecord();
  r.request_line = hostileRequestLine();
  r.request_id = "id\"\\\x1b[31m";  // a client-supplied X-Request-Id with a terminal escape
  std::string json = formatJson(r);
  std::string expected_tail =
      R"("request":"GET /q?a=\"b\"&c=\\d#e\u0001\u001F\u007F\u000D\u000A )"
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
      R"(\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd HTTP/1.1\ufffd\ufffd",)"
      R"("request_id":"id\"\\\u001B[31m"})";
  ASSERT_GE(json.size(), expected_tail.size());
  EXPECT_EQ(json.substr(json.size() - expected_tail.size()), expected_tail);
  EXPECT_TRUE(JsonChecker(json).valid()) << json;
}

// Whatever bytes arrive, the JSON line parses and the httplog line stays one line of
// printable ASCII whose only quotes are the two around the request.
TEST(AccessLogFormatTest, RandomRequestLinesNeverBreakEitherFormat) {
  std::mt19937 random(20261203);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 300);
  AccessLogRecord r = normalRecord();
  for (int round = 0; round < 2000; ++round) {
    r.request_line.resize(static_cast<size_t>(length(random)));
    for (char& c : r.request_line) {
      c = static_cast<char>(byte(random));
    }
    r.request_id = r.request_line.substr(0, 40);
    std::string json = formatJson(r);
    ASSERT_TRUE(JsonChecker(json).valid()) << "round " << round << ": " << json;
    std::string line = formatHttplog(r);
    for (char c : line) {
      ASSERT_TRUE(c >= 0x20 && c < 0x7F) << "round " << round << ": " << line;
    }
    ASSERT_EQ(std::count(line.begin(), line.end(), '"'), 2) << line;
  }
}

// ---------------------------------------------------------------------------------------
// The writer

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tandem-alog-XXXXXX");
    path_ = mkdtemp(pattern.data()) ? pattern : "";
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Lines without their '\n'; a last fragment without '\n' comes back in `*partial`.
std::vector<std::string> splitLines(const std::string& text, std::string* partial = nullptr) {
  std::vector<std::string> lines;
  size_t begin = 0;
  for (size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', begin)) {
    lines.push_back(text.substr(begin, nl - begin));
    begin = nl + 1;
  }
  if (partial) {
    *partial = text.substr(begin);
  }
  return lines;
}

// Points fd (1 or 2) at a file until restore(), for what goes to stdout or stderr.
class FdCapture {
 public:
  FdCapture(int fd, const std::string& path) : fd_(fd) {
    fflush(nullptr);
    saved_ = dup(fd);
    int file = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(file, fd);
    close(file);
  }
  ~FdCapture() { restore(); }

  void restore() {
    if (saved_ >= 0) {
      fflush(nullptr);
      dup2(saved_, fd_);
      close(saved_);
      saved_ = -1;
    }
  }

 private:
  int fd_;
  int saved_ = -1;
};

GlobalConfig logTo(const std::string& destination, LogFormat format = LogFormat::kHaproxy) {
  GlobalConfig global;
  global.access_log = destination;
  global.log_format = format;
  return global;
}

AccessLogRecord workerRecord(int worker, int i) {
  AccessLogRecord r = normalRecord();
  r.client_port = 1000 + worker;
  r.request_line = "GET /w" + std::to_string(worker) + "/" + std::to_string(i) + " HTTP/1.1";
  r.request_id = std::to_string(worker) + "-" + std::to_string(i);
  return r;
}

std::string formatAs(LogFormat format, const AccessLogRecord& r) {
  return format == LogFormat::kJson ? formatJson(r) : formatHttplog(r);
}

// 4 workers x 1000 lines, flushed as a worker's timer would: every line arrives whole, on
// its own line, and each worker's lines keep their order.
TEST(AccessLogWriterTest, EveryLineFromFourWorkersArrivesIntact) {
  for (LogFormat format : {LogFormat::kHaproxy, LogFormat::kJson}) {
    TempDir dir;
    std::string path = dir.file("access.log");
    constexpr int kWorkers = 4;
    constexpr int kLines = 1000;
    AccessLog log(logTo(path, format));
    std::atomic<bool> done{false};
    std::thread admin([&] {  // the admin page reading while workers write
      while (!done) {
        EXPECT_LE(log.recentLines(500).size(), 200u);
      }
    });
    std::vector<std::thread> workers;
    for (int w = 0; w < kWorkers; ++w) {
      workers.emplace_back([&log, w] {
        std::unique_ptr<AccessLog::Buffer> buffer = log.makeBuffer();
        for (int i = 0; i < kLines; ++i) {
          buffer->add(workerRecord(w, i));
          if (i % 50 == 49) {
            buffer->flush();
          }
        }
      });  // the Buffer's destructor flushes the rest
    }
    for (std::thread& t : workers) {
      t.join();
    }
    log.stop();
    done = true;
    admin.join();

    std::string partial;
    std::vector<std::string> lines = splitLines(readFile(path), &partial);
    EXPECT_EQ(partial, "");
    ASSERT_EQ(lines.size(), size_t{kWorkers * kLines});
    std::vector<int> next(kWorkers, 0);
    for (const std::string& line : lines) {
      size_t at = line.find("GET /w");
      ASSERT_NE(at, std::string::npos) << line;
      int w = line[at + 6] - '0';
      ASSERT_TRUE(w >= 0 && w < kWorkers) << line;
      ASSERT_EQ(line, formatAs(format, workerRecord(w, next[w]))) << "worker " << w;
      ++next[w];
    }
    EXPECT_EQ(log.droppedLines(), 0u);
  }
}

TEST(AccessLogWriterTest, AppendsToAnExistingFile) {
  TempDir dir;
  std::string path = dir.file("access.log");
  std::ofstream(path) << "an older line\n";
  {
    AccessLog log(logTo(path));
    log.makeBuffer()->add(normalRecord());
  }
  EXPECT_EQ(readFile(path), "an older line\n" + formatHttplog(normalRecord()) + "\n");
}

TEST(AccessLogWriterTest, WritesToStdout) {
  TempDir dir;
  std::string captured = dir.file("stdout");
  {
    FdCapture capture(STDOUT_FILENO, captured);
    AccessLog log(GlobalConfig{});  // access_log = "stdout" by default
    std::unique_ptr<AccessLog::Buffer> buffer = log.makeBuffer();
    buffer->add(normalRecord());
    buffer->add(noServerRecord());
    buffer->flush();
    log.stop();
  }
  EXPECT_EQ(readFile(captured),
            formatHttplog(normalRecord()) + "\n" + formatHttplog(noServerRecord()) + "\n");
}

TEST(AccessLogWriterTest, OffWritesNothing) {
  TempDir dir;
  std::string captured = dir.file("stdout");
  bool enabled = true;
  std::vector<std::string> recent;
  {
    FdCapture capture(STDOUT_FILENO, captured);
    AccessLog log(logTo("off"));
    enabled = log.enabled();
    std::unique_ptr<AccessLog::Buffer> buffer = log.makeBuffer();
    for (int i = 0; i < 100; ++i) {
      buffer->add(normalRecord());
    }
    buffer->flush();
    log.stop();
    recent = log.recentLines(10);
  }
  EXPECT_FALSE(enabled);
  EXPECT_TRUE(recent.empty());
  EXPECT_EQ(readFile(captured), "");
}

TEST(AccessLogWriterTest, OpenFailureIsAClearStartupError) {
  std::string missing = "/nonexistent-tandem-dir/access.log";
  try {
    AccessLog log(logTo(missing));
    FAIL() << "opened " << missing;
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "access_log " + missing + ": No such file or directory");
  }
  TempDir dir;
  std::filesystem::create_directory(dir.file("a-directory"));
  try {
    AccessLog log(logTo(dir.file("a-directory")));
    FAIL() << "opened a directory";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "access_log " + dir.file("a-directory") + ": Is a directory");
  }
}

TEST(AccessLogWriterTest, AddFlushesByItselfPastTheThreshold) {
  TempDir dir;
  std::string path = dir.file("access.log");
  AccessLogLimits limits;
  limits.flush_bytes = 1000;
  AccessLog log(logTo(path), limits);
  std::unique_ptr<AccessLog::Buffer> buffer = log.makeBuffer();
  size_t line_bytes = formatHttplog(normalRecord()).size() + 1;
  for (int i = 0; i < 100; ++i) {
    buffer->add(normalRecord());
    ASSERT_LT(buffer->pendingBytes(), limits.flush_bytes);
  }
  size_t still_pending = buffer->pendingBytes() / line_bytes;
  log.stop();  // before the buffer flushes the rest
  EXPECT_EQ(splitLines(readFile(path)).size(), 100 - still_pending);
  EXPECT_GT(still_pending, 0u);
}

TEST(AccessLogWriterTest, KeepsTheLastLinesForTheAdminPage) {
  TempDir dir;
  AccessLog log(logTo(dir.file("access.log"), LogFormat::kJson));
  std::unique_ptr<AccessLog::Buffer> buffer = log.makeBuffer();
  for (int i = 0; i < 250; ++i) {
    buffer->add(workerRecord(0, i));
    if (i % 7 == 0) {
      buffer->flush();
    }
  }
  buffer->flush();
  log.stop();
  std::vector<std::string> all = log.recentLines(1000);
  ASSERT_EQ(all.size(), 200u);
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(all[i], formatJson(workerRecord(0, 50 + i)));
  }
  std::vector<std::string> three = log.recentLines(3);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[0], formatJson(workerRecord(0, 247)));
  EXPECT_EQ(three[2], formatJson(workerRecord(0, 249)));
  EXPECT_TRUE(log.recentLines(0).empty());
}

TEST(AccessLogWriterTest, LinesFlushedAfterStopAreCountedAsDropped) {
  TempDir dir;
  auto log = std::make_unique<AccessLog>(logTo(dir.file("access.log")));
  std::unique_ptr<AccessLog::Buffer> buffer = log->makeBuffer();
  log->stop();
  log->stop();  // harmless twice
  buffer->add(normalRecord());
  buffer->add(normalRecord());
  buffer->flush();
  EXPECT_EQ(log->droppedLines(), 2u);
  log.reset();
  buffer->add(normalRecord());  // the buffer outlives its log: still safe
  buffer->flush();
  EXPECT_EQ(readFile(dir.file("access.log")), "");
}

// A pipe nobody reads: the writer thread is stuck, so batches past the bound are dropped
// and counted, workers carry on without waiting, stop() gives up after its timeout, and
// every line that did reach the pipe is whole.
TEST(AccessLogWriterTest, DropsAndCountsWhenTheDestinationIsStuck) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  TempDir dir;
  std::string warnings_path = dir.file("stderr");
  constexpr int kLines = 20000;
  AccessLogLimits limits;
  limits.max_pending_bytes = 64 * 1024;
  limits.flush_bytes = 4096;
  limits.stop_timeout = 300ms;
  uint64_t dropped_before_stop = 0;
  uint64_t dropped = 0;
  bool worker_finished = false;
  auto started = std::chrono::steady_clock::now();
  {
    FdCapture warnings(STDERR_FILENO, warnings_path);
    AccessLog log(logTo("/dev/fd/" + std::to_string(fds[1])), limits);
    std::promise<void> finished;
    std::thread worker([&] {
      std::unique_ptr<AccessLog::Buffer> buffer = log.makeBuffer();
      for (int i = 0; i < kLines; ++i) {
        buffer->add(workerRecord(0, i));
        if (i % 10 == 9) {
          buffer->flush();
        }
        if (i % 2000 == 1999) {
          std::this_thread::sleep_for(100ms);  // spread over ~1 s, past one report period
        }
      }
      buffer->flush();
      finished.set_value();
    });
    // A worker that blocked would never finish; a generous bound keeps a broken build from
    // hanging the suite (no speed is asserted).
    worker_finished = finished.get_future().wait_for(60s) == std::future_status::ready;
    if (!worker_finished) {
      fcntl(fds[0], F_SETFL, O_NONBLOCK);
      std::thread([fd = fds[0]] {
        char sink[65536];
        while (read(fd, sink, sizeof(sink)) != 0) {
        }
      }).detach();
    }
    worker.join();
    dropped_before_stop = log.droppedLines();
    log.stop();
    dropped = log.droppedLines();
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_TRUE(worker_finished) << "add()/flush() blocked on a stuck destination";
  EXPECT_GT(dropped_before_stop, 0u);

  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  std::string received;
  char chunk[65536];
  for (ssize_t n; (n = read(fds[0], chunk, sizeof(chunk))) > 0;) {
    received.append(chunk, static_cast<size_t>(n));
  }
  close(fds[0]);
  close(fds[1]);
  std::string partial;
  std::vector<std::string> lines = splitLines(received, &partial);
  EXPECT_GT(lines.size(), 0u);
  EXPECT_EQ(lines.size() + dropped, size_t{kLines});
  int previous = -1;  // batches were dropped in between: in order, with gaps
  for (const std::string& line : lines) {
    size_t at = line.find("GET /w0/");
    ASSERT_NE(at, std::string::npos) << line;
    int i = std::stoi(line.substr(at + 8));
    ASSERT_GT(i, previous);
    ASSERT_EQ(line, formatHttplog(workerRecord(0, i)));
    previous = i;
  }

  // At most one warning a second, plus the last one at stop, each with the count.
  std::vector<std::string> warnings = splitLines(readFile(warnings_path));
  ASSERT_GE(warnings.size(), 1u);
  EXPECT_LE(warnings.size(), static_cast<size_t>(seconds) + 2);
  for (const std::string& warning : warnings) {
    EXPECT_NE(warning.find("[warning] access log /dev/fd/"), std::string::npos) << warning;
    EXPECT_NE(warning.find(" lines since the last report, "), std::string::npos) << warning;
  }
}

}  // namespace
}  // namespace tandem
