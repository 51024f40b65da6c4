#include "core/access_log.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "core/log.h"

namespace tandem {

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr char kHexDigits[] = "0123456789ABCDEF";
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// ---------------------------------------------------------------------------------------
// Pieces shared by both formats

template <typename Int>
void appendInt(std::string& out, Int value) {
  char digits[24];
  std::to_chars_result result = std::to_chars(digits, digits + sizeof(digits), value);
  out.append(digits, result.ptr);
}

struct UtcTime {
  tm fields;
  int millis;
};

UtcTime toUtc(std::chrono::system_clock::time_point when) {
  using std::chrono::floor;
  // floor, not a cast: a time before 1970 must still give 0..999 ms, not a negative count.
  auto seconds = floor<std::chrono::seconds>(when.time_since_epoch());
  auto millis = floor<std::chrono::milliseconds>(when.time_since_epoch()) - seconds;
  time_t t = static_cast<time_t>(seconds.count());
  UtcTime utc;
  gmtime_r(&t, &utc.fields);
  utc.millis = static_cast<int>(millis.count());
  return utc;
}

// HAProxy's %b shows the frontend itself when no backend was chosen (a request refused
// before routing), and %s shows <NOSRV> when no server was.
std::string_view backendShown(const AccessLogRecord& record) {
  return record.backend.empty() ? record.frontend : record.backend;
}

std::string_view serverShown(const AccessLogRecord& record) {
  return record.server.empty() ? std::string_view("<NOSRV>") : std::string_view(record.server);
}

std::string_view requestLineShown(const AccessLogRecord& record) {
  return std::string_view(record.request_line).substr(0, kMaxRequestLine);
}

// ---------------------------------------------------------------------------------------
// httplog

// "03/Dec/2026:13:01:02.345", HAProxy's %tr.
void appendHttplogDate(std::string& out, std::chrono::system_clock::time_point when) {
  UtcTime t = toUtc(when);
  char text[64];
  int n = snprintf(text, sizeof(text), "%02d/%s/%04d:%02d:%02d:%02d.%03d", t.fields.tm_mday,
                   kMonths[t.fields.tm_mon], t.fields.tm_year + 1900, t.fields.tm_hour,
                   t.fields.tm_min, t.fields.tm_sec, t.millis);
  out.append(text, static_cast<size_t>(n));
}

void appendHttplogTimers(std::string& out, const AccessLogTimers& timers) {
  appendInt(out, timers.request);
  out += '/';
  appendInt(out, timers.queue);
  out += '/';
  appendInt(out, timers.connect);
  out += '/';
  appendInt(out, timers.response);
  out += '/';
  appendInt(out, timers.active);
}

// Always four characters, so that a short value cannot shift the fields after it.
void appendTerminationState(std::string& out, std::string_view state) {
  for (size_t i = 0; i < 4; ++i) {
    out += i < state.size() ? state[i] : '-';
  }
}

// "%ac/%fc/%bc/%sc/%rc %sq/%bq"; the '+' says the last retry went to another server.
void appendHttplogCounts(std::string& out, const AccessLogRecord& record) {
  for (int count : {record.actconn, record.feconn, record.beconn, record.srv_conn}) {
    appendInt(out, count);
    out += '/';
  }
  if (record.redispatched) {
    out += '+';
  }
  appendInt(out, record.retries);
  out += ' ';
  appendInt(out, record.srv_queue);
  out += '/';
  appendInt(out, record.backend_queue);
}

bool needsHttplogEscape(unsigned char c) {
  return c < 0x20 || c >= 0x7F || c == '"' || c == '#';
}

// HAProxy's %{+Q}r: quoted, with #XX for the bytes that could end the quote, split the
// line or confuse a terminal.
void appendHttplogRequestLine(std::string& out, const AccessLogRecord& record) {
  std::string_view line = requestLineShown(record);
  out += '"';
  if (line.empty()) {
    out += "<BADREQ>";
  }
  for (char ch : line) {
    auto c = static_cast<unsigned char>(ch);
    if (needsHttplogEscape(c)) {
      out += '#';
      out += kHexDigits[c >> 4];
      out += kHexDigits[c & 0xF];
    } else {
      out += ch;
    }
  }
  out += '"';
}

// ---------------------------------------------------------------------------------------
// JSON

// "2026-12-03T13:01:02.345Z"
void appendIsoDate(std::string& out, std::chrono::system_clock::time_point when) {
  UtcTime t = toUtc(when);
  char text[64];
  int n = snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                   t.fields.tm_year + 1900, t.fields.tm_mon + 1, t.fields.tm_mday, t.fields.tm_hour,
                   t.fields.tm_min, t.fields.tm_sec, t.millis);
  out.append(text, static_cast<size_t>(n));
}

