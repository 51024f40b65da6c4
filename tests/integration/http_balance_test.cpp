// HTTP-only balancing through the real binary: `uri` hashes the path, `hdr(NAME)` a header,
// so the same key always reaches the same server while different keys spread out.
#include <set>

#include "tests/integration/http_harness.h"

namespace tandem::it {
namespace {

constexpr int kKeys = 16;
constexpr int kRepeats = 4;

class HttpBalanceTest : public HttpTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(web1_.start()) << web1_.log();
    ASSERT_TRUE(web2_.start()) << web2_.log();
    spec_ = httpSpec({{"web1", web1_.port()}, {"web2", web2_.port()}});
  }

  // For each key, the set of servers that answered its requests (over new connections, so
  // both workers are involved).
  std::vector<std::set<std::string>> serversPerKey(
      const std::function<std::string(int key)>& request) {
    std::vector<std::set<std::string>> out(kKeys);
    for (int round = 0; round < kRepeats; ++round) {
      for (int key = 0; key < kKeys; ++key) {
        std::optional<HttpResponse> r = fetch(spec_.frontendPort(), request(key));
        out[static_cast<size_t>(key)].insert(r && r->status == 200 ? r->body : "(failed)");
      }
    }
    return out;
  }

  static void expectStickyAndSpread(const std::vector<std::set<std::string>>& seen) {
    std::set<std::string> all;
    for (size_t key = 0; key < seen.size(); ++key) {
      EXPECT_EQ(seen[key].size(), 1u) << "key " << key << " went to several servers";
      all.insert(seen[key].begin(), seen[key].end());
    }
    EXPECT_EQ(all, (std::set<std::string>{"web1", "web2"})) << kKeys << " keys, one server";
  }

  PhpServer web1_{"web1"}, web2_{"web2"};
  ConfigSpec spec_;
};

TEST_F(HttpBalanceTest, UriSticksEachPathToOneServer) {
  spec_.backend().balance = "uri";
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  // The query string changes every time; only the path is hashed.
  int query = 0;
  expectStickyAndSpread(serversPerKey([&query](int key) {
    return getRequest("/name/k" + std::to_string(key) + "?q=" + std::to_string(query++));
  }));
}

TEST_F(HttpBalanceTest, HeaderSticksEachValueToOneServer) {
  spec_.backend().balance = "hdr(X-User)";
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  expectStickyAndSpread(serversPerKey(
      [](int key) { return getRequest("/", "X-User: user" + std::to_string(key) + "\r\n"); }));
}

}  // namespace
}  // namespace tandem::it
