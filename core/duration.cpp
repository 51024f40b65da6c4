#include "core/duration.h"

#include <cstdint>

namespace tandem {

namespace {

constexpr int64_t kMaxMillis = int64_t{30} * 24 * 3600 * 1000;

std::optional<int64_t> unitMillis(std::string_view unit) {
  if (unit == "ms")
    return 1;
  if (unit == "s")
    return 1000;
  if (unit == "m")
    return 60 * 1000;
  if (unit == "h")
    return 3600 * 1000;
  if (unit == "d")
    return int64_t{24} * 3600 * 1000;
  return std::nullopt;
}

}  // namespace

std::optional<Millis> parseDuration(std::string_view text) {
  size_t digits = 0;
  int64_t value = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    value = value * 10 + (text[digits] - '0');
    if (value > kMaxMillis) {
      return std::nullopt;
    }
    ++digits;
  }
  if (digits == 0) {
    return std::nullopt;
  }
  auto unit = unitMillis(text.substr(digits));
  if (!unit || value * *unit > kMaxMillis) {
    return std::nullopt;
  }
  return Millis(value * *unit);
}

std::string formatDuration(Millis d) {
  int64_t ms = d.count();
  if (ms != 0 && ms % (24 * 3600 * 1000) == 0)
    return std::to_string(ms / (24 * 3600 * 1000)) + "d";
  if (ms != 0 && ms % (3600 * 1000) == 0)
    return std::to_string(ms / (3600 * 1000)) + "h";
  if (ms != 0 && ms % 60000 == 0)
    return std::to_string(ms / 60000) + "m";
  if (ms != 0 && ms % 1000 == 0)
    return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace tandem
