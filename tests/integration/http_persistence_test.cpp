// Cookie persistence through the real binary, with two real PHP servers: tandem names the
// server in a SERVERID cookie, requests carrying it stick to that server (so PHP sessions,
// stored per server here, keep working), and go to the other server when it dies.
#include "tests/integration/http_harness.h"

namespace tandem::it {
namespace {

// The value that a Set-Cookie header of `r` gives to cookie `name`, or nullopt.
std::optional<std::string> setCookie(const HttpResponse& r, const std::string& name) {
  for (const auto& [field, value] : r.headers.fields) {
    if (equalsIgnoreCase(field, "Set-Cookie") && value.rfind(name + "=", 0) == 0) {
      size_t end = value.find(';');
      return value.substr(name.size() + 1, end == std::string::npos ? end : end - name.size() - 1);
    }
  }
  return std::nullopt;
}

std::string setCookieHeaders(const HttpResponse& r) {
  std::string out;
  for (const auto& [field, value] : r.headers.fields) {
    if (equalsIgnoreCase(field, "Set-Cookie")) {
      out += value + "\n";
    }
  }
  return out;
}

class HttpPersistenceTest : public HttpTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(web1_.start()) << web1_.log();
    ASSERT_TRUE(web2_.start()) << web2_.log();
    spec_ = httpSpec({{"web1", web1_.port()}, {"web2", web2_.port()}});
    spec_.backend().cookie = "SERVERID";
    spec_.backend().check = CheckSpec{};
    ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  }

  // The names of the servers that answered `count` GETs of "/" carrying `cookie`.
  std::vector<std::string> namesWithCookie(const std::string& cookie, int count) {
    std::vector<std::string> names;
    for (int i = 0; i < count; ++i) {
      std::optional<HttpResponse> r =
          fetch(spec_.frontendPort(), getRequest("/", "Cookie: " + cookie + "\r\n"));
      names.push_back(r && r->status == 200 ? r->body : "(failed)");
    }
    return names;
  }

  PhpServer web1_{"web1"}, web2_{"web2"};
  ConfigSpec spec_;
};

TEST_F(HttpPersistenceTest, FirstResponseNamesTheServer) {
  for (int i = 0; i < 4; ++i) {
    std::optional<HttpResponse> r = fetch(spec_.frontendPort(), getRequest("/"));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(setCookie(*r, "SERVERID"), r->body) << setCookieHeaders(*r);
  }
}

TEST_F(HttpPersistenceTest, RequestsWithTheCookieStick) {
  for (const std::string name : {"web1", "web2"}) {
    std::vector<std::string> names = namesWithCookie("SERVERID=" + name, 10);
    EXPECT_EQ(countOf(names, name), 10) << "SERVERID=" << name;
  }
  // Among other cookies, as a browser sends it.
  std::vector<std::string> names = namesWithCookie("lang=en; SERVERID=web2; theme=dark", 6);
  EXPECT_EQ(countOf(names, "web2"), 6);
}

// Each PHP server keeps its own session files: the counter only climbs if every request of
// the session reaches the same server.
TEST_F(HttpPersistenceTest, PhpSessionSurvivesManyRequests) {
  std::optional<HttpResponse> first = fetch(spec_.frontendPort(), getRequest("/session"));
  ASSERT_TRUE(first);
  std::optional<std::string> server = setCookie(*first, "SERVERID");
  std::optional<std::string> session = setCookie(*first, "PHPSESSID");
  ASSERT_TRUE(server && session) << setCookieHeaders(*first);
  EXPECT_EQ(first->body, *server + " n=1");

  std::string cookies = "Cookie: SERVERID=" + *server + "; PHPSESSID=" + *session + "\r\n";
  for (int n = 2; n <= 8; ++n) {
    std::optional<HttpResponse> r = fetch(spec_.frontendPort(), getRequest("/session", cookies));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, *server + " n=" + std::to_string(n));
  }
}

TEST_F(HttpPersistenceTest, KilledServerHandsItsClientsToTheOther) {
  size_t mark = tandem().logMark();
  web1_.kill();
  // Before the checks notice: the refused connect is retried on web2.
  std::vector<std::string> names = namesWithCookie("SERVERID=web1", 5);
  EXPECT_EQ(countOf(names, "web2"), 5) << "right after the kill";

  ASSERT_TRUE(tandem().waitForLog("server be/web1 is DOWN", kStateTimeout, mark));
  std::optional<HttpResponse> r =
      fetch(spec_.frontendPort(), getRequest("/", "Cookie: SERVERID=web1\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "web2");
  EXPECT_EQ(setCookie(*r, "SERVERID"), "web2") << "the client should be pinned to its new server:\n"
                                               << setCookieHeaders(*r);

  mark = tandem().logMark();
  ASSERT_TRUE(web1_.start()) << web1_.log();
  ASSERT_TRUE(tandem().waitForLog("server be/web1 is UP", kStateTimeout, mark));
  names = namesWithCookie("SERVERID=web1", 5);
  EXPECT_EQ(countOf(names, "web1"), 5) << "web1 is back and the cookie names it";
}

}  // namespace
}  // namespace tandem::it
