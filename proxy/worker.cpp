#include "proxy/worker.h"

#include "core/log.h"
#include "proxy/http_session.h"
#include "proxy/tcp_session.h"

namespace tandem {

namespace {

// While a listener is paused at maxconn or a session waits for a server slot, the worker
// looks again this often: the slot may be freed by a session on another worker, which does
// not wake this loop.
constexpr uint64_t kQueueTickMs = 10;

}  // namespace

Worker::Worker(Runtime& runtime, int index, std::vector<std::vector<int>> listen_fds,
               AccessLog* access_log)
    : runtime_(runtime),
      index_(index),
      listen_fds_(std::move(listen_fds)),
      upstreams_(initLoop(&loop_)) {
  if (access_log != nullptr && access_log->enabled()) {
    access_log_ = access_log->makeBuffer();
  }
  async_.init(uv_async_init, &loop_, &Worker::onAsync);
  async_.get()->data = this;
  queue_tick_.init(uv_timer_init, &loop_);
  queue_tick_.get()->data = this;
}

uv_loop_t* Worker::initLoop(uv_loop_t* loop) {
  uv_loop_init(loop);
  return loop;
}

Worker::~Worker() {
  // The loop has ended (join() returned): every handle is closed and its memory freed.
  uv_loop_close(&loop_);
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Worker::run() {
  openListeners();
  uv_timer_start(queue_tick_.get(), &Worker::onQueueTick, kQueueTickMs, kQueueTickMs);
  uv_run(&loop_, UV_RUN_DEFAULT);
  finished_.store(true);
}

void Worker::openListeners() {
  const auto& frontends = runtime_.frontends();
  for (size_t i = 0; i < frontends.size(); ++i) {
    Frontend& fe = *frontends[i];
    for (int fd : listen_fds_[i]) {
      auto listener = std::make_unique<Listener>(
          &loop_, fe, fd, [this](Listener& l, std::unique_ptr<UvHandle<uv_tcp_t>> client) {
            Session* session;
            if (l.frontend().cfg().mode == Mode::kHttp) {
              session = new HttpSession(*this, l.frontend(), std::move(client));
            } else {
              session = new TcpSession(*this, l.frontend(), std::move(client));
            }
            session->start();
          });
      int rc = listener->start();
      if (rc != 0) {
        TLOG_ERROR("worker %d: frontend %s cannot listen: %s", index_, fe.name().c_str(),
                   uv_strerror(rc));
        continue;
      }
      listeners_.push_back(std::move(listener));
    }
  }
}

Balancer& Worker::balancerFor(Backend& backend) {
  auto it = balancers_.find(&backend);
  if (it == balancers_.end()) {
    it = balancers_.emplace(&backend, makeBalancer(backend)).first;
  }
  return *it->second;
}

void Worker::addSession(Session* s) {
  s->next = sessions_;
  if (sessions_ != nullptr) {
    sessions_->prev = s;
  }
  sessions_ = s;
  ++session_count_;
}

void Worker::removeSession(Session* s, Frontend& frontend) {
  if (s->prev != nullptr) {
    s->prev->next = s->next;
  } else {
    sessions_ = s->next;
  }
  if (s->next != nullptr) {
    s->next->prev = s->prev;
  }
  --session_count_;
  frontend.counters.onClose();
  if (!stopping_) {
    for (auto& l : listeners_) {
      l->resume();
    }
  }
  maybeFinish();
}

void Worker::requestStop() {
  stop_requested_.store(true);
  wake();
}

void Worker::requestForceClose() {
  force_requested_.store(true);
  wake();
}

void Worker::requestShutdownCheck() {
  shutdown_check_requested_.store(true);
  wake();
}

void Worker::wake() {
  std::lock_guard<std::mutex> lock(async_mutex_);
  if (!async_closed_) {
    uv_async_send(async_.get());
  }
}

void Worker::onAsync(uv_async_t* async) {
  static_cast<Worker*>(async->data)->handleRequests();
}

void Worker::handleRequests() {
  if (shutdown_check_requested_.exchange(false)) {
    for (Session* s = sessions_; s != nullptr;) {
      Session* next = s->next;  // close() keeps s in the list until its handles close
      s->checkShutdown();
      s = next;
    }
  }
  if (stop_requested_.load() && !stopping_) {
    stopping_ = true;
    for (auto& l : listeners_) {
      l->close();
    }
    for (Session* s = sessions_; s != nullptr;) {
      Session* next = s->next;
      s->onStopping();
      s = next;
    }
    maybeFinish();
  }
  if (force_requested_.exchange(false)) {
    for (Session* s = sessions_; s != nullptr;) {
      Session* next = s->next;
      s->close();
      s = next;
    }
  }
}

void Worker::onQueueTick(uv_timer_t* timer) {
  static_cast<Worker*>(timer->data)->retryWaiting();
}

void Worker::retryWaiting() {
  if (stopping_) {
    return;
  }
  upstreams_.sweep(uv_now(&loop_));
  // Access-log lines leave the worker in batches, every 100 ms (10 ticks).
  if (access_log_ != nullptr && ++ticks_ % 10 == 0) {
    access_log_->flush();
  }
  for (auto& l : listeners_) {
    l->resume();
  }
  for (Session* s = sessions_; s != nullptr;) {
    Session* next = s->next;
    if (s->queued()) {
      s->retryQueued();
    }
    s = next;
  }
}

// Once stopping and the last session is gone, closing the worker's own handles lets
// uv_run() return.
void Worker::maybeFinish() {
  if (!stopping_ || session_count_ != 0) {
    return;
  }
  {
    std::lock_guard<std::mutex> lock(async_mutex_);
    async_closed_ = true;
    async_.close();
  }
  queue_tick_.close();
  upstreams_.closeAll();
  if (access_log_ != nullptr) {
    access_log_->flush();
  }
}

}  // namespace tandem
