// Durations as operators write them in the config: "250ms", "2s", "1m", "1h", "1d".
//
//   parseDuration("250ms") -> 250 ms      parseDuration("2s") -> 2000 ms
//   parseDuration("1m")    -> 60000 ms    parseDuration("2")  -> nullopt (a unit is required)
//
// Tandem keeps every duration in milliseconds: libuv timers tick in milliseconds.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tandem {

using Millis = std::chrono::milliseconds;

// Returns nullopt for an empty string, a missing or unknown unit, a negative number, a
// fraction, or a value past 30 days (no timeout in a load balancer needs more).
std::optional<Millis> parseDuration(std::string_view text);

// The shortest exact spelling: 1500 ms -> "1500ms", 2000 ms -> "2s", 60000 ms -> "1m".
std::string formatDuration(Millis d);

}  // namespace tandem
