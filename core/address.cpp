#include "core/address.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <charconv>
#include <cstring>

namespace tandem {

namespace {

bool isHostnameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

}  // namespace

std::string HostPort::str() const {
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

std::optional<HostPort> parseHostPort(std::string_view text, std::string* why) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    *why = "expected \"host:port\", found no port";
    return std::nullopt;
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  HostPort hp;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    in6_addr a6;
    if (inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1) {
      *why = "\"" + std::string(host) + "\" is not an IPv6 address";
      return std::nullopt;
    }
  } else if (host.find(':') != std::string_view::npos) {
    *why = "IPv6 addresses must be written in brackets, as \"[::1]:80\"";
    return std::nullopt;
  } else if (host.empty() || host == "*") {
    host = "0.0.0.0";
  } else {
    for (char c : host) {
      if (!isHostnameChar(c)) {
        *why = "\"" + std::string(host) + "\" is not a valid host name or address";
        return std::nullopt;
      }
    }
  }
  unsigned long port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size()) {
    *why = "port \"" + std::string(port_text) + "\" is not a number";
    return std::nullopt;
  }
  if (port < 1 || port > 65535) {
    *why = "port " + std::string(port_text) + " is out of range 1..65535";
    return std::nullopt;
  }
  hp.host = std::string(host);
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

bool resolveHostPort(const HostPort& hp, sockaddr_storage* out, std::string* error) {
  addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(hp.port);
  int rc = getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    *error = gai_strerror(rc);
    return false;
  }
  memset(out, 0, sizeof(*out));
  memcpy(out, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return true;
}

std::string formatSockaddr(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

}  // namespace tandem
