// "host:port" addresses as written in the config, and their resolution to socket addresses.
//
//   "127.0.0.1:3306"   "[::1]:8090"   "web1:80" (a hostname)   "*:8090" or ":8090" (any address)
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tandem {

struct HostPort {
  std::string host;  // without brackets; "0.0.0.0" for "*" or an empty host
  uint16_t port = 0;

  std::string str() const;  // brackets IPv6 literals back: "[::1]:80"
};

// Checks the form only (no DNS): a non-empty host of hostname characters or an IP literal,
// and a port in 1..65535. On failure, *why says what is wrong ("port 70000 is out of range").
std::optional<HostPort> parseHostPort(std::string_view text, std::string* why);

// Resolves with getaddrinfo (blocking: call at start-up or off the event loops). Prefers
// the first address returned. On failure, *error holds gai_strerror's text.
bool resolveHostPort(const HostPort& hp, sockaddr_storage* out, std::string* error);

// "127.0.0.1:3306" or "[::1]:3306".
std::string formatSockaddr(const sockaddr* sa);

}  // namespace tandem
