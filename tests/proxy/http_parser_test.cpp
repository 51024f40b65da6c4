#include "proxy/http_parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {
namespace {

using Event = HttpParser::Event;
using Kind = HttpParser::Kind;

// One reported event: what it was, the offset in the whole input where it ended, and a short
// description ("GET /a", "200", "error 400") so that sequences compare as a whole.
struct Step {
  Event event;
  size_t end;
  std::string what;
  bool operator==(const Step&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Step& s) {
  static const char* kNames[] = {"need-more", "head", "end", "error"};
  return os << "{" << kNames[static_cast<int>(s.event)] << " @" << s.end << " " << s.what << "}";
}

std::string describe(const HttpParser& p, Event e) {
  if (e == Event::kError) {
    return "error " + std::to_string(p.errorStatus());
  }
  if (e != Event::kHead) {
    return "";
  }
  const HttpHead& h = p.head();
  return h.status != 0 ? std::to_string(h.status) : h.method + " " + h.target;
}

// Feeds `input` cut into pieces at `cuts` (increasing offsets), the way a socket might deliver
// it, and returns every event but kNeedMore. After the input, feeds nothing until kNeedMore, to
// collect an end that needs no more bytes.
std::vector<Step> runCut(HttpParser& p, std::string_view input, const std::vector<size_t>& cuts) {
  std::vector<Step> steps;
  size_t pos = 0;
  auto drain = [&](size_t until) {
    for (;;) {
      auto r = p.feed(input.data() + pos, until - pos);
      pos += r.consumed;
      if (r.event == Event::kNeedMore) {
        EXPECT_EQ(pos, until);
        return true;
      }
      steps.push_back({r.event, pos, describe(p, r.event)});
      if (r.event == Event::kError) {
        return false;
      }
    }
  };
  for (size_t cut : cuts) {
    if (!drain(cut)) {
      return steps;
    }
  }
  drain(input.size());
  return steps;
}

std::vector<Step> runWhole(HttpParser& p, std::string_view input) {
  return runCut(p, input, {});
}

std::vector<size_t> everyByte(size_t n) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < n; ++i) {
    cuts.push_back(i);
  }
  return cuts;
}

std::vector<size_t> randomCuts(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<size_t> cuts;
  for (size_t pos = 0;;) {
    pos += 1 + rng() % 17;
    if (pos >= n) {
      return cuts;
    }
    cuts.push_back(pos);
  }
}

// Where an error is seen depends on the pieces (a bare LF is found at the end of the piece
// holding it), so an error's offset is left out of comparisons.
std::vector<Step> withoutErrorOffset(std::vector<Step> steps) {
  if (!steps.empty() && steps.back().event == Event::kError) {
    steps.back().end = 0;
  }
  return steps;
}

// The same events whether the input arrives whole, byte by byte, or in random pieces.
std::vector<Step> runAllWays(Kind kind, std::string_view input) {
  HttpParser whole(kind);
  std::vector<Step> expected = withoutErrorOffset(runWhole(whole, input));
  HttpParser bytewise(kind);
  EXPECT_EQ(withoutErrorOffset(runCut(bytewise, input, everyByte(input.size()))), expected)
      << "byte by byte";
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    HttpParser random(kind);
    EXPECT_EQ(withoutErrorOffset(runCut(random, input, randomCuts(input.size(), seed))), expected)
        << "seed " << seed;
  }
  return expected;
}

// --- requests that parse --------------------------------------------------------------------

TEST(HttpParserTest, RequestHeadFields) {
  std::string in =
      "GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nX-Spaces:  a  b \t\r\nX-Empty:\r\n"
      "Accept: */*\r\n\r\n";
  HttpParser p(Kind::kRequest);
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_EQ(r.consumed, in.size());
  const HttpHead& h = p.head();
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/a/b?c=d");
  EXPECT_EQ(h.version_major, 1);
  EXPECT_EQ(h.version_minor, 1);
  EXPECT_EQ(h.status, 0);
  ASSERT_EQ(h.headers.size(), 4u);
  EXPECT_EQ(h.headers[0].name, "Host");
  EXPECT_EQ(h.headers[0].value, "example.com");
  EXPECT_EQ(h.headers[1].value, "a  b");
  EXPECT_EQ(h.headers[2].name, "X-Empty");
  EXPECT_EQ(h.headers[2].value, "");
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.upgrade);
  EXPECT_FALSE(h.chunked);
  EXPECT_EQ(h.content_length, -1);
  EXPECT_FALSE(h.expect_continue);
  r = p.feed(in.data() + in.size(), 0);
  EXPECT_EQ(r.event, Event::kMessageEnd);
  EXPECT_EQ(r.consumed, 0u);
}

