#include "admin/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "core/log.h"

namespace tandem {

namespace {

// Output waiting for a slow reader is capped: past this, the connection stops running the
// lines it has read (and stops reading) until the peer catches up.
constexpr size_t kMaxPendingOutput = 256 * 1024;

std::string errnoText(int err) {
  return std::strerror(err);
}

// Whether a process accepts connections on `path` now. A socket file left by a process
// that died refuses them (ECONNREFUSED); anything else is treated as in use.
bool someoneListens(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  bool listens = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return listens;
}

// A leftover socket file is removed; a live listener, or a file that is not a socket, makes
// start() fail rather than take the path from its owner.
bool clearPath(const std::string& path, std::string* error) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return true;
    }
    *error = "cannot inspect " + path + ": " + errnoText(errno);
    return false;
  }
  if (!S_ISSOCK(st.st_mode)) {
    *error = path + " exists and is not a socket";
    return false;
  }
  if (someoneListens(path)) {
    *error = "another process is listening on " + path;
    return false;
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    *error = "cannot remove the stale socket " + path + ": " + errnoText(errno);
    return false;
  }
  TLOG_INFO("runtime socket: removed the stale socket file %s", path.c_str());
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// One client connection: a small state machine over its pipe.
//
//   reading    bytes arrive in in_; each complete line runs (several if they came together)
//   answering  the output is written; non-interactive connections then stop reading
//   closing    once the writes are done (or at once on error, EOF, timeout, stop): both
//              handles close, and the second close callback removes the connection
//
// Writes pending when the pipe closes end with UV_ECANCELED before its close callback, so
// the connection (deleted only after both close callbacks) outlives them all.

class RuntimeSocket::Connection {
 public:
  explicit Connection(RuntimeSocket& owner) : owner_(owner) {}
  ~Connection() {
    for (WriteReq* req : writes_) {
      req->connection = nullptr;
    }
  }

  bool open(uv_loop_t* loop) {
    if (pipe_.init(uv_pipe_init, loop, 0) != 0 || timer_.init(uv_timer_init, loop) != 0) {
      return false;
    }
    pipe_.get()->data = this;
    timer_.get()->data = this;
    return true;
  }
  uv_stream_t* stream() { return pipe_.stream(); }

  void start() {
    armIdleTimer();
    uv_read_start(pipe_.stream(), &Connection::onAlloc, &Connection::onRead);
  }

  // Closes both handles now; pending writes are cancelled.
  void close() {
    if (closing_) {
      return;
    }
    closing_ = true;
    uv_read_stop(pipe_.stream());
    pipe_.close([this] { onHandleClosed(); });
    timer_.close([this] { onHandleClosed(); });
  }

 private:
  struct WriteReq {
    uv_write_t req{};
    std::string data;
    Connection* connection = nullptr;
  };

  static void onAlloc(uv_handle_t* handle, size_t /*suggested*/, uv_buf_t* buf) {
    auto* self = static_cast<Connection*>(handle->data);
    *buf = uv_buf_init(self->read_buf_, sizeof(self->read_buf_));
  }

