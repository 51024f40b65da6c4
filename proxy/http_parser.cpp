#include "proxy/http_parser.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

namespace tandem {
namespace {

// llhttp is never handed a null pointer, even for zero bytes: it stores it as a span start.
constexpr char kNoData[1] = {'\0'};

constexpr const char* kBareLf = "bare LF line end";
constexpr const char* kBareCr = "CR not followed by LF";
constexpr const char* kObsFold = "obs-fold (line starting with whitespace) is not allowed";

// RFC 9110 5.6.2: token characters, the only ones allowed in a field name. A table, since
// every byte of every name goes through it.
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) {
    t[c] = true;
  }
  for (int c = 'a'; c <= 'z'; ++c) {
    t[c] = true;
    t[c - 'a' + 'A'] = true;
  }
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) {
    t[static_cast<unsigned char>(c)] = true;
  }
  return t;
}();

bool allTchars(const char* at, size_t len) {
  return std::all_of(at, at + len, [](char c) { return kTchar[static_cast<unsigned char>(c)]; });
}

// A reason phrase is HTAB, SP, visible characters and obs-text; llhttp 8.1 takes any byte
// but CR and LF there.
bool allReasonChars(const char* at, size_t len) {
  return std::all_of(at, at + len, [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

// A request-target is visible ASCII (RFC 9112 3.2); llhttp 8.1 also takes bytes >= 0x80,
// which servers would decode in different ways.
bool allTargetChars(const char* at, size_t len) {
  return std::all_of(at, at + len, [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c > 0x20 && c < 0x7f;
  });
}

bool isOws(char c) {
  return c == ' ' || c == '\t';
}

char asciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return asciiLower(x) == asciiLower(y);
         });
}

void trimOws(std::string& s) {
  size_t end = s.size();
  while (end > 0 && isOws(s[end - 1])) {
    --end;
  }
  size_t begin = 0;
  while (begin < end && isOws(s[begin])) {
    ++begin;
  }
  s.erase(end);
  s.erase(0, begin);
}

}  // namespace

// --- LineEndCheck ---------------------------------------------------------------------------

const char* HttpParser::LineEndCheck::scan(const char* p, size_t n) {
  if (n == 0) {
    return nullptr;
  }
  // First the line end that the previous feed left half-seen.
  if (prev_ == '\r' && p[0] != '\n') {
    return kBareCr;
  }
  if (prev_ == '\n' && isOws(p[0])) {
    return kObsFold;
  }
  // Every head byte passes here; memchr skips the long runs between line ends quickly.
  const char* end = p + n;
  for (auto* lf = static_cast<const char*>(std::memchr(p, '\n', n)); lf != nullptr;
       lf = static_cast<const char*>(std::memchr(lf + 1, '\n', end - lf - 1))) {
    char before = lf > p ? lf[-1] : prev_;
    if (before != '\r') {
      return kBareLf;
    }
    if (lf + 1 < end && isOws(lf[1])) {
      return kObsFold;
    }
  }
  for (auto* cr = static_cast<const char*>(std::memchr(p, '\r', n)); cr != nullptr;
       cr = static_cast<const char*>(std::memchr(cr + 1, '\r', end - cr - 1))) {
    if (cr + 1 < end && cr[1] != '\n') {
      return kBareCr;
    }
  }
  prev_ = end[-1];
  return nullptr;
}

// --- construction and feeding ---------------------------------------------------------------

const llhttp_settings_t& HttpParser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t x;
    llhttp_settings_init(&x);
    x.on_method_complete = onMethodComplete;
    x.on_url = onUrl;
    x.on_status = onStatus;
    x.on_header_field = onHeaderField;
    x.on_header_field_complete = onHeaderFieldComplete;
    x.on_header_value = onHeaderValue;
    x.on_header_value_complete = onHeaderValueComplete;
    x.on_headers_complete = onHeadersComplete;
    x.on_body = onBody;
    x.on_message_complete = onMessageComplete;
    return x;
  }();
  return s;
}

HttpParser::HttpParser(Kind kind, Limits limits) : kind_(kind), limits_(limits) {
  llhttp_init(&llhttp_, kind == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &settings());
  llhttp_.data = this;
  startMessage();
}

HttpParser::HttpParser(Kind kind) : HttpParser(kind, Limits{}) {}