TEST(HttpParserTest, HeadStopsBeforeBodyAndBodyIsConsumedSilently) {
  std::string head = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n";
  std::string in = head + "0123456789";
  HttpParser p(Kind::kRequest);
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_EQ(r.consumed, head.size());
  EXPECT_EQ(p.head().content_length, 10);
  r = p.feed(in.data() + head.size(), 4);
  EXPECT_EQ(r.event, Event::kNeedMore);
  EXPECT_EQ(r.consumed, 4u);
  r = p.feed(in.data() + head.size() + 4, 6);
  EXPECT_EQ(r.event, Event::kMessageEnd);
  EXPECT_EQ(r.consumed, 6u);
}

TEST(HttpParserTest, PipelinedRequestsGiveTheSameEventsHoweverTheBytesArrive) {
  std::string in =
      "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
      "POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n3;flag\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n"
      "HEAD /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  std::vector<Step> expected = {
      {Event::kHead, 28, "GET /1"},   {Event::kMessageEnd, 28, ""},   // no body
      {Event::kHead, 76, "POST /2"},  {Event::kMessageEnd, 81, ""},   // Content-Length
      {Event::kHead, 138, "POST /3"}, {Event::kMessageEnd, 203, ""},  // chunked, trailers
      {Event::kHead, 251, "HEAD /4"}, {Event::kMessageEnd, 251, ""},  // closes
  };
  ASSERT_EQ(in.size(), 251u);
  EXPECT_EQ(runAllWays(Kind::kRequest, in), expected);
}

const std::string kChunkedHeadForData =
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

// Damaged copies of a pipelined exchange: whatever the parser decides about each one, it
// decides it the same way however the bytes are cut.
TEST(HttpParserTest, DamagedInputGivesTheSameEventsHoweverTheBytesArrive) {
  const std::string original =
      "GET /1 HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
      "POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;e=v\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
      "GET /4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  const std::string kDamage(
      "\r\n \t:;\0\x7f"
      "x0",
      10);
  std::mt19937 rng(7);
  for (int i = 0; i < 1000; ++i) {
    std::string in = original;
    for (int hits = 1 + static_cast<int>(rng() % 3); hits > 0; --hits) {
      in[rng() % in.size()] = kDamage[rng() % kDamage.size()];
    }
    SCOPED_TRACE(in);
    runAllWays(Kind::kRequest, in);
  }
}

TEST(HttpParserTest, ChunkedBodyWithExtensionsAndTrailers) {
  std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
  std::string body = "a;ext\r\n0123456789\r\n1;n=\"quoted\"\r\nx\r\n0\r\nTrailer-A: 1\r\n\r\n";
  HttpParser p(Kind::kRequest);
  std::string in = head + body;
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_TRUE(p.head().chunked);
  EXPECT_EQ(p.head().headers.size(), 2u);
  r = p.feed(in.data() + head.size(), body.size());
  EXPECT_EQ(r.event, Event::kMessageEnd);
  EXPECT_EQ(r.consumed, body.size());
  EXPECT_EQ(p.head().headers.size(), 2u) << "trailers are not headers";
}

TEST(HttpParserTest, LineEndRulesDoNotApplyToChunkData) {
  // Data with bare LF, bare CR, LF + SP and a fake last chunk: all of it is data.
  std::string data = "a\nb\rc\n d\r\n0\r\n\r\n";
  std::string in = kChunkedHeadForData + "f\r\n" + data + "\r\n0\r\n\r\n";
  ASSERT_EQ(data.size(), 0xfu);
  EXPECT_EQ(runAllWays(Kind::kRequest, in),
            (std::vector<Step>{{Event::kHead, kChunkedHeadForData.size(), "POST /"},
                               {Event::kMessageEnd, in.size(), ""}}));
}

TEST(HttpParserTest, KeepAliveFollowsTheVersionAndConnection) {
  struct Case {
    const char* request;
    bool keep_alive;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nHost: a\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n", true},
  };
  for (const Case& c : cases) {
    HttpParser p(Kind::kRequest);
    ASSERT_EQ(p.feed(c.request, strlen(c.request)).event, Event::kHead) << c.request;
    EXPECT_EQ(p.head().keep_alive, c.keep_alive) << c.request;
  }
}