// The length of the well-formed UTF-8 sequence that starts text[i], or 0 if there is none
// (Unicode's table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF).
size_t utf8SequenceLength(std::string_view text, size_t i) {
  auto lead = static_cast<unsigned char>(text[i]);
  size_t length = 0;
  unsigned char low = 0x80;  // the range allowed for the second byte
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    low = lead == 0xE0 ? 0xA0 : 0x80;   // below: overlong
    high = lead == 0xED ? 0x9F : 0xBF;  // above: UTF-16 surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    low = lead == 0xF0 ? 0x90 : 0x80;   // below: overlong
    high = lead == 0xF4 ? 0x8F : 0xBF;  // above: past U+10FFFF
  }
  if (length == 0 || i + length > text.size()) {
    return 0;
  }
  auto second = static_cast<unsigned char>(text[i + 1]);
  if (second < low || second > high) {
    return 0;
  }
  for (size_t k = 2; k < length; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) {
      return 0;
    }
  }
  return length;
}

// Appends the escaped form of the character at text[i]; returns how many bytes it used.
size_t appendJsonChar(std::string& out, std::string_view text, size_t i) {
  auto c = static_cast<unsigned char>(text[i]);
  if (c == '"' || c == '\\') {
    out += '\\';
    out += static_cast<char>(c);
  } else if (c < 0x20 || c == 0x7F) {
    out += "\\u00";
    out += kHexDigits[c >> 4];
    out += kHexDigits[c & 0xF];
  } else if (c < 0x80) {
    out += static_cast<char>(c);
  } else {
    size_t length = utf8SequenceLength(text, i);
    if (length == 0) {
      out += "\\ufffd";  // one replacement character per byte that starts no valid sequence
      return 1;
    }
    out.append(text.substr(i, length));
    return length;
  }
  return 1;
}

void appendJsonString(std::string& out, std::string_view text) {
  out += '"';
  for (size_t i = 0; i < text.size();) {
    i += appendJsonChar(out, text, i);
  }
  out += '"';
}

void appendJsonKey(std::string& out, const char* key) {
  out += ",\"";
  out += key;
  out += "\":";
}

void appendJsonTimers(std::string& out, const AccessLogTimers& timers) {
  out += ",\"timers\":{\"request_ms\":";
  appendInt(out, timers.request);
  appendJsonKey(out, "queue_ms");
  appendInt(out, timers.queue);
  appendJsonKey(out, "connect_ms");
  appendInt(out, timers.connect);
  appendJsonKey(out, "response_ms");
  appendInt(out, timers.response);
  appendJsonKey(out, "active_ms");
  appendInt(out, timers.active);
  out += '}';
}

void appendJsonCounts(std::string& out, const AccessLogRecord& record) {
  const std::pair<const char*, int> counts[] = {
      {"actconn", record.actconn},   {"feconn", record.feconn},   {"beconn", record.beconn},
      {"srv_conn", record.srv_conn}, {"retries", record.retries},
  };
  for (const auto& [key, value] : counts) {
    appendJsonKey(out, key);
    appendInt(out, value);
  }
  appendJsonKey(out, "redispatched");
  out += record.redispatched ? "true" : "false";
  appendJsonKey(out, "srv_queue");
  appendInt(out, record.srv_queue);
  appendJsonKey(out, "backend_queue");
  appendInt(out, record.backend_queue);
}

// ---------------------------------------------------------------------------------------
// The destination

int openForAppend(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error("access_log " + path + ": " +
                             std::error_code(errno, std::generic_category()).message());
  }
  return fd;
}