void HttpParser::startMessage() {
  phase_ = Phase::kHead;
  field_open_ = false;
  until_close_ = false;
  head_bytes_ = 0;
  header_count_ = 0;
  host_headers_ = 0;
  line_ends_.reset();
  head_.method.clear();
  head_.target.clear();
  head_.status = 0;
  head_.reason.clear();
  head_.version_major = 1;
  head_.version_minor = 1;
  head_.keep_alive = true;
  head_.upgrade = false;
  head_.chunked = false;
  head_.content_length = -1;
  head_.expect_continue = false;
}

HttpParser::Result HttpParser::feed(const char* data, size_t len) {
  if (phase_ == Phase::kFailed) {
    return {Event::kError, 0};
  }
  if (phase_ == Phase::kClosed) {
    if (len == 0) {
      return {Event::kNeedMore, 0};
    }
    return fail(protocolErrorStatus(), "data after the last message of the connection", 0);
  }
  if (phase_ == Phase::kEnded) {
    startMessage();
  }
  if (paused_) {
    paused_ = false;
    llhttp_resume(&llhttp_);
  }
  for (;;) {
    // In the head, llhttp sees at most one byte past the size limit, so that an endless
    // head costs no more than the limit before it is refused.
    size_t n =
        phase_ == Phase::kHead ? std::min(len, limits_.max_head_bytes + 1 - head_bytes_) : len;
    const char* at = n > 0 ? data : kNoData;
    framing_from_ = at;
    head_done_ = false;
    llhttp_errno_t err = llhttp_execute(&llhttp_, at, n);
    if (err == HPE_PAUSED_UPGRADE) {
      // The end of an upgrade request pauses twice: in onMessageComplete (reported already)
      // and then in llhttp itself, before any byte of what follows. The server refused the
      // upgrade, since the caller feeds on: parse the next request.
      llhttp_resume_after_upgrade(&llhttp_);
      continue;
    }
    return afterExecute(err, at, n);
  }
}

HttpParser::Result HttpParser::afterExecute(llhttp_errno_t err, const char* at, size_t n) {
  const char* stop = err == HPE_OK ? at + n : llhttp_get_error_pos(&llhttp_);
  size_t used = stop != nullptr ? static_cast<size_t>(stop - at) : 0;
  if (err != HPE_OK && err != HPE_PAUSED) {
    return failFromLlhttp(err, used);
  }
  if (const char* why = checkFraming(at, used)) {
    return fail(protocolErrorStatus(), why, used);
  }
  if (phase_ == Phase::kHead) {
    head_bytes_ += used;
    if (head_bytes_ > limits_.max_head_bytes) {
      return fail(limitErrorStatus(), "head larger than the size limit", used);
    }
  }
  if (err == HPE_OK) {
    return {Event::kNeedMore, used};
  }
  paused_ = true;
  if (head_done_) {
    phase_ = Phase::kBody;
    line_ends_.reset();
    return {Event::kHead, used};
  }
  phase_ = closesConnection() ? Phase::kClosed : Phase::kEnded;
  return {Event::kMessageEnd, used};
}

// The bytes llhttp consumed that are framing rather than body data: the whole head, and in a
// chunked body everything between the data spans (onBody checked those before each span).
const char* HttpParser::checkFraming(const char* at, size_t used) {
  if (phase_ == Phase::kHead) {
    return line_ends_.scan(at, used);
  }
  if (head_.chunked) {
    return line_ends_.scan(framing_from_, static_cast<size_t>(at + used - framing_from_));
  }
  return nullptr;
}

bool HttpParser::closesConnection() const {
  if (kind_ == Kind::kResponse && head_.status / 100 == 1) {
    return head_.upgrade;  // 101 switches protocols; 100 and 103 precede the real response
  }
  return !head_.keep_alive;
}

HttpParser::Result HttpParser::finish() {
  switch (phase_) {
    case Phase::kFailed:
      return {Event::kError, 0};
    case Phase::kEnded:
    case Phase::kClosed:
      return {Event::kNeedMore, 0};
    case Phase::kHead:
      if (head_bytes_ == 0) {
        return {Event::kNeedMore, 0};
      }
      return fail(protocolErrorStatus(), "connection closed in the middle of a head", 0);
    case Phase::kBody:
      break;
  }
  // A head reported a moment ago may end a message without body (a 204, a HEAD response):
  // llhttp reaches that end only when run once more.
  Result r = feed(kNoData, 0);
  if (r.event != Event::kNeedMore) {
    return r;
  }
  // Here llhttp calls onMessageComplete (which pauses) only for a body framed by close.
  if (llhttp_finish(&llhttp_) == HPE_PAUSED) {
    phase_ = Phase::kClosed;
    return {Event::kMessageEnd, 0};
  }
  return fail(protocolErrorStatus(), "connection closed in the middle of a body", 0);
}