TEST(HttpParserTest, NothingIsParsedAfterAMessageThatClosesTheConnection) {
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /x HTTP/1.1\r\n\r\n";
  HttpParser p(Kind::kRequest);
  auto steps = runWhole(p, in);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[1], (Step{Event::kMessageEnd, 46, ""}));
  EXPECT_EQ(steps[2].event, Event::kError);
  EXPECT_EQ(steps[2].end, 46u);
}

TEST(HttpParserTest, HeadersOfTheNextMessageReplaceThePrevious) {
  std::string in =
      "GET /1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n"
      "GET /2 HTTP/1.1\r\nHost: b\r\n\r\n";
  HttpParser p(Kind::kRequest);
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(p.head().headers.size(), 4u);
  size_t pos = r.consumed;
  r = p.feed(in.data() + pos, in.size() - pos);
  ASSERT_EQ(r.event, Event::kMessageEnd);
  r = p.feed(in.data() + pos, in.size() - pos);
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_EQ(p.head().target, "/2");
  ASSERT_EQ(p.head().headers.size(), 1u);
  EXPECT_EQ(p.head().headers[0].value, "b");
}

TEST(HttpParserTest, ExpectContinue) {
  std::string in = "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
  HttpParser p(Kind::kRequest);
  ASSERT_EQ(p.feed(in.data(), in.size()).event, Event::kHead);
  EXPECT_TRUE(p.head().expect_continue);
  EXPECT_EQ(p.head().content_length, 3);
}

TEST(HttpParserTest, UpgradeRequestEndsAfterItsHeadAndParsingGoesOnIfRefused) {
  std::string upgrade =
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  std::string next = "GET /after HTTP/1.1\r\nHost: a\r\n\r\n";
  HttpParser p(Kind::kRequest);
  std::string in = upgrade + next;
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_TRUE(p.head().upgrade);
  r = p.feed(in.data() + upgrade.size(), next.size());
  EXPECT_EQ(r.event, Event::kMessageEnd);
  EXPECT_EQ(r.consumed, 0u) << "what follows is the server's to decide";
  r = p.feed(in.data() + upgrade.size(), next.size());
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_EQ(p.head().target, "/after");
  EXPECT_FALSE(p.head().upgrade);
}

TEST(HttpParserTest, UpgradeHeaderWithoutConnectionUpgradeIsNoUpgrade) {
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
  HttpParser p(Kind::kRequest);
  ASSERT_EQ(p.feed(in.data(), in.size()).event, Event::kHead);
  EXPECT_FALSE(p.head().upgrade);
}

TEST(HttpParserTest, FinishBetweenRequestsLosesNothing) {
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  HttpParser p(Kind::kRequest);
  EXPECT_EQ(p.finish().event, Event::kNeedMore);
  runWhole(p, in);
  EXPECT_EQ(p.finish().event, Event::kNeedMore);
}

TEST(HttpParserTest, FinishInsideARequestIsAnError) {
  std::string in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab";
  HttpParser p(Kind::kRequest);
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.event, Event::kHead);
  p.feed(in.data() + r.consumed, in.size() - r.consumed);
  EXPECT_EQ(p.finish().event, Event::kError);
  EXPECT_EQ(p.errorStatus(), 400);

  HttpParser half(Kind::kRequest);
  half.feed("GET / HT", 8);
  EXPECT_EQ(half.finish().event, Event::kError);
}

// --- requests refused -----------------------------------------------------------------------

struct BadRequest {
  const char* name;
  std::string input;
  int status;
  int heads_before = 0;  // heads legitimately reported before the fault is seen (in a body)
};

std::ostream& operator<<(std::ostream& os, const BadRequest& b) {
  return os << b.name;
}

const std::string kChunkedHead = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
// Appended to each vector: a request that must never be reported, whatever came before.
const std::string kSmuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

class HttpParserRefusesTest : public ::testing::TestWithParam<BadRequest> {};

