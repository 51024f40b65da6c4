#include "health/rise_fall.h"

#include <algorithm>

namespace tandem {

// An unchecked server sits at health `rise`: the lowest UP value, where HAProxy also starts
// its servers, so its status shows "UP 1/fall" until the first result moves it.
RiseFall::RiseFall(int rise, int fall, bool start_up)
    : rise_(std::max(rise, 1)),
      fall_(std::max(fall, 1)),
      health_(start_up ? rise_ : 0),
      up_(start_up),
      checked_(!start_up) {}

RiseFall::Transition RiseFall::onResult(bool ok) {
  if (!checked_) {
    return onFirstResult(ok);
  }
  return ok ? onSuccess() : onFailure();
}

RiseFall::Transition RiseFall::markDown() {
  checked_ = true;
  health_ = 0;
  if (!up_) {
    return Transition::kNone;
  }
  up_ = false;
  return Transition::kWentDown;
}

RiseFall::Transition RiseFall::onFirstResult(bool ok) {
  checked_ = true;
  if (ok) {
    health_ = maxHealth();
    return Transition::kNone;  // it was already UP
  }
  health_ = 0;
  up_ = false;
  return Transition::kWentDown;
}

RiseFall::Transition RiseFall::onSuccess() {
  if (health_ < maxHealth()) {
    ++health_;
  }
  if (up_ || health_ < rise_) {
    return Transition::kNone;
  }
  // Reaching `rise` from below: UP, and at full health so that `fall` failures are needed
  // to take it down again.
  up_ = true;
  health_ = maxHealth();
  return Transition::kWentUp;
}

RiseFall::Transition RiseFall::onFailure() {
  if (health_ > 0) {
    --health_;
  }
  if (health_ >= rise_) {
    return Transition::kNone;
  }
  // Below `rise` the counter restarts from 0: a DOWN server on its way up (DOWN 1/2) is
  // back to DOWN, so only `rise` consecutive successes bring a server UP.
  health_ = 0;
  if (!up_) {
    return Transition::kNone;
  }
  up_ = false;
  return Transition::kWentDown;
}

std::string RiseFall::progress() const {
  if (up_) {
    if (health_ == maxHealth()) {
      return "UP";
    }
    return "UP " + std::to_string(health_ - rise_ + 1) + "/" + std::to_string(fall_);
  }
  if (health_ == 0) {
    return "DOWN";
  }
  return "DOWN " + std::to_string(health_) + "/" + std::to_string(rise_);
}

Millis RiseFall::nextInterval(const CheckConfig& cfg) const {
  if (up_ && health_ == maxHealth()) {
    return cfg.interval;
  }
  if (!up_ && health_ == 0) {
    return cfg.downinter;
  }
  return cfg.fastinter;
}

}  // namespace tandem
