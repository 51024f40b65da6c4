// Strict HTTP/1.1 message framing for the HTTP session: finds where each request or response
// head ends, where its body ends, and rejects anything whose framing two parsers could read
// differently (request smuggling, response splitting). It does no I/O and copies no body:
// the session forwards the bytes it fed, unchanged, and rewrites only heads.
//
//   HttpParser parser(HttpParser::Kind::kRequest, limits);
//   auto r = parser.feed(buf, len);
//   switch (r.event) {
//     case Event::kHead:        // parser.head() is complete; buf[0..r.consumed) is the head:
//                               // send serializeRequestHead(parser.head(), ...) instead
//     case Event::kNeedMore:    // buf[0..len) consumed: before kHead, part of the head
//                               // (kept in head(), drop them); after, body: forward raw
//     case Event::kMessageEnd:  // buf[0..r.consumed) ends the message (forward it raw)
//     case Event::kError:       // answer errorResponse(parser.errorStatus()) and close
//   }
//   // then feed(buf + r.consumed, len - r.consumed) until the buffer is used up
//
// Every message is reported as exactly one kHead followed, possibly after kNeedMore events,
// by one kMessageEnd; feed() returns at each of them so that the caller can act in between.
//
// Special messages:
// - 1xx responses (100, 103) are reported as their own kHead + kMessageEnd, then the same
//   parser goes on with the next response to the same request.
// - Upgrade: a request with `Upgrade` and `Connection: upgrade` has head().upgrade set; its
//   kMessageEnd comes right after its body (usually its head). If the server answers 101, the
//   connection is a tunnel from the byte after that kMessageEnd: stop feeding this parser. If
//   the server refuses, feed on: the next bytes are parsed as the next request.
// - A 101 response has head().upgrade set and its kMessageEnd right after its head; the bytes
//   after it are tunnel data.
// - A response framed by connection close (bodyUntilClose()) ends only with finish().
//
// The parser is llhttp 8.1 without any lenient flag, plus checks of its own where llhttp
// 8.1 (built without LLHTTP_STRICT_MODE) accepts what the RFCs forbid: a bare CR or LF as a
// line end in a head, a chunk-size line or a trailer (llhttp takes "\rX" for CRLF there),
// obs-fold, whitespace or nothing before the colon, controls in the reason phrase, a
// request-target outside visible ASCII, HTTP versions other than 1.x, Transfer-Encoding in
// HTTP/1.0, a body after a 204 or 304 that has a Content-Length.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

struct HttpHeader {
  std::string name;
  std::string value;  // without the whitespace around it
};

struct HttpHead {
  // Requests: method and target, status stays 0. Responses: status and reason.
  std::string method;
  std::string target;
  int status = 0;
  std::string reason;
  int version_major = 1;
  int version_minor = 1;
  std::vector<HttpHeader> headers;  // in arrival order, names as sent
  bool keep_alive = true;           // another message may follow this one on the connection
  bool upgrade = false;             // request: asks for an upgrade; response: 101
  bool chunked = false;             // Transfer-Encoding ends in chunked
  int64_t content_length = -1;      // -1: no Content-Length header
  bool expect_continue = false;     // request carries Expect: 100-continue
};

class HttpParser {
 public:
  enum class Kind { kRequest, kResponse };
  enum class Event { kNeedMore, kHead, kMessageEnd, kError };

  struct Limits {
    size_t max_head_bytes = 16384;  // start line + header lines + the empty line ending them
    int max_headers = 100;
  };

  struct Result {
    Event event;
    size_t consumed;  // bytes of the fed data that belong to what `event` reports
  };

  HttpParser(Kind kind, Limits limits);
  explicit HttpParser(Kind kind);

  // llhttp keeps a pointer to this object: it can be neither copied nor moved.
  HttpParser(const HttpParser&) = delete;
  HttpParser& operator=(const HttpParser&) = delete;

  // Parses from data and returns at the first of:
  //   kHead        the head ended at data[consumed - 1]; head() is complete.
  //   kMessageEnd  the message ended at data[consumed - 1]. The next feed starts the next
  //                message (pipelining) unless this one closes the connection (keep_alive
  //                false, or a 101): then a further feed of any byte is an error, and the
  //                caller should stop reading instead.
  //   kError       errorStatus() and errorReason() say what (consumed: about where); every
  //                later feed is kError too.
  //   kNeedMore    all of data consumed (len may be 0) and the message is not finished.
  // Body bytes are consumed without being reported; head bytes are copied into head().
  Result feed(const char* data, size_t len);