// A write(2) of more than PIPE_BUF bytes to a pipe waits until all of it fits; one of at
// most PIPE_BUF bytes after poll() reported room does not. Keeping to that size lets the
// writer thread come back to check the stop deadline and report drops even when nobody
// reads the pipe. A regular file never makes a writer wait that way: large writes are fine.
size_t chunkBytesFor(int fd) {
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    return size_t{1} << 20;
  }
  return PIPE_BUF;
}

size_t countLines(std::string_view text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

std::string formatHttplog(const AccessLogRecord& record) {
  std::string out;
  appendHttplog(out, record);
  return out;
}

void appendHttplog(std::string& out, const AccessLogRecord& record) {
  out += record.client_ip;
  out += ':';
  appendInt(out, record.client_port);
  out += " [";
  appendHttplogDate(out, record.accept_date);
  out += "] ";
  out += record.frontend;
  out += ' ';
  out += backendShown(record);
  out += '/';
  out += serverShown(record);
  out += ' ';
  appendHttplogTimers(out, record.timers);
  out += ' ';
  appendInt(out, record.status);
  out += ' ';
  appendInt(out, record.bytes_sent);
  out += " - - ";  // %CC %CS: no cookie capture is configurable, HAProxy prints "-"
  appendTerminationState(out, record.termination_state);
  out += ' ';
  appendHttplogCounts(out, record);
  out += ' ';  // %hr %hs: no header capture, so HAProxy prints nothing and no extra space
  appendHttplogRequestLine(out, record);
}

std::string formatJson(const AccessLogRecord& record) {
  std::string out;
  appendJson(out, record);
  return out;
}

void appendJson(std::string& out, const AccessLogRecord& record) {
  out += "{\"client_ip\":";
  appendJsonString(out, record.client_ip);
  appendJsonKey(out, "client_port");
  appendInt(out, record.client_port);
  out += ",\"accept_date\":\"";
  appendIsoDate(out, record.accept_date);
  out += '"';
  appendJsonKey(out, "frontend");
  appendJsonString(out, record.frontend);
  appendJsonKey(out, "backend");
  appendJsonString(out, backendShown(record));
  appendJsonKey(out, "server");
  appendJsonString(out, serverShown(record));
  appendJsonTimers(out, record.timers);
  appendJsonKey(out, "status");
  appendInt(out, record.status);
  appendJsonKey(out, "bytes");
  appendInt(out, record.bytes_sent);
  appendJsonKey(out, "termination_state");
  appendJsonString(out, record.termination_state);
  appendJsonCounts(out, record);
  appendJsonKey(out, "request");
  appendJsonString(out, requestLineShown(record));
  appendJsonKey(out, "request_id");
  appendJsonString(out, record.request_id);
  out += '}';
}

// ---------------------------------------------------------------------------------------
// AccessLog::Writer: the queue between the workers and the writer thread.
//
// Locks: mutex_ guards queue_, pending_bytes_ and stopping_'s transition; workers hold it
// once per flushed batch, the writer thread once per wake-up and once per written batch.
// recent_mutex_ guards recent_ only. Nothing is written to the destination under a lock.

class AccessLog::Writer {
 public:
  Writer(int fd, bool owns_fd, std::string name, const AccessLogLimits& limits)
      : fd_(fd),
        owns_fd_(owns_fd),
        name_(std::move(name)),
        limits_(limits),
        chunk_bytes_(chunkBytesFor(fd)) {}
  ~Writer() { stop(); }

  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void submit(std::string& text, size_t lines);
  void stop();

  uint64_t droppedLines() const { return dropped_.load(std::memory_order_relaxed); }
  std::vector<std::string> recentLines(size_t max) const;

 private:
  struct Batch {
    std::string text;
    size_t lines = 0;
  };

  void run();
  bool takeBatches(std::deque<Batch>* batches);
  void writeBatch(const Batch& batch);
  bool waitWritable();
  bool pastStopDeadline() const;
  void dropUnwritten(std::string_view rest, std::string problem);
  void remember(std::string_view text);
  void reportDrops(bool final);

  const int fd_;
  const bool owns_fd_;
  const std::string name_;
  const AccessLogLimits limits_;
  const size_t chunk_bytes_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Batch> queue_;
  size_t pending_bytes_ = 0;  // handed over and not yet written: queued or being written
  // Set under mutex_ so that no batch is queued after the writer thread saw the queue empty
  // for the last time; read without it by the write loop to check the deadline.
  std::atomic<bool> stopping_{false};
  std::atomic<SteadyClock::rep> stop_deadline_{0};
  std::atomic<uint64_t> dropped_{0};
  std::once_flag stop_once_;
  std::thread thread_;

  // The writer thread's own state.
  uint64_t reported_drops_ = 0;
  SteadyClock::time_point last_report_{};
  std::string last_problem_;  // why the writer itself dropped lines; empty: the bound

  mutable std::mutex recent_mutex_;
  std::deque<std::string> recent_;
};

// Called by a worker: never waits for I/O, only for the short critical section below.
void AccessLog::Writer::submit(std::string& text, size_t lines) {
  bool accepted = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_ && pending_bytes_ + text.size() <= limits_.max_pending_bytes) {
      pending_bytes_ += text.size();
      queue_.push_back(Batch{std::move(text), lines});
      accepted = true;
    }
  }
  if (accepted) {
    wake_.notify_one();
  } else {
    dropped_.fetch_add(lines, std::memory_order_relaxed);
  }
  text.clear();
}