TEST_P(HttpParserRefusesTest, WithStatusAndNothingBehindIt) {
  const BadRequest& b = GetParam();
  std::string in = b.input + kSmuggled;
  std::vector<Step> steps = runAllWays(Kind::kRequest, in);
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.back().what, "error " + std::to_string(b.status));
  int heads = 0;
  for (const Step& s : steps) {
    heads += s.event == Event::kHead ? 1 : 0;
    EXPECT_NE(s.what, "GET /smuggled");
  }
  EXPECT_EQ(heads, b.heads_before);
  HttpParser p(Kind::kRequest);
  runWhole(p, in);
  EXPECT_FALSE(p.errorReason().empty());
  EXPECT_EQ(p.feed(kSmuggled.data(), kSmuggled.size()).event, Event::kError) << "errors stick";
}

INSTANTIATE_TEST_SUITE_P(
    Smuggling, HttpParserRefusesTest,
    ::testing::Values(
        BadRequest{"ContentLengthAndTransferEncoding",
                   "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                   400},
        BadRequest{"TransferEncodingAndContentLength",
                   "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                   "Content-Length: 5\r\n\r\n0\r\n\r\n",
                   400},
        BadRequest{"RepeatedEqualContentLength",
                   "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
                   "hello",
                   400},
        BadRequest{"DifferentContentLengths",
                   "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
                   "hello!",
                   400},
        BadRequest{"ContentLengthList",
                   "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello", 400},
        BadRequest{"ContentLengthSigned",
                   "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400},
        BadRequest{"TransferEncodingNotEndingInChunked",
                   "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nhello", 400},
        BadRequest{"TransferEncodingChunkedThenGzip",
                   "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                   "0\r\n\r\n",
                   400},
        BadRequest{"TransferEncodingTwice",
                   "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                   400},
        BadRequest{"TransferEncodingInHttp10",
                   "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                   400},
        BadRequest{"ChunkSizeNotHex", kChunkedHead + "zz\r\nhello\r\n0\r\n\r\n", 400, 1},
        BadRequest{"ChunkSizeTrailingSpace", kChunkedHead + "5 \r\nhello\r\n0\r\n\r\n", 400, 1},
        BadRequest{"ChunkSizeOverflow", kChunkedHead + "10000000000000000\r\nhello\r\n0\r\n\r\n",
                   400, 1},
        BadRequest{"ChunkSizeNegative", kChunkedHead + "-5\r\nhello\r\n0\r\n\r\n", 400, 1},
        BadRequest{"ObsFoldSpace", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400},
        BadRequest{"ObsFoldTab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400},
        BadRequest{"ObsFoldAfterRequestLine", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
        BadRequest{"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        BadRequest{"TabBeforeColon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400},
        BadRequest{"SpaceBeforeColonOfContentLength",
                   "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello", 400},
        BadRequest{"SpaceInName", "GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 400},
        BadRequest{"EmptyName", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400},
        BadRequest{"NoColon", "GET / HTTP/1.1\r\nHost: a\r\nFoo\r\n\r\n", 400},
        BadRequest{"BareLfAfterRequestLine", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
        BadRequest{"BareLfAfterHeader", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400},
        BadRequest{"BareLfEndingHead", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
        BadRequest{"BareLfEverywhere", "GET / HTTP/1.1\nHost: a\n\n", 400},
        BadRequest{"BareLfBeforeRequestLine", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        BadRequest{"BareLfAfterChunkSize", kChunkedHead + "5\nhello\r\n0\r\n\r\n", 400, 1},
        BadRequest{"BareLfAfterChunkData", kChunkedHead + "5\r\nhello\n0\r\n\r\n", 400, 1},
        BadRequest{"BareLfAfterLastChunk", kChunkedHead + "5\r\nhello\r\n0\n\r\n", 400, 1},
        BadRequest{"BareLfEndingTrailers", kChunkedHead + "5\r\nhello\r\n0\r\n\n", 400, 1},
        BadRequest{"BareLfInTrailer", kChunkedHead + "0\r\nX-T: 1\n\r\n", 400, 1},
        BadRequest{"BareLfAfterChunkExtension", kChunkedHead + "5;a=b\nhello\r\n0\r\n\r\n", 400, 1},
        BadRequest{"BareCrEndingHead", "GET / HTTP/1.1\r\nHost: a\r\n\rX", 400},
        BadRequest{"BareCrAfterChunkSize", kChunkedHead + "5\rhello\r\n0\r\n\r\n", 400, 1},
        BadRequest{"BareCrAfterChunkData", kChunkedHead + "5\r\nhello\rX0\r\n\r\n", 400, 1},
        BadRequest{"BareCrAfterLastChunk", kChunkedHead + "5\r\nhello\r\n0\rX\r\n", 400, 1},
        BadRequest{"BareCrEndingTrailers", kChunkedHead + "5\r\nhello\r\n0\r\n\rX", 400, 1},
        BadRequest{"BareCrAfterChunkExtension", kChunkedHead + "5;a=b\rXhello\r\n0\r\n\r\n", 400,
                   1},
        BadRequest{"ObsFoldInTrailer", kChunkedHead + "0\r\nX-T: 1\r\n 2\r\n\r\n", 400, 1},
        BadRequest{"SpaceBeforeColonInTrailer", kChunkedHead + "0\r\nX-T : 1\r\n\r\n", 400, 1},
        BadRequest{"NulInValue", std::string("GET / HTTP/1.1\r\nHost: a\r\nX: b\0c\r\n\r\n", 35),
                   400},
        BadRequest{"CtlInValue", "GET / HTTP/1.1\r\nHost: a\r\nX: b\x01z\r\n\r\n", 400},
        BadRequest{"EscInValue", "GET / HTTP/1.1\r\nHost: a\r\nX: b\x1bz\r\n\r\n", 400},
        BadRequest{"DelInValue", "GET / HTTP/1.1\r\nHost: a\r\nX: b\x7fz\r\n\r\n", 400},
        BadRequest{"CrInValue", "GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n", 400},
        BadRequest{"CtlInTrailerValue", kChunkedHead + "0\r\nX-T: \x7f\r\n\r\n", 400, 1},
        BadRequest{"Connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
        BadRequest{"TwoHostHeaders", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400},
        BadRequest{"TwoEqualHostHeaders", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
        BadRequest{"InvalidMethod", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        BadRequest{"LowercaseMethod", "get / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        BadRequest{"SpaceInTarget", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        BadRequest{"EightBitInTarget", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        BadRequest{"Http12", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400},
        BadRequest{"Http20", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400},
        BadRequest{"Http09", "GET /\r\n\r\n", 400},
        BadRequest{"Garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400}),
    [](const ::testing::TestParamInfo<BadRequest>& param) { return param.param.name; });

TEST(HttpParserTest, ConnectSaysWhy) {
  std::string in = "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n";
  HttpParser p(Kind::kRequest);
  ASSERT_EQ(p.feed(in.data(), in.size()).event, Event::kError);
  EXPECT_EQ(p.errorReason(), "CONNECT is not supported");
}

// --- limits ---------------------------------------------------------------------------------

// A request whose head (request line to the empty line included) is exactly `size` bytes.
std::string requestOfHeadSize(size_t size) {
  std::string start = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
  std::string end = "\r\n\r\n";
  return start + std::string(size - start.size() - end.size(), 'p') + end;
}

TEST(HttpParserTest, HeadAtTheSizeLimitPassesOneByteMoreIs431) {
  for (size_t size : {16384u, 16385u}) {
    std::string in = requestOfHeadSize(size) + kSmuggled;
    ASSERT_EQ(requestOfHeadSize(size).size(), size);
    HttpParser whole(Kind::kRequest);
    std::vector<Step> steps = runWhole(whole, in);
    HttpParser bytewise(Kind::kRequest);
    EXPECT_EQ(runCut(bytewise, in, everyByte(in.size())), steps);
    if (size == 16384) {
      ASSERT_EQ(steps.size(), 4u);
      EXPECT_EQ(steps[0], (Step{Event::kHead, size, "GET /"}));
    } else {
      ASSERT_EQ(steps.size(), 1u);
      EXPECT_EQ(steps[0].what, "error 431");
      EXPECT_LE(steps[0].end, size) << "no byte of what follows is consumed";
    }
  }
}

TEST(HttpParserTest, EndlessHeadIsRefusedAtTheLimit) {
  HttpParser::Limits limits;
  limits.max_head_bytes = 1000;
  HttpParser p(Kind::kRequest, limits);
  std::string in = "GET / HTTP/1.1\r\nX-Long: " + std::string(100000, 'x');
  auto r = p.feed(in.data(), in.size());
  EXPECT_EQ(r.event, Event::kError);
  EXPECT_EQ(p.errorStatus(), 431);
  EXPECT_EQ(r.consumed, 1001u) << "llhttp saw no more than the limit and one byte";
}

TEST(HttpParserTest, ConfiguredHeadLimitAppliesAcrossFeeds) {
  HttpParser::Limits limits;
  limits.max_head_bytes = 100;
  std::string ok = requestOfHeadSize(100);
  std::string big = requestOfHeadSize(101);
  HttpParser a(Kind::kRequest, limits);
  EXPECT_EQ(runCut(a, ok, everyByte(ok.size())).front().event, Event::kHead);
  HttpParser b(Kind::kRequest, limits);
  EXPECT_EQ(runCut(b, big, everyByte(big.size())).front().what, "error 431");
}

std::string requestWithHeaders(int count) {
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 1; i < count; ++i) {
    in += "X-H" + std::to_string(i) + ": v\r\n";
  }
  return in + "\r\n";
}

TEST(HttpParserTest, HundredHeadersPassHundredAndOneIs431) {
  HttpParser ok(Kind::kRequest);
  std::string in = requestWithHeaders(100);
  ASSERT_EQ(ok.feed(in.data(), in.size()).event, Event::kHead);
  EXPECT_EQ(ok.head().headers.size(), 100u);

  HttpParser over(Kind::kRequest);
  in = requestWithHeaders(101);
  ASSERT_EQ(over.feed(in.data(), in.size()).event, Event::kError);
  EXPECT_EQ(over.errorStatus(), 431);
}

// --- responses ------------------------------------------------------------------------------

TEST(HttpParserTest, ResponseHeadFields) {
  std::string in = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nServer: php\r\n\r\nno!";
  HttpParser p(Kind::kResponse);
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_EQ(p.head().status, 404);
  EXPECT_EQ(p.head().reason, "Not Found");
  EXPECT_EQ(p.head().content_length, 3);
  EXPECT_TRUE(p.head().method.empty());
  EXPECT_FALSE(p.bodyUntilClose());
  EXPECT_EQ(p.feed(in.data() + r.consumed, 3).event, Event::kMessageEnd);
}

TEST(HttpParserTest, ResponseToHeadHasNoBodyWhateverItsHeadersSay) {
  std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  std::string second = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
  std::string in = first + second;
  HttpParser p(Kind::kResponse);
  p.expectNoBody();
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_TRUE(p.head().keep_alive);
  r = p.feed(in.data() + first.size(), second.size());
  EXPECT_EQ(r.event, Event::kMessageEnd);
  EXPECT_EQ(r.consumed, 0u);
  // The next response (to a GET) has its body again.
  std::vector<Step> rest = runWhole(p, std::string_view(in).substr(first.size()));
  EXPECT_EQ(rest, (std::vector<Step>{{Event::kHead, 38, "200"}, {Event::kMessageEnd, 40, ""}}));
}

TEST(HttpParserTest, Responses204And304HaveNoBody) {
  std::string in =
      "HTTP/1.1 204 No Content\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  EXPECT_EQ(runAllWays(Kind::kResponse, in), (std::vector<Step>{{Event::kHead, 27, "204"},
                                                                {Event::kMessageEnd, 27, ""},
                                                                {Event::kHead, 77, "304"},
                                                                {Event::kMessageEnd, 77, ""},
                                                                {Event::kHead, 115, "200"},
                                                                {Event::kMessageEnd, 117, ""}}));
}

TEST(HttpParserTest, InterimResponsesThenTheFinalOne) {
  std::string in =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  EXPECT_EQ(runAllWays(Kind::kResponse, in), (std::vector<Step>{{Event::kHead, 25, "100"},
                                                                {Event::kMessageEnd, 25, ""},
                                                                {Event::kHead, 86, "103"},
                                                                {Event::kMessageEnd, 86, ""},
                                                                {Event::kHead, 124, "200"},
                                                                {Event::kMessageEnd, 126, ""}}));
}

TEST(HttpParserTest, ExpectNoBodyHoldsAcrossInterimResponses) {
  std::string in = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
  HttpParser p(Kind::kResponse);
  p.expectNoBody();
  EXPECT_EQ(runWhole(p, in), (std::vector<Step>{{Event::kHead, 25, "100"},
                                                {Event::kMessageEnd, 25, ""},
                                                {Event::kHead, 63, "200"},
                                                {Event::kMessageEnd, 63, ""}}));
}

TEST(HttpParserTest, ResponseUntilClose) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
  std::string body = "all of this until the server closes";
  std::string in = head + body;
  HttpParser p(Kind::kResponse);
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_TRUE(p.bodyUntilClose());
  EXPECT_FALSE(p.head().keep_alive);
  r = p.feed(in.data() + head.size(), body.size());
  EXPECT_EQ(r.event, Event::kNeedMore);
  EXPECT_EQ(r.consumed, body.size());
  EXPECT_EQ(p.finish().event, Event::kMessageEnd);
}

TEST(HttpParserTest, ResponseUntilCloseWithEmptyBody) {
  std::string in = "HTTP/1.0 200 OK\r\n\r\n";
  HttpParser p(Kind::kResponse);
  ASSERT_EQ(p.feed(in.data(), in.size()).event, Event::kHead);
  EXPECT_TRUE(p.bodyUntilClose());
  EXPECT_EQ(p.finish().event, Event::kMessageEnd);
}

TEST(HttpParserTest, ResponseWithTransferCodingOtherThanChunkedLastsUntilClose) {
  std::string in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx";
  HttpParser p(Kind::kResponse);
  ASSERT_EQ(p.feed(in.data(), in.size()).event, Event::kHead);
  EXPECT_TRUE(p.bodyUntilClose());
}

TEST(HttpParserTest, FinishAfterNoBodyHeadEndsTheMessage) {
  std::string in = "HTTP/1.1 204 No Content\r\n\r\n";
  HttpParser p(Kind::kResponse);
  ASSERT_EQ(p.feed(in.data(), in.size()).event, Event::kHead);
  EXPECT_EQ(p.finish().event, Event::kMessageEnd);
}

TEST(HttpParserTest, ServerClosingInsideAResponseIs502) {
  std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
  HttpParser p(Kind::kResponse);
  auto r = p.feed(in.data(), in.size());
  p.feed(in.data() + r.consumed, in.size() - r.consumed);
  EXPECT_EQ(p.finish().event, Event::kError);
  EXPECT_EQ(p.errorStatus(), 502);

  HttpParser chunked(Kind::kResponse);
  std::string c = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
  r = chunked.feed(c.data(), c.size());
  chunked.feed(c.data() + r.consumed, c.size() - r.consumed);
  EXPECT_EQ(chunked.finish().event, Event::kError);

  HttpParser nothing(Kind::kResponse);
  EXPECT_EQ(nothing.finish().event, Event::kNeedMore) << "closed before any byte";
}

TEST(HttpParserTest, SwitchingProtocolsEndsAfterTheHeadAndTheRestIsTunnel) {
  std::string head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  std::string in = head + "\x81\x05hello";
  HttpParser p(Kind::kResponse);
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_EQ(r.consumed, head.size());
  EXPECT_TRUE(p.head().upgrade);
  r = p.feed(in.data() + head.size(), in.size() - head.size());
  EXPECT_EQ(r.event, Event::kMessageEnd);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(p.feed(in.data() + head.size(), in.size() - head.size()).event, Event::kError);
}

TEST(HttpParserTest, ResponseKeepAlive) {
  struct Case {
    const char* response;
    bool keep_alive;
  } cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\n\r\n", false},
  };
  for (const Case& c : cases) {
    HttpParser p(Kind::kResponse);
    ASSERT_EQ(p.feed(c.response, strlen(c.response)).event, Event::kHead) << c.response;
    EXPECT_EQ(p.head().keep_alive, c.keep_alive) << c.response;
  }
}

TEST(HttpParserTest, MalformedResponsesAre502) {
  const std::string cases[] = {
      "garbage\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
      "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 101 Switching Protocols\r\n\r\n",
      "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
  };
  for (const std::string& in : cases) {
    HttpParser p(Kind::kResponse);
    std::vector<Step> steps = runWhole(p, in);
    ASSERT_FALSE(steps.empty()) << in;
    EXPECT_EQ(steps.back().what, "error 502") << in;
  }
}

TEST(HttpParserTest, ResponseHeadLimitIs502) {
  HttpParser::Limits limits;
  limits.max_head_bytes = 64;
  HttpParser p(Kind::kResponse, limits);
  std::string in = "HTTP/1.1 200 OK\r\nX-Long: " + std::string(100, 'x') + "\r\n\r\n";
  EXPECT_EQ(p.feed(in.data(), in.size()).event, Event::kError);
  EXPECT_EQ(p.errorStatus(), 502);
}

}  // namespace
}  // namespace tandem
