#include "core/address.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/un.h>

#include <cstring>

namespace tandem {
namespace {

using ::testing::HasSubstr;

HostPort parseOk(std::string_view text) {
  std::string why;
  std::optional<HostPort> hp = parseHostPort(text, &why);
  EXPECT_TRUE(hp.has_value()) << text << ": " << why;
  return hp.value_or(HostPort{});
}

std::string parseError(std::string_view text) {
  std::string why;
  std::optional<HostPort> hp = parseHostPort(text, &why);
  EXPECT_FALSE(hp.has_value()) << text << " parsed as " << hp->str();
  return why;
}

TEST(AddressTest, ParsesIpv4AndHostnames) {
  HostPort hp = parseOk("127.0.0.1:3306");
  EXPECT_EQ(hp.host, "127.0.0.1");
  EXPECT_EQ(hp.port, 3306);
  EXPECT_EQ(hp.str(), "127.0.0.1:3306");
  hp = parseOk("web1:80");
  EXPECT_EQ(hp.host, "web1");
  EXPECT_EQ(hp.port, 80);
  EXPECT_EQ(parseOk("db-1.internal_zone.example:65535").port, 65535);
  EXPECT_EQ(parseOk("h:1").port, 1);
}

TEST(AddressTest, ParsesBracketedIpv6) {
  HostPort hp = parseOk("[::1]:8090");
  EXPECT_EQ(hp.host, "::1");
  EXPECT_EQ(hp.port, 8090);
  EXPECT_EQ(hp.str(), "[::1]:8090");
  EXPECT_EQ(parseOk("[fd00::1:2]:443").host, "fd00::1:2");
  EXPECT_EQ(parseOk("[::]:80").str(), "[::]:80");
}

TEST(AddressTest, StarOrEmptyHostMeansAnyAddress) {
  EXPECT_EQ(parseOk("*:80").str(), "0.0.0.0:80");
  EXPECT_EQ(parseOk(":8090").str(), "0.0.0.0:8090");
}

TEST(AddressTest, RefusesBadPorts) {
  EXPECT_EQ(parseError("web1"), "expected \"host:port\", found no port");
  EXPECT_EQ(parseError("web1:"), "port \"\" is not a number");
  EXPECT_EQ(parseError("web1:http"), "port \"http\" is not a number");
  EXPECT_EQ(parseError("web1:80x"), "port \"80x\" is not a number");
  EXPECT_EQ(parseError("web1:-1"), "port \"-1\" is not a number");
  EXPECT_EQ(parseError("web1: 80"), "port \" 80\" is not a number");
  EXPECT_EQ(parseError("web1:0"), "port 0 is out of range 1..65535");
  EXPECT_EQ(parseError("web1:65536"), "port 65536 is out of range 1..65535");
  EXPECT_FALSE(parseError("web1:99999999999999999999999").empty());
}

TEST(AddressTest, RefusesBadHosts) {
  EXPECT_THAT(parseError("::1:80"), HasSubstr("must be written in brackets"));
  EXPECT_THAT(parseError("fd00::1:80"), HasSubstr("must be written in brackets"));
  EXPECT_EQ(parseError("[web1]:80"), "\"web1\" is not an IPv6 address");
  EXPECT_EQ(parseError("[]:80"), "\"\" is not an IPv6 address");
  EXPECT_EQ(parseError("web 1:80"), "\"web 1\" is not a valid host name or address");
  EXPECT_EQ(parseError("web/1:80"), "\"web/1\" is not a valid host name or address");
  EXPECT_EQ(parseError("**:80"), "\"**\" is not a valid host name or address");
  EXPECT_FALSE(parseError("[::1]80").empty());
  EXPECT_FALSE(parseError("").empty());
}

TEST(AddressTest, ResolvesNumericHostsWithoutDns) {
  sockaddr_storage ss;
  std::string error;
  ASSERT_TRUE(resolveHostPort(parseOk("127.0.0.1:3306"), &ss, &error)) << error;
  EXPECT_EQ(formatSockaddr(reinterpret_cast<sockaddr*>(&ss)), "127.0.0.1:3306");
  ASSERT_TRUE(resolveHostPort(parseOk("[::1]:8090"), &ss, &error)) << error;
  EXPECT_EQ(formatSockaddr(reinterpret_cast<sockaddr*>(&ss)), "[::1]:8090");
}

TEST(AddressTest, FormatsSockaddrs) {
  sockaddr_in in4;
  memset(&in4, 0, sizeof(in4));
  in4.sin_family = AF_INET;
  in4.sin_port = htons(3306);
  ASSERT_EQ(inet_pton(AF_INET, "10.1.2.3", &in4.sin_addr), 1);
  EXPECT_EQ(formatSockaddr(reinterpret_cast<sockaddr*>(&in4)), "10.1.2.3:3306");

  sockaddr_in6 in6;
  memset(&in6, 0, sizeof(in6));
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(65535);
  ASSERT_EQ(inet_pton(AF_INET6, "fd00::1", &in6.sin6_addr), 1);
  EXPECT_EQ(formatSockaddr(reinterpret_cast<sockaddr*>(&in6)), "[fd00::1]:65535");

  sockaddr_un un;
  memset(&un, 0, sizeof(un));
  un.sun_family = AF_UNIX;
  EXPECT_EQ(formatSockaddr(reinterpret_cast<sockaddr*>(&un)), "?");
}

}  // namespace
}  // namespace tandem
