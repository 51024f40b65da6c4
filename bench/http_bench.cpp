// What the HTTP session spends per message on heads: strict parsing (llhttp plus Tandem's own
// checks) and rewriting, for a browser request and a PHP server's response.
//
// "keepalive" reuses one parser for every message, as a client or pooled server connection
// does; "fresh" builds a parser per message, as a new connection does.
#include <benchmark/benchmark.h>

#include <string>

#include "proxy/http_message.h"
#include "proxy/http_parser.h"

namespace tandem {
namespace {

// Chrome 120 loading a page of a PHP application with a session: 14 headers, 826 bytes.
const std::string kBrowserRequest =
    "GET /shop/products.php?category=42&page=3 HTTP/1.1\r\n"
    "Host: www.example-shop.com\r\n"
    "Connection: keep-alive\r\n"
    "sec-ch-ua: \"Not_A Brand\";v=\"8\", \"Chromium\";v=\"120\", \"Google Chrome\";v=\"120\"\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "sec-ch-ua-platform: \"Linux\"\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Referer: https://www.example-shop.com/shop/products.php?category=42&page=2\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\n"
    "Cookie: PHPSESSID=9k2l3m4n5o6p7q8r9s0t1u2v3w; SERVERID=web1; "
    "_ga=GA1.1.123456789.1700000000\r\n"
    "\r\n";

// A PHP page through Apache: 10 headers.
const std::string kServerResponseHead =
    "HTTP/1.1 200 OK\r\n"
    "Date: Wed, 03 Dec 2026 13:01:02 GMT\r\n"
    "Server: Apache/2.4.57 (Debian)\r\n"
    "X-Powered-By: PHP/8.2.7\r\n"
    "Expires: Thu, 19 Nov 1981 08:52:00 GMT\r\n"
    "Cache-Control: no-store, no-cache, must-revalidate\r\n"
    "Pragma: no-cache\r\n"
    "Vary: Accept-Encoding\r\n"
    "Content-Length: 5123\r\n"
    "Keep-Alive: timeout=5, max=100\r\n"
    "Content-Type: text/html; charset=UTF-8\r\n"
    "\r\n";

// Parses one head and lets the parser reach the end of the bodiless message, as the session
// does before the next pipelined message.
void parseHead(HttpParser& parser, const std::string& head, benchmark::State& state) {
  HttpParser::Result r = parser.feed(head.data(), head.size());
  if (r.event != HttpParser::Event::kHead || r.consumed != head.size()) {
    state.SkipWithError("the head did not parse");
  }
}

void BM_requestKeepAlive(benchmark::State& state) {
  HttpParser parser(HttpParser::Kind::kRequest);
  RequestIdGenerator ids(0x5eed);
  for (auto _ : state) {
    parseHead(parser, kBrowserRequest, state);
    std::string id = ids.next();
    RequestRewrite rw{"192.0.2.10", id};
    std::string out = serializeRequestHead(parser.head(), rw);
    benchmark::DoNotOptimize(out.data());
    parser.feed("", 0);  // kMessageEnd: no body
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBrowserRequest.size()));
}
BENCHMARK(BM_requestKeepAlive);

void BM_requestFresh(benchmark::State& state) {
  RequestIdGenerator ids(0x5eed);
  for (auto _ : state) {
    HttpParser parser(HttpParser::Kind::kRequest);
    parseHead(parser, kBrowserRequest, state);
    std::string id = ids.next();
    RequestRewrite rw{"192.0.2.10", id};
    std::string out = serializeRequestHead(parser.head(), rw);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBrowserRequest.size()));
}
BENCHMARK(BM_requestFresh);

// The parse alone, to split the cost between parsing and rewriting.
void BM_requestParseOnly(benchmark::State& state) {
  HttpParser parser(HttpParser::Kind::kRequest);
  for (auto _ : state) {
    parseHead(parser, kBrowserRequest, state);
    benchmark::DoNotOptimize(parser.head().headers.data());
    parser.feed("", 0);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBrowserRequest.size()));
}
BENCHMARK(BM_requestParseOnly);

void BM_responseKeepAlive(benchmark::State& state) {
  HttpParser parser(HttpParser::Kind::kResponse);
  // The body's bytes are fed too, as the session does, so that the parser ends the message.
  std::string body(5123, 'x');
  for (auto _ : state) {
    parseHead(parser, kServerResponseHead, state);
    ResponseRewrite rw;
    rw.set_cookie = "SERVERID=web1; path=/";
    std::string out = serializeResponseHead(parser.head(), rw);
    benchmark::DoNotOptimize(out.data());
    if (parser.feed(body.data(), body.size()).event != HttpParser::Event::kMessageEnd) {
      state.SkipWithError("the body did not end the response");
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_responseKeepAlive);

}  // namespace
}  // namespace tandem
