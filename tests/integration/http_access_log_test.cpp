// The access log through the real binary: one line per request, in HAProxy's httplog
// layout or as JSON, to a file or to stdout.
#include <regex>

#include "tests/integration/http_harness.h"

namespace tandem::it {
namespace {

class HttpAccessLogTest : public HttpTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(web1_.start()) << web1_.log();
    spec_ = httpSpec({{"web1", web1_.port()}});
    log_path_ = (dir_.path() / "access.log").string();
  }

  // Sends GET `path` and returns its status.
  int get(const std::string& path) {
    std::optional<HttpResponse> r = fetch(spec_.frontendPort(), getRequest(path));
    return r ? r->status : 0;
  }

  // The access-log lines in `text` that carry `request_line`, once there is at least one.
  static std::vector<std::string> waitForLines(const std::function<std::string()>& text,
                                               const std::string& request_line) {
    std::vector<std::string> lines;
    eventually(
        [&] {
          lines = linesWith(text(), request_line);
          return !lines.empty();
        },
        kStateTimeout);
    return lines;
  }

  std::vector<std::string> fileLines(const std::string& request_line) {
    return waitForLines([this] { return readFile(log_path_); }, request_line);
  }

  PhpServer web1_{"web1"};
  ConfigSpec spec_;
  std::string log_path_;
};

// 127.0.0.1:41234 [03/Dec/2026:13:01:02.345] fe be/web1 0/0/1/3/4 200 187 - - ---- 1/1/0/0/0
// 0/0 "GET /x HTTP/1.1"
const std::regex kHttplog(
    R"re(^127\.0\.0\.1:\d+ \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] (\S+) (\S+) )re"
    R"re(-?\d+/-?\d+/-?\d+/-?\d+/-?\d+ (\d{3}) \d+ \S+ \S+ \S{4} \d+/\d+/\d+/\d+/\d+ \d+/\d+ )re"
    R"re("([^"]*)"$)re");

TEST_F(HttpAccessLogTest, HaproxyLinesGoToTheFile) {
  spec_.access_log = log_path_;
  spec_.log_format = "haproxy";
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  ASSERT_EQ(get("/?page=1"), 200);
  ASSERT_EQ(get("/status/404"), 404);

  struct Expected {
    std::string request_line;
    std::string status;
  };
  for (const Expected& e :
       {Expected{"GET /?page=1 HTTP/1.1", "200"}, Expected{"GET /status/404 HTTP/1.1", "404"}}) {
    std::vector<std::string> lines = fileLines("\"" + e.request_line + "\"");
    ASSERT_EQ(lines.size(), 1u) << readFile(log_path_);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(lines[0], m, kHttplog)) << "not httplog: " << lines[0];
    EXPECT_EQ(m[1], "fe") << lines[0];
    EXPECT_EQ(m[2], "be/web1") << lines[0];
    EXPECT_EQ(m[3], e.status) << lines[0];
    EXPECT_EQ(m[4], e.request_line) << lines[0];
  }
}

TEST_F(HttpAccessLogTest, JsonLinesCarryTheSameFacts) {
  spec_.access_log = log_path_;
  spec_.log_format = "json";
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  ASSERT_EQ(get("/status/404"), 404);

  std::vector<std::string> lines = fileLines("GET /status/404 HTTP/1.1");
  ASSERT_EQ(lines.size(), 1u) << readFile(log_path_);
  std::optional<std::map<std::string, std::string>> fields = parseJsonObject(lines[0]);
  ASSERT_TRUE(fields) << "not one JSON object: " << lines[0];
  // The key names are the implementation's; the values are the request's.
  std::vector<std::string> values;
  for (const auto& [key, value] : *fields) {
    values.push_back(value);
  }
  EXPECT_EQ(countOf(values, "GET /status/404 HTTP/1.1"), 1) << lines[0];
  EXPECT_GE(countOf(values, "404"), 1) << lines[0];
  EXPECT_GE(countOf(values, "fe"), 1) << lines[0];
  EXPECT_GE(countOf(values, "web1") + countOf(values, "be/web1"), 1) << lines[0];
}

TEST_F(HttpAccessLogTest, StdoutIsTheDefault) {
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  ASSERT_EQ(get("/?to=stdout"), 200);
  std::vector<std::string> lines =
      waitForLines([this] { return tandem().log(); }, "\"GET /?to=stdout HTTP/1.1\"");
  ASSERT_EQ(lines.size(), 1u) << tandem().log();
  EXPECT_NE(lines[0].find(" fe be/web1 "), std::string::npos) << lines[0];
}

TEST_F(HttpAccessLogTest, OffWritesNoLine) {
  spec_.access_log = "off";
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  ASSERT_EQ(get("/?to=nowhere"), 200);
  // The request is answered, so its line would have been written by now; allow a flush.
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_TRUE(linesWith(tandem().log(), "/?to=nowhere").empty()) << tandem().log();
}

}  // namespace
}  // namespace tandem::it