void HttpParser::expectNoBody() {
  no_body_ = true;
}

HttpParser::Result HttpParser::fail(int status, const char* reason, size_t consumed) {
  phase_ = Phase::kFailed;
  error_status_ = status;
  error_reason_ = reason;
  return {Event::kError, consumed};
}

HttpParser::Result HttpParser::failFromLlhttp(llhttp_errno_t err, size_t consumed) {
  if (error_status_ != 0) {  // one of our callbacks refused the message and said why
    phase_ = Phase::kFailed;
    return {Event::kError, consumed};
  }
  const char* reason = llhttp_get_error_reason(&llhttp_);
  return fail(protocolErrorStatus(), reason != nullptr ? reason : llhttp_errno_name(err), consumed);
}

int HttpParser::callbackError(int status, const char* reason) {
  error_status_ = status;
  error_reason_ = reason;
  return -1;
}

// --- llhttp callbacks -----------------------------------------------------------------------

int HttpParser::onMethodComplete(llhttp_t* p) {
  HttpParser& s = self(p);
  auto method = static_cast<llhttp_method_t>(p->method);
  if (method == HTTP_CONNECT) {
    return s.callbackError(400, "CONNECT is not supported");
  }
  s.head_.method = llhttp_method_name(method);
  return 0;
}

int HttpParser::onUrl(llhttp_t* p, const char* at, size_t len) {
  HttpParser& s = self(p);
  if (!allTargetChars(at, len)) {
    return s.callbackError(400, "invalid character in the request target");
  }
  s.head_.target.append(at, len);
  return 0;
}

int HttpParser::onStatus(llhttp_t* p, const char* at, size_t len) {
  HttpParser& s = self(p);
  if (!allReasonChars(at, len)) {
    return s.callbackError(502, "control character in the reason phrase");
  }
  s.head_.reason.append(at, len);
  return 0;
}

// Header callbacks also run for the trailer fields of a chunked body (phase kBody): those are
// checked the same way but not stored, since the body, trailers included, is forwarded raw.
int HttpParser::onHeaderField(llhttp_t* p, const char* at, size_t len) {
  HttpParser& s = self(p);
  if (!s.field_open_) {
    if (int err = s.beginHeader()) {
      return err;
    }
  }
  if (!allTchars(at, len)) {
    return s.callbackError(s.protocolErrorStatus(), "invalid character in a header name");
  }
  s.field_bytes_ += len;
  if (s.phase_ == Phase::kHead) {
    s.head_.headers[s.header_count_ - 1].name.append(at, len);
  }
  return 0;
}

int HttpParser::beginHeader() {
  field_open_ = true;
  field_bytes_ = 0;
  if (phase_ != Phase::kHead) {
    return 0;
  }
  if (header_count_ >= static_cast<size_t>(limits_.max_headers)) {
    return callbackError(limitErrorStatus(), "too many headers");
  }
  if (header_count_ < head_.headers.size()) {
    head_.headers[header_count_].name.clear();
    head_.headers[header_count_].value.clear();
  } else {
    head_.headers.emplace_back();
  }
  ++header_count_;
  return 0;
}

int HttpParser::onHeaderFieldComplete(llhttp_t* p) {
  HttpParser& s = self(p);
  s.field_open_ = false;
  if (s.field_bytes_ == 0) {  // llhttp 8.1 takes ": value" as a header with an empty name
    return s.callbackError(s.protocolErrorStatus(), "empty header name");
  }
  return 0;
}

// llhttp 8.1 refuses NUL, CR, LF, DEL and the other controls but HTAB in values itself.
int HttpParser::onHeaderValue(llhttp_t* p, const char* at, size_t len) {
  HttpParser& s = self(p);
  if (s.phase_ == Phase::kHead) {
    s.head_.headers[s.header_count_ - 1].value.append(at, len);
  }
  return 0;
}