  // At end of input (the peer closed). kMessageEnd: a response framed by connection close
  // ended, or a head fed earlier turned out to end a message with no body. kNeedMore: no
  // message had begun, nothing is lost. kError: the peer closed in the middle of a message.
  Result finish();

  // Responses only: the request was HEAD, so the next final response has no body whatever its
  // headers say. Call before that response's head is fed; it holds across 1xx responses.
  // (1xx, 204 and 304 responses never have a body, whatever their headers say.)
  void expectNoBody();

  // The head of the message being parsed: complete from kHead until the feed that starts the
  // next message. Copy what must outlive it.
  const HttpHead& head() const { return head_; }

  // After kHead of a response: its body lasts until the server closes the connection.
  bool bodyUntilClose() const { return until_close_; }

  // After kError: 400 or 431 for requests (431 when the head is too large or has too many
  // headers), 502 for responses. The reason is a static string, for the log.
  int errorStatus() const { return error_status_; }
  std::string_view errorReason() const { return error_reason_; }

 private:
  enum class Phase {
    kHead,    // before the end of the head
    kBody,    // after kHead, before kMessageEnd
    kEnded,   // kMessageEnd returned; the next feed starts the next message
    kClosed,  // the last message of the connection ended
    kFailed,  // kError returned
  };

  // Strict line-end check over the framing bytes of a message: the head, and for chunked
  // bodies everything but chunk data. Each CR must be followed by LF, each LF preceded by CR,
  // and no line may start with SP or HTAB (obs-fold). State carries across feeds.
  class LineEndCheck {
   public:
    void reset() { prev_ = '\0'; }
    // Returns nullptr, or why the bytes are invalid.
    const char* scan(const char* p, size_t n);

   private:
    char prev_ = '\0';  // the last framing byte scanned
  };

  static const llhttp_settings_t& settings();
  static HttpParser& self(llhttp_t* p) { return *static_cast<HttpParser*>(p->data); }

  void startMessage();
  Result afterExecute(llhttp_errno_t err, const char* at, size_t n);
  const char* checkFraming(const char* at, size_t used);
  bool closesConnection() const;
  Result fail(int status, const char* reason, size_t consumed);
  Result failFromLlhttp(llhttp_errno_t err, size_t consumed);
  int protocolErrorStatus() const { return kind_ == Kind::kRequest ? 400 : 502; }
  int limitErrorStatus() const { return kind_ == Kind::kRequest ? 431 : 502; }

  // llhttp callbacks; each returns 0, HPE_PAUSED, or -1 after callbackError() said why.
  static int onMethodComplete(llhttp_t* p);
  static int onUrl(llhttp_t* p, const char* at, size_t len);
  static int onStatus(llhttp_t* p, const char* at, size_t len);
  static int onHeaderField(llhttp_t* p, const char* at, size_t len);
  static int onHeaderFieldComplete(llhttp_t* p);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int onHeaderValueComplete(llhttp_t* p);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t len);
  static int onMessageComplete(llhttp_t* p);
  int callbackError(int status, const char* reason);
  int beginHeader();
  void finishHeader();
  int checkHead();
  void fillHead();
  bool responseHasNoBody() const;

  Kind kind_;
  Limits limits_;
  llhttp_t llhttp_;
  Phase phase_ = Phase::kHead;
  bool paused_ = false;     // llhttp returned HPE_PAUSED and awaits llhttp_resume()
  bool head_done_ = false;  // the current execute paused at the end of the head
  bool no_body_ = false;    // expectNoBody() for the next final response
  bool until_close_ = false;
  bool field_open_ = false;  // a header (or trailer) name is being received
  size_t field_bytes_ = 0;   // length of that name so far
  size_t head_bytes_ = 0;    // bytes of the current head consumed so far
  // Headers of the current head. head_.headers keeps the strings of earlier messages past
  // this count until the head ends, so that their capacity is reused on keep-alive.
  size_t header_count_ = 0;
  int host_headers_ = 0;
  HttpHead head_;
  LineEndCheck line_ends_;
  const char* framing_from_ = nullptr;  // chunked body: where the framing not yet checked starts
  int error_status_ = 0;
  std::string_view error_reason_;
};

}  // namespace tandem
