// Server failures in HTTP mode through the real binary, with real PHP servers: a server
// killed under load costs no client a request, HTTP health checks follow the status a
// server answers, and passive checks take out a server that answers 5xx to real traffic.
#include "tests/integration/http_harness.h"

namespace tandem::it {
namespace {

std::string describe(const LoadResult& r) {
  std::string out = std::to_string(r.ok) + " ok, " + std::to_string(r.failed) + " failed;";
  for (const auto& [body, n] : r.bodies) {
    out += " " + body + "=" + std::to_string(n);
  }
  for (const std::string& f : r.failures) {
    out += "\n  " + f;
  }
  return out;
}

class HttpFailoverTest : public HttpTest {
 protected:
  // HTTP checks of /health every 100 ms, rise 2, fall 2.
  static CheckSpec httpCheck() {
    CheckSpec check;
    check.type = "http";
    check.path = "/health";
    return check;
  }
};

TEST_F(HttpFailoverTest, KillingAServerUnderLoadFailsNoRequest) {
  PhpServer web1("web1"), web2("web2");
  ASSERT_TRUE(web1.start()) << web1.log();
  ASSERT_TRUE(web2.start()) << web2.log();
  ConfigSpec spec = httpSpec({{"web1", web1.port()}, {"web2", web2.port()}});
  spec.backend().check = httpCheck();
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  // 4 keep-alive clients for 3 s (at most 5000 requests each); web1 dies after 1 s.
  GetLoad load(spec.frontendPort(), "/slow?ms=5", 4, milliseconds(3000), 5000);
  std::this_thread::sleep_for(milliseconds(1000));
  size_t mark = tandem().logMark();
  web1.kill();
  LoadResult result = load.wait();

  EXPECT_EQ(result.failed, 0) << describe(result);
  EXPECT_GT(result.bodies["web1"], 0)
      << "web1 took no traffic before the kill: " << describe(result);
  EXPECT_GT(result.bodies["web2"], 0) << describe(result);
  EXPECT_TRUE(tandem().waitForLog("server be/web1 is DOWN", kStateTimeout, mark));
}

TEST_F(HttpFailoverTest, HttpCheckFollowsTheStatus) {
  PhpServer web1("web1"), web2("web2");
  ASSERT_TRUE(web1.start()) << web1.log();
  ASSERT_TRUE(web2.start()) << web2.log();
  ConfigSpec spec = httpSpec({{"web1", web1.port()}, {"web2", web2.port()}});
  spec.backend().check = httpCheck();
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  size_t mark = tandem().logMark();
  web1.setHealth(503);
  ASSERT_TRUE(tandem().waitForLog("server be/web1 is DOWN", kStateTimeout, mark));
  // web1 still answers "/" fine; only its check says it is out.
  for (int i = 0; i < 6; ++i) {
    std::optional<HttpResponse> r = fetch(spec.frontendPort(), getRequest("/"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "web2") << "request " << i << " went to a DOWN server";
  }

  mark = tandem().logMark();
  web1.setHealth(200);
  ASSERT_TRUE(tandem().waitForLog("server be/web1 is UP", kStateTimeout, mark));
  // 6 connections over 2 workers: one worker takes at least 3, and its roundrobin gives
  // web1 at least one of them.
  std::vector<std::string> names;
  for (int i = 0; i < 6; ++i) {
    std::optional<HttpResponse> r = fetch(spec.frontendPort(), getRequest("/"));
    names.push_back(r ? r->body : "(failed)");
  }
  EXPECT_GT(countOf(names, "web1"), 0) << "web1 is UP again but takes no traffic";
  EXPECT_EQ(countOf(names, "web1") + countOf(names, "web2"), 6);
}

// expect = [200, 204]: a 204 passes, a 302 (which the default 200-399 would accept) fails.
TEST_F(HttpFailoverTest, HttpCheckUsesTheExpectedStatuses) {
  PhpServer web1("web1");
  ASSERT_TRUE(web1.start()) << web1.log();
  ConfigSpec spec = httpSpec({{"web1", web1.port()}});
  spec.backend().check = httpCheck();
  spec.backend().check->expect = "[200, 204]";
  web1.setHealth(204);
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  size_t mark = tandem().logMark();
  web1.setHealth(302);
  ASSERT_TRUE(tandem().waitForLog("server be/web1 is DOWN", kStateTimeout, mark));
  mark = tandem().logMark();
  web1.setHealth(204);
  ASSERT_TRUE(tandem().waitForLog("server be/web1 is UP", kStateTimeout, mark));
}

// web1 answers 500 to "/" while its /health says 200. Three 500s in a row on real traffic
// take it out at once; the passing active check brings it back.
TEST_F(HttpFailoverTest, ServerAnswering5xxIsEjectedAfterErrorLimit) {
  PhpServer web1("web1", {{"WEB_STATUS", "500"}}), web2("web2");
  ASSERT_TRUE(web1.start()) << web1.log();
  ASSERT_TRUE(web2.start()) << web2.log();
  ConfigSpec spec = httpSpec({{"web1", web1.port()}, {"web2", web2.port()}});
  spec.backend().error_limit = 3;
  spec.backend().check = httpCheck();
  spec.backend().check->interval = "200ms";
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  size_t mark = tandem().logMark();
  int errors = 0;
  for (int i = 0; i < 20 && errors < 3; ++i) {
    ASSERT_EQ(linesWith(tandem().log().substr(mark), "be/web1 is DOWN").size(), 0u)
        << "DOWN after only " << errors << " errors";
    std::optional<HttpResponse> r = fetch(spec.frontendPort(), getRequest("/"));
    ASSERT_TRUE(r) << "request " << i;
    errors += r->status == 500 ? 1 : 0;
  }
  ASSERT_EQ(errors, 3);
  ASSERT_TRUE(tandem().waitForLog("server be/web1 is DOWN", kStateTimeout, mark));
  std::vector<std::string> down = linesWith(tandem().log().substr(mark), "be/web1 is DOWN");
  ASSERT_FALSE(down.empty());
  EXPECT_NE(down[0].find("reason"), std::string::npos) << down[0];
  EXPECT_TRUE(tandem().waitForLog("server be/web1 is UP", kStateTimeout, mark))
      << "the passing active check did not bring web1 back";
}

}  // namespace
}  // namespace tandem::it