  static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<Connection*>(stream->data);
    if (nread > 0) {
      self->onData(std::string_view(buf->base, static_cast<size_t>(nread)));
    } else if (nread == UV_EOF) {
      self->onEof();
    } else if (nread < 0) {
      self->close();  // the peer is gone: nobody to answer
    }
  }

  void onData(std::string_view data) {
    if (done_reading_) {
      return;
    }
    armIdleTimer();
    in_.append(data);
    runLines();
  }

  // EOF: a last line without its newline still runs (HAProxy would drop it), then the
  // connection closes once the answers are written.
  void onEof() {
    uv_read_stop(pipe_.stream());
    eof_ = true;
    if (!done_reading_) {
      runRest();
    }
  }

  // After EOF: the complete lines left, then the unterminated one. Waits (returns) while the
  // peer is behind reading; onWriteDone() calls again.
  void runRest() {
    runLines();
    if (done_reading_ || closing_ || reading_paused_) {
      return;
    }
    if (!in_.empty()) {
      std::string line = std::move(in_);
      in_.clear();
      runLine(line);
    }
    finish();
  }

  bool throttled() { return uv_stream_get_write_queue_size(pipe_.stream()) > kMaxPendingOutput; }

  // Runs each complete line in in_, in order, until the connection is done or the peer
  // falls behind reading the answers (then reading pauses until a write completes).
  void runLines() {
    while (!done_reading_ && !closing_) {
      if (throttled()) {
        uv_read_stop(pipe_.stream());
        reading_paused_ = true;
        return;
      }
      size_t newline = in_.find('\n');
      if (newline == std::string::npos) {
        break;
      }
      std::string line = in_.substr(0, newline);
      in_.erase(0, newline + 1);
      runLine(line);
      // HAProxy's non-interactive mode answers the lines that came together, then closes.
      if (!interactive_ && in_.find('\n') == std::string::npos) {
        finish();
      }
    }
    if (!done_reading_ && in_.size() > kMaxLine) {
      send("Line too long (more than " + std::to_string(kMaxLine) + " bytes).\n");
      finish();
    }
  }

  // One line: its ';'-separated commands in order. `prompt` and `quit` act on the
  // connection; the others go to the runner. After each command comes HAProxy's
  // separator: an empty line, or "\n> " in interactive mode.
  void runLine(std::string_view line) {
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    std::string out;
    size_t start = 0;
    while (start <= line.size() && !quit_) {
      size_t end = std::min(line.find(';', start), line.size());
      std::string_view command = trim(line.substr(start, end - start));
      start = end + 1;
      if (command.empty()) {
        continue;
      }
      if (command == "quit") {
        quit_ = true;
        break;
      }
      if (command == "prompt") {
        interactive_ = !interactive_;
      } else {
        out += owner_.run_(command).output;
      }
      out += interactive_ ? "\n> " : "\n";
    }
    send(std::move(out));
    if (quit_) {
      finish();
    }
  }

  static std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
      text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
      text.remove_suffix(1);
    }
    return text;
  }

  void send(std::string data) {
    if (data.empty() || closing_) {
      return;
    }
    auto* req = new WriteReq;
    req->data = std::move(data);
    req->connection = this;
    req->req.data = req;
    uv_buf_t buf = uv_buf_init(req->data.data(), static_cast<unsigned>(req->data.size()));
    int rc = uv_write(&req->req, pipe_.stream(), &buf, 1, &Connection::onWritten);
    if (rc != 0) {
      delete req;
      close();
      return;
    }
    writes_.insert(req);
  }

  static void onWritten(uv_write_t* write, int status) {
    auto* req = static_cast<WriteReq*>(write->data);
    Connection* self = req->connection;
    if (self != nullptr) {
      self->writes_.erase(req);
    }
    delete req;
    if (self != nullptr) {
      self->onWriteDone(status);
    }
  }

  void onWriteDone(int status) {
    if (closing_) {
      return;
    }
    if (status != 0) {
      close();
      return;
    }
    armIdleTimer();
    if (reading_paused_ && !throttled()) {
      reading_paused_ = false;
      if (eof_) {
        runRest();
      } else {
        runLines();
        if (!done_reading_ && !reading_paused_ && !closing_) {
          uv_read_start(pipe_.stream(), &Connection::onAlloc, &Connection::onRead);
        }
      }
    }
    maybeClose();
  }

  // No more input is wanted; the connection closes when its answers are out.
  void finish() {
    done_reading_ = true;
    uv_read_stop(pipe_.stream());
    maybeClose();
  }

  void maybeClose() {
    if (done_reading_ && writes_.empty()) {
      close();
    }
  }

  void armIdleTimer() {
    if (!closing_) {
      uv_timer_start(timer_.get(), &Connection::onIdle, owner_.idle_timeout_ms_, 0);
    }
  }

  static void onIdle(uv_timer_t* timer) { static_cast<Connection*>(timer->data)->close(); }

  void onHandleClosed() {
    if (++handles_closed_ == 2) {
      owner_.onConnectionClosed(this);  // deletes this
    }
  }

  RuntimeSocket& owner_;
  UvHandle<uv_pipe_t> pipe_;
  UvHandle<uv_timer_t> timer_;
  char read_buf_[16384];
  std::string in_;
  std::set<WriteReq*> writes_;
  bool interactive_ = false;
  bool quit_ = false;
  bool done_reading_ = false;
  bool eof_ = false;
  bool reading_paused_ = false;
  bool closing_ = false;
  int handles_closed_ = 0;
};