// Lifetime: 1. no batch is accepted once stopping_ is set; 2. the thread writes what was
// accepted before, until the deadline; 3. after the join, nothing touches fd_ but close.
void AccessLog::Writer::stop() {
  std::call_once(stop_once_, [this] {
    stop_deadline_ = (SteadyClock::now() + limits_.stop_timeout).time_since_epoch().count();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) {
      thread_.join();
    }
    if (owns_fd_) {
      ::close(fd_);
    }
  });
}

void AccessLog::Writer::run() {
  pthread_setname_np(pthread_self(), "access-log");
  std::deque<Batch> batches;
  while (takeBatches(&batches)) {
    for (const Batch& batch : batches) {
      writeBatch(batch);
      remember(batch.text);
      std::lock_guard<std::mutex> lock(mutex_);
      pending_bytes_ -= batch.text.size();
    }
    batches.clear();
    reportDrops(false);
  }
  reportDrops(true);
}

// Waits at most a second, so that drops get reported even when no batch comes. Returns
// false once stop() was called and every batch accepted before it has been taken.
bool AccessLog::Writer::takeBatches(std::deque<Batch>* batches) {
  std::unique_lock<std::mutex> lock(mutex_);
  wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_ || !queue_.empty(); });
  if (queue_.empty()) {
    return !stopping_;
  }
  batches->swap(queue_);
  return true;
}

void AccessLog::Writer::writeBatch(const Batch& batch) {
  std::string_view rest = batch.text;
  while (!rest.empty()) {
    if (pastStopDeadline()) {
      dropUnwritten(rest, "still unwritten " + formatDuration(limits_.stop_timeout) +
                              " after shutdown began");
      return;
    }
    if (!waitWritable()) {
      continue;
    }
    ssize_t n = ::write(fd_, rest.data(), std::min(rest.size(), chunk_bytes_));
    if (n >= 0) {
      rest.remove_prefix(static_cast<size_t>(n));
    } else if (errno != EINTR && errno != EAGAIN) {
      dropUnwritten(rest,
                    "write failed: " + std::error_code(errno, std::generic_category()).message());
      return;
    }
  }
}

// Waits up to 100 ms for room; a stuck destination leaves time to report drops.
bool AccessLog::Writer::waitWritable() {
  pollfd pfd{fd_, POLLOUT, 0};
  int ready = ::poll(&pfd, 1, 100);
  if (ready <= 0) {
    reportDrops(false);
    return false;
  }
  return true;  // POLLERR and POLLHUP too: write() then says what went wrong
}

bool AccessLog::Writer::pastStopDeadline() const {
  return stopping_ && SteadyClock::now().time_since_epoch().count() >= stop_deadline_;
}

// Every line with a byte left in `rest` is lost, including one written in part.
void AccessLog::Writer::dropUnwritten(std::string_view rest, std::string problem) {
  dropped_.fetch_add(countLines(rest), std::memory_order_relaxed);
  last_problem_ = std::move(problem);
}

