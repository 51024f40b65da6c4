#include "admin/service.h"

#include <chrono>

#include "core/log.h"

namespace tandem {
namespace {

constexpr uint64_t kSampleIntervalMs = 1000;

int64_t wallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

AdminService::AdminService(uv_loop_t* loop, Runtime& runtime, Operations& operations,
                           ProcessInfo process, const AccessLog* access_log)
    : loop_(loop),
      runtime_(runtime),
      operations_(operations),
      process_(std::move(process)),
      access_log_(access_log),
      rates_(runtime) {}

AdminService::~AdminService() = default;

bool AdminService::start(std::string* error) {
  const AdminConfig& config = runtime_.config().admin;
  if (config.listen) {
    http_ = std::make_unique<AdminHttpServer>(
        loop_, config,
        AdminHttpServer::Sources{runtime_, operations_, process_, &rates_, access_log_});
    std::string why;
    if (!http_->start(*config.listen, &why)) {
      *error = "admin: cannot listen on " + why;
      return false;
    }
  }
  if (!config.socket.empty()) {
    socket_ = std::make_unique<RuntimeSocket>(
        loop_, config.socket, [this](std::string_view line) { return runSocketCommand(line); });
    std::string why;
    if (!socket_->start(&why)) {
      *error = "admin: cannot open the runtime socket " + config.socket + ": " + why;
      return false;
    }
  }
  sample_timer_.init(uv_timer_init, loop_);
  sample_timer_.get()->data = this;
  rates_.sample(wallClockMs());
  uv_timer_start(sample_timer_.get(), &AdminService::onSample, kSampleIntervalMs,
                 kSampleIntervalMs);
  // Sampling must never keep the loop alive on its own: the listeners do that.
  uv_unref(sample_timer_.handle());
  return true;
}

void AdminService::onSample(uv_timer_t* timer) {
  auto* self = static_cast<AdminService*>(timer->data);
  self->rates_.sample(wallClockMs());
}

void AdminService::stop(std::function<void()> done) {
  stop_done_ = std::move(done);
  // One step for the timer, one per listener; the last to finish calls done.
  stop_pending_ = 1;
  if (http_) {
    ++stop_pending_;
    http_->stop([this] { finishStopStep(); });
  }
  if (socket_) {
    ++stop_pending_;
    socket_->stop([this] { finishStopStep(); });
  }
  sample_timer_.close([this] { finishStopStep(); });
}

void AdminService::finishStopStep() {
  if (--stop_pending_ == 0 && stop_done_) {
    auto done = std::move(stop_done_);
    stop_done_ = nullptr;
    done();
  }
}

std::string AdminService::url() const {
  const AdminConfig& config = runtime_.config().admin;
  if (!config.listen) {
    return "";
  }
  return "http://" + config.listen->str() + "/";
}

CommandResult AdminService::runSocketCommand(std::string_view line) {
  StatsView view{runtime_, process_, &rates_, wallClockMs()};
  CommandContext context{runtime_, operations_, view, "socket"};
  return runCommand(line, context);
}

}  // namespace tandem