int HttpParser::onHeaderValueComplete(llhttp_t* p) {
  HttpParser& s = self(p);
  if (s.phase_ != Phase::kHead) {
    return 0;
  }
  s.finishHeader();
  if (s.host_headers_ > 1) {
    return s.callbackError(s.protocolErrorStatus(), "several Host headers");
  }
  return 0;
}

void HttpParser::finishHeader() {
  HttpHeader& h = head_.headers[header_count_ - 1];
  trimOws(h.value);
  if (equalsIgnoreCase(h.name, "host")) {
    ++host_headers_;
  } else if (equalsIgnoreCase(h.name, "expect") && equalsIgnoreCase(h.value, "100-continue")) {
    head_.expect_continue = true;
  }
}

int HttpParser::onHeadersComplete(llhttp_t* p) {
  HttpParser& s = self(p);
  s.head_.headers.resize(s.header_count_);
  if (int err = s.checkHead()) {
    return err;
  }
  s.fillHead();
  s.head_done_ = true;
  return HPE_PAUSED;
}

// What llhttp 8.1 accepts here but Tandem refuses. The Transfer-Encoding of a request is
// checked now because llhttp checks it only after this callback, once kHead is out.
int HttpParser::checkHead() {
  const llhttp_t* p = &llhttp_;
  if (p->http_major != 1) {
    return callbackError(protocolErrorStatus(), "unsupported HTTP version");
  }
  bool te = (p->flags & F_TRANSFER_ENCODING) != 0;
  if (te && p->http_minor == 0) {
    return callbackError(protocolErrorStatus(), "Transfer-Encoding in an HTTP/1.0 message");
  }
  if (p->content_length > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return callbackError(protocolErrorStatus(), "Content-Length too large");
  }
  if (kind_ == Kind::kRequest) {
    if (te && (p->flags & F_CHUNKED) == 0) {
      return callbackError(400, "Transfer-Encoding does not end with chunked");
    }
    return 0;
  }
  if (p->status_code < 100 || p->status_code > 599) {
    return callbackError(502, "invalid status code");
  }
  if (p->status_code == 101 && (p->flags & F_UPGRADE) == 0) {
    return callbackError(502, "101 response without Upgrade");
  }
  return 0;
}

void HttpParser::fillHead() {
  llhttp_t* p = &llhttp_;
  head_.version_major = p->http_major;
  head_.version_minor = p->http_minor;
  bool response = kind_ == Kind::kResponse;
  if (response) {
    head_.status = p->status_code;
    if (responseHasNoBody()) {
      // What returning 1 from this callback would do, which cannot be combined with a pause.
      p->flags |= F_SKIPBODY;
    }
  }
  head_.chunked = (p->flags & F_CHUNKED) != 0;
  if ((p->flags & F_CONTENT_LENGTH) != 0) {
    head_.content_length = static_cast<int64_t>(p->content_length);
  }
  head_.upgrade = response ? head_.status == 101 : p->upgrade != 0;
  head_.keep_alive = llhttp_should_keep_alive(p) != 0;
  until_close_ = response && llhttp_message_needs_eof(p) != 0;
}

// llhttp 8.1 reads a body after a 1xx, 204 or 304 that carries a Content-Length or a
// Transfer-Encoding; no such body exists (RFC 9112 6.3), and reading one would take the next
// response for it.
bool HttpParser::responseHasNoBody() const {
  int status = head_.status;
  return status / 100 == 1 || status == 204 || status == 304 || (no_body_ && status >= 200);
}

int HttpParser::onBody(llhttp_t* p, const char* at, size_t len) {
  HttpParser& s = self(p);
  if (!s.head_.chunked) {
    return 0;
  }
  // The check goes on after the data as if the data were not there: llhttp wants the framing
  // before data to end with LF and the framing after it to start with CR.
  const char* why = s.line_ends_.scan(s.framing_from_, static_cast<size_t>(at - s.framing_from_));
  s.framing_from_ = at + len;
  return why != nullptr ? s.callbackError(s.protocolErrorStatus(), why) : 0;
}

int HttpParser::onMessageComplete(llhttp_t* p) {
  HttpParser& s = self(p);
  if (s.head_.status >= 200) {
    s.no_body_ = false;  // expectNoBody() covered this final response
  }
  return HPE_PAUSED;
}

}  // namespace tandem