// ---------------------------------------------------------------------------------------

RuntimeSocket::RuntimeSocket(uv_loop_t* loop, std::string path, RunFn run)
    : loop_(loop), path_(std::move(path)), run_(std::move(run)) {}

// Without stop() the handles still close (UvHandle frees them later), but nobody waits for
// them: connections are dropped here, and their pending write callbacks see no connection.
RuntimeSocket::~RuntimeSocket() {
  connections_.clear();
  if (listening_) {
    ::unlink(path_.c_str());
  }
}

bool RuntimeSocket::start(std::string* error) {
  sockaddr_un addr{};
  if (path_.empty() || path_.size() >= sizeof(addr.sun_path)) {
    *error = "runtime socket path '" + path_ + "' is empty or longer than " +
             std::to_string(sizeof(addr.sun_path) - 1) + " bytes";
    return false;
  }
  if (!clearPath(path_, error)) {
    return false;
  }
  int rc = server_.init(uv_pipe_init, loop_, 0);
  if (rc == 0) {
    server_.get()->data = this;
    rc = uv_pipe_bind(server_.get(), path_.c_str());
  }
  if (rc != 0) {
    *error = "cannot bind the runtime socket " + path_ + ": " + uv_strerror(rc);
    closeServer();
    return false;
  }
  // Until listen() the socket refuses connections, so nobody can get in before the mode is
  // owner-only.
  if (::chmod(path_.c_str(), 0600) != 0) {
    *error = "cannot set mode 0600 on " + path_ + ": " + errnoText(errno);
    closeServer();
    ::unlink(path_.c_str());
    return false;
  }
  rc = uv_listen(server_.stream(), 64, &RuntimeSocket::onConnection);
  if (rc != 0) {
    *error = "cannot listen on the runtime socket " + path_ + ": " + uv_strerror(rc);
    closeServer();
    ::unlink(path_.c_str());
    return false;
  }
  listening_ = true;
  TLOG_INFO("runtime socket listening on %s", path_.c_str());
  return true;
}

void RuntimeSocket::onConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<RuntimeSocket*>(server->data);
  if (status != 0 || self->stopping_) {
    return;
  }
  self->accept();
}

// Over the limit the connection is accepted and closed at once: left in the backlog it
// would make libuv call again and again.
void RuntimeSocket::accept() {
  auto connection = std::make_unique<Connection>(*this);
  if (!connection->open(loop_)) {
    return;
  }
  Connection* raw = connection.get();
  connections_.push_back(std::move(connection));
  if (uv_accept(server_.stream(), raw->stream()) != 0) {
    raw->close();
    return;
  }
  if (connections_.size() > kMaxConnections) {
    TLOG_WARN("runtime socket %s: more than %zu connections, closing the newest", path_.c_str(),
              kMaxConnections);
    raw->close();
    return;
  }
  raw->start();
}

void RuntimeSocket::onConnectionClosed(Connection* connection) {
  for (auto it = connections_.begin(); it != connections_.end(); ++it) {
    if (it->get() == connection) {
      connections_.erase(it);
      break;
    }
  }
  maybeFinishStop();
}

void RuntimeSocket::stop(std::function<void()> done) {
  if (done) {
    stop_done_.push_back(std::move(done));
  }
  if (stopping_) {
    maybeFinishStop();
    return;
  }
  stopping_ = true;
  if (listening_) {
    ::unlink(path_.c_str());
    listening_ = false;
  }
  for (const auto& connection : connections_) {
    connection->close();
  }
  closeServer();
}

// Once, from start() on failure or from stop(): a second close() of the handle would do
// nothing, and its callback would never come.
void RuntimeSocket::closeServer() {
  server_.close([this] {
    server_closed_ = true;
    maybeFinishStop();
  });
}

void RuntimeSocket::maybeFinishStop() {
  if (!stopping_ || !server_closed_ || !connections_.empty()) {
    return;
  }
  auto callbacks = std::move(stop_done_);
  stop_done_.clear();
  for (auto& done : callbacks) {
    done();
  }
}

}  // namespace tandem