// Keeps the batch's last lines for the admin page; older ones would be pushed out anyway.
void AccessLog::Writer::remember(std::string_view text) {
  size_t keep = limits_.recent_lines;
  std::vector<std::string_view> newest_first;
  size_t end = text.size() - 1;  // every line ends with '\n'
  while (newest_first.size() < keep) {
    size_t newline = end == 0 ? std::string_view::npos : text.rfind('\n', end - 1);
    size_t begin = newline == std::string_view::npos ? 0 : newline + 1;
    newest_first.push_back(text.substr(begin, end - begin));
    if (newline == std::string_view::npos) {
      break;
    }
    end = newline;
  }
  std::lock_guard<std::mutex> lock(recent_mutex_);
  for (auto line = newest_first.rbegin(); line != newest_first.rend(); ++line) {
    recent_.emplace_back(*line);
  }
  while (recent_.size() > keep) {
    recent_.pop_front();
  }
}

std::vector<std::string> AccessLog::Writer::recentLines(size_t max) const {
  std::lock_guard<std::mutex> lock(recent_mutex_);
  size_t n = std::min(max, recent_.size());
  return std::vector<std::string>(recent_.end() - static_cast<std::ptrdiff_t>(n), recent_.end());
}

// At most one line a second (plus a last one when the thread ends), whatever the drop rate.
void AccessLog::Writer::reportDrops(bool final) {
  uint64_t dropped = dropped_.load(std::memory_order_relaxed);
  SteadyClock::time_point now = SteadyClock::now();
  if (dropped == reported_drops_ || (!final && now - last_report_ < std::chrono::seconds(1))) {
    return;
  }
  std::string reason = last_problem_.empty()
                           ? "more than " + std::to_string(limits_.max_pending_bytes) +
                                 " bytes were waiting to be written"
                           : last_problem_;
  TLOG_WARN(
      "access log %s: dropped %llu lines since the last report, %llu in total; last cause: %s",
      name_.c_str(), static_cast<unsigned long long>(dropped - reported_drops_),
      static_cast<unsigned long long>(dropped), reason.c_str());
  reported_drops_ = dropped;
  last_report_ = now;
  last_problem_.clear();
}

// ---------------------------------------------------------------------------------------
// AccessLog and its per-worker Buffer

AccessLog::Buffer::Buffer(std::shared_ptr<Writer> writer, LogFormat format, size_t flush_bytes)
    : writer_(std::move(writer)), format_(format), flush_bytes_(flush_bytes) {}

AccessLog::Buffer::~Buffer() {
  flush();
}

void AccessLog::Buffer::add(const AccessLogRecord& record) {
  if (!writer_) {
    return;
  }
  if (format_ == LogFormat::kJson) {
    appendJson(text_, record);
  } else {
    appendHttplog(text_, record);
  }
  text_ += '\n';
  ++lines_;
  if (text_.size() >= flush_bytes_) {
    flush();
  }
}

void AccessLog::Buffer::flush() {
  if (!writer_ || text_.empty()) {
    return;
  }
  writer_->submit(text_, lines_);
  lines_ = 0;
}

AccessLog::AccessLog(const GlobalConfig& global, const AccessLogLimits& limits)
    : format_(global.log_format), limits_(limits) {
  if (global.access_log == "off") {
    return;
  }
  bool to_stdout = global.access_log == "stdout";
  int fd = to_stdout ? STDOUT_FILENO : openForAppend(global.access_log);
  writer_ = std::make_shared<Writer>(fd, !to_stdout, global.access_log, limits);
  writer_->start();
}

AccessLog::~AccessLog() {
  stop();
}

std::unique_ptr<AccessLog::Buffer> AccessLog::makeBuffer() {
  return std::unique_ptr<Buffer>(new Buffer(writer_, format_, limits_.flush_bytes));
}

void AccessLog::stop() {
  if (writer_) {
    writer_->stop();
  }
}

uint64_t AccessLog::droppedLines() const {
  return writer_ ? writer_->droppedLines() : 0;
}

std::vector<std::string> AccessLog::recentLines(size_t max) const {
  return writer_ ? writer_->recentLines(max) : std::vector<std::string>{};
}

}  // namespace tandem
