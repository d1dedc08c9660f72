#include "attempts/domain/answers.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "attempts/domain/attempt_id.hpp"
#include "attempts/utf8.hpp"

namespace attempts {
namespace {

constexpr const char* kRevisionRule = "\"revision\" must be a positive integer of at most 64 bits";

// What a scalar the document holds is, for the rules (and the messages) about where it sits.
enum class Scalar { string, integer, unsigned_integer, number, boolean, null };

// One pass over the body, reading JSON as RFC 8259 writes it (and as nlohmann's strict parser
// does, which fuzz/fuzz_answers.cpp checks it against) and applying the rules as it goes, so
// that the first problem in the document is the one reported and nothing is built but the
// re-serialised answers. Strings are decoded only for keys (they decide fields and question
// ids); every other string is only checked. Allocation-free once its buffers have grown.
class AnswersReader {
 public:
  AnswersReader(std::string_view body, const AnswersLimits& limits, std::string& out,
                std::vector<std::int64_t>& question_ids, std::string& key)
      : body_(body), limits_(limits), out_(out), question_ids_(question_ids), key_(key) {
    out_.clear();
    question_ids_.clear();
  }

  std::optional<AnswersError> read() {
    // A UTF-8 byte order mark may open the text (RFC 8259 section 8.1 lets a parser ignore it,
    // and clients that write one expect that).
    if (body_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
    skip_whitespace();
    if (at_end()) {
      malformed("the body is empty");
      return take_error();
    }
    if (peek() != '{') {
      // Not what a request body must be; a scalar that is not even JSON is malformed.
      Scalar kind;
      if (peek() != '[' && !read_scalar(kind)) return take_error();
      return AnswersError{"request body must be a JSON object"};
    }
    if (!read_top_object()) return take_error();
    skip_whitespace();
    if (!at_end()) {
      malformed("trailing data after the object");
      return take_error();
    }
    if (!answers_seen_) return AnswersError{"missing field \"answers\""};
    std::sort(question_ids_.begin(), question_ids_.end());
    const auto duplicate = std::adjacent_find(question_ids_.begin(), question_ids_.end());
    if (duplicate != question_ids_.end()) {
      return AnswersError{"question id " + std::to_string(*duplicate) + " appears more than once"};
    }
    return std::nullopt;
  }

  std::size_t question_count() const { return question_ids_.size(); }
  std::optional<std::int64_t> revision() const { return revision_; }

 private:
  // ---- the top-level object and the answers ----------------------------------------------

  bool read_top_object() {
    if (!enter()) return false;
    ++pos_;  // '{'
    skip_whitespace();
    if (consume('}')) return leave();
    while (true) {
      if (!read_key()) return false;
      if (key_ == "answers") {
        if (answers_seen_) return fail("field \"answers\" appears more than once");
        answers_seen_ = true;
        if (!read_answers()) return false;
      } else if (key_ == "revision") {
        if (revision_seen_) return fail("field \"revision\" appears more than once");
        revision_seen_ = true;
        if (!read_revision()) return false;
      } else if (!skip_value()) {
        return false;  // another field: checked, not kept
      }
      if (!after_member('}')) return false;
      if (closed_) return leave();
    }
  }

  bool read_answers() {
    skip_whitespace();
    if (at_end() || peek() != '{') {
      return wrong_value([](std::string_view what) {
        return "\"answers\" must be an object, not " + std::string(what);
      });
    }
    if (!enter()) return false;
    ++pos_;
    out_.push_back('{');
    skip_whitespace();
    if (consume('}')) {
      out_.push_back('}');
      return leave();
    }
    while (true) {
      if (!read_key()) return false;
      const auto id = parse_positive_decimal(key_);
      if (!id) {
        return fail("question id \"" + truncate(key_) +
                    "\" must be a positive decimal integer without leading zeros");
      }
      question_ids_.push_back(*id);
      if (question_ids_.size() > 1) out_.push_back(',');
      out_.push_back('"');
      out_.append(key_);
      out_.append("\":");
      if (!read_options(key_)) return false;
      if (!after_member('}')) return false;
      if (closed_) {
        out_.push_back('}');
        return leave();
      }
    }
  }

  bool read_options(const std::string& question) {
    skip_whitespace();
    if (at_end() || peek() != '[') {
      return wrong_value([&](std::string_view what) {
        return "answers for question " + question + " must be an array of option ids, not " +
               std::string(what);
      });
    }
    if (!enter()) return false;
    ++pos_;
    out_.push_back('[');
    skip_whitespace();
    if (consume(']')) {
      out_.push_back(']');
      return leave();
    }
    for (std::size_t count = 0;; ++count) {
      skip_whitespace();
      if (at_end()) return malformed("the document ends inside an array");
      const char c = peek();
      if (c == '{' || c == '[') {
        // Reported where it starts, as nothing inside it could be right.
        return fail("option ids in question " + question + " must be integers, not " +
                    (c == '{' ? "an object" : "an array"));
      }
      const std::size_t start = pos_;
      Scalar kind;
      if (!read_scalar(kind)) return false;
      const std::string_view text = body_.substr(start, pos_ - start);
      if (kind == Scalar::unsigned_integer) {
        return fail("option id " + std::string(text) + " in question " + question +
                    " is out of the 64-bit range");
      }
      if (kind != Scalar::integer) {
        return fail("option ids in question " + question + " must be integers, not " +
                    describe(kind, text));
      }
      if (count > 0) out_.push_back(',');
      append_integer(integer_);
      if (!after_member(']')) return false;
      if (closed_) {
        out_.push_back(']');
        return leave();
      }
    }
  }

  bool read_revision() {
    skip_whitespace();
    if (at_end()) return malformed("the document ends before a value");
    const char c = peek();
    if (c == '{' || c == '[') return fail(kRevisionRule);
    Scalar kind;
    if (!read_scalar(kind)) return false;
    if (kind != Scalar::integer || integer_ <= 0) return fail(kRevisionRule);
    revision_ = integer_;
    return true;
  }

  // A value where a container of one kind belongs: `message(what it is)` when it is a whole
  // scalar or the other kind of container (nothing inside is read), malformed when it is not
  // JSON at all.
  template <class Message>
  bool wrong_value(Message&& message) {
    if (at_end()) return malformed("the document ends before a value");
    const char c = peek();
    if (c == '{') return fail(message("an object"));
    if (c == '[') return fail(message("an array"));
    const std::size_t start = pos_;
    Scalar kind;
    if (!read_scalar(kind)) return false;
    return fail(message(describe(kind, body_.substr(start, pos_ - start))));
  }

  // ---- JSON itself --------------------------------------------------------------------------

  // After a member of an object (or an element of an array): ',' for another, `close` for the
  // end (closed_ says which).
  bool after_member(char close) {
    skip_whitespace();
    if (consume(',')) {
      closed_ = false;
      skip_whitespace();
      if (at_end()) return malformed("the document ends after a comma");
      if (peek() == close) return malformed("a comma before the closing bracket");
      return true;
    }
    if (consume(close)) {
      closed_ = true;
      return true;
    }
    if (at_end()) return malformed("the document ends inside an object or array");
    return malformed(close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
  }

  // A member's name and its colon, decoded into key_.
  bool read_key() {
    skip_whitespace();
    if (at_end()) return malformed("the document ends inside an object");
    if (peek() != '"') return malformed("expected a string as the member's name");
    key_.clear();
    if (!read_string(&key_)) return false;
    skip_whitespace();
    if (!consume(':')) return malformed("expected ':' after the member's name");
    return true;
  }

  // Any value, checked and forgotten.
  bool skip_value() {
    skip_whitespace();
    if (at_end()) return malformed("the document ends before a value");
    const char c = peek();
    if (c == '{' || c == '[') {
      if (!enter()) return false;
      ++pos_;
      const char close = c == '{' ? '}' : ']';
      skip_whitespace();
      if (consume(close)) return leave();
      while (true) {
        if (c == '{') {
          skip_whitespace();
          if (at_end()) return malformed("the document ends inside an object");
          if (peek() != '"') return malformed("expected a string as the member's name");
          if (!read_string(nullptr)) return false;
          skip_whitespace();
          if (!consume(':')) return malformed("expected ':' after the member's name");
        }
        if (!skip_value()) return false;
        if (!after_member(close)) return false;
        if (closed_) return leave();
      }
    }
    Scalar kind;
    return read_scalar(kind);
  }

  bool read_scalar(Scalar& kind) {
    const char c = peek();
    if (c == '"') {
      kind = Scalar::string;
      return read_string(nullptr);
    }
    if (c == '-' || is_digit(c)) return read_number(kind);
    const std::string_view word = c == 't' ? "true" : c == 'f' ? "false" : "null";
    if (body_.substr(pos_, word.size()) != word) return malformed("unexpected character");
    pos_ += word.size();
    kind = c == 'n' ? Scalar::null : Scalar::boolean;
    return true;
  }

  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? — an integer, unless it has a fraction or an
  // exponent; one that does not fit in 64 signed bits is unsigned if it fits in 64 bits, else a
  // number, as nlohmann classifies them.
  bool read_number(Scalar& kind) {
    const std::size_t start = pos_;
    const bool negative = consume('-');
    if (at_end() || !is_digit(peek())) return malformed("a number needs a digit");
    if (!consume('0')) {
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    bool integral = true;
    if (consume('.')) {
      integral = false;
      if (at_end() || !is_digit(peek())) return malformed("a number needs a digit after '.'");
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (at_end() || !is_digit(peek())) return malformed("a number needs a digit in its exponent");
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    const std::string_view text = body_.substr(start, pos_ - start);
    if (integral) {
      std::uint64_t as_unsigned = 0;
      if (std::from_chars(text.data(), text.data() + text.size(), integer_).ec == std::errc()) {
        kind = Scalar::integer;
        return true;
      }
      if (!negative &&
          std::from_chars(text.data(), text.data() + text.size(), as_unsigned).ec == std::errc()) {
        kind = Scalar::unsigned_integer;
        return true;
      }
    }
    // A number that is not a 64-bit integer is a double, and one too large for a double is
    // refused (as nlohmann does: "number overflow"); one too small is zero, which is fine.
    kind = Scalar::number;
    if (!finite_double(text)) {
      pos_ = start;
      return malformed("a number too large for a double");
    }
    return true;
  }

  // strtod's verdict, on a NUL-terminated copy of the number (a buffer reused per thread).
  static bool finite_double(std::string_view text) {
    thread_local std::string copy;
    copy.assign(text);
    return std::isfinite(std::strtod(copy.c_str(), nullptr));
  }

  // A string from its opening quote: escapes and UTF-8 checked; decoded into `decoded` when
  // it is given (a member's name).
  bool read_string(std::string* decoded) {
    ++pos_;  // '"'
    while (true) {
      // A run of plain ASCII, the usual content, taken at once.
      const std::size_t run = pos_;
      while (!at_end() && is_plain_ascii(static_cast<unsigned char>(peek()))) ++pos_;
      if (decoded != nullptr) decoded->append(body_.data() + run, pos_ - run);
      if (at_end()) return malformed("the document ends inside a string");
      const auto byte = static_cast<unsigned char>(peek());
      if (byte == '"') {
        ++pos_;
        return true;
      }
      if (byte < 0x20) return malformed("a control character must be escaped in a string");
      if (byte == '\\') {
        if (!read_escape(decoded)) return false;
        continue;
      }
      const std::size_t length = utf8_sequence_length(body_.substr(pos_));
      if (length == 0) return malformed("invalid UTF-8 in a string");
      if (decoded != nullptr) decoded->append(body_.data() + pos_, length);
      pos_ += length;
    }
  }

  // A byte that stands for itself in a string: printable ASCII but the quote and backslash.
  static bool is_plain_ascii(unsigned char byte) {
    return byte >= 0x20 && byte < 0x80 && byte != '"' && byte != '\\';
  }

  bool read_escape(std::string* decoded) {
    ++pos_;  // '\'
    if (at_end()) return malformed("the document ends inside an escape");
    const char c = body_[pos_++];
    char simple = 0;
    switch (c) {
      case '"':
        simple = '"';
        break;
      case '\\':
        simple = '\\';
        break;
      case '/':
        simple = '/';
        break;
      case 'b':
        simple = '\b';
        break;
      case 'f':
        simple = '\f';
        break;
      case 'n':
        simple = '\n';
        break;
      case 'r':
        simple = '\r';
        break;
      case 't':
        simple = '\t';
        break;
      case 'u':
        break;
      default:
        return malformed("invalid escape in a string");
    }
    if (c != 'u') {
      if (decoded != nullptr) decoded->push_back(simple);
      return true;
    }
    std::uint32_t code = 0;
    if (!read_hex4(code)) return false;
    if (code >= 0xDC00 && code <= 0xDFFF) return malformed("a lone low surrogate in a string");
    if (code >= 0xD800 && code <= 0xDBFF) {
      // A high surrogate: its low surrogate must follow, as \uDC00..\uDFFF.
      if (body_.substr(pos_, 2) != "\\u") return malformed("a lone high surrogate in a string");
      pos_ += 2;
      std::uint32_t low = 0;
      if (!read_hex4(low)) return false;
      if (low < 0xDC00 || low > 0xDFFF) return malformed("a lone high surrogate in a string");
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    if (decoded != nullptr) append_utf8(*decoded, code);
    return true;
  }

  bool read_hex4(std::uint32_t& code) {
    if (body_.size() - pos_ < 4) return malformed("the document ends inside a \\u escape");
    for (int i = 0; i < 4; ++i) {
      const char c = body_[pos_++];
      const int digit = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
      if (digit < 0) return malformed("a \\u escape needs four hex digits");
      code = code << 4 | static_cast<std::uint32_t>(digit);
    }
    return true;
  }

  static void append_utf8(std::string& out, std::uint32_t code) {
    if (code < 0x80) {
      out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out.push_back(static_cast<char>(0xC0 | code >> 6));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | code >> 12));
      out.push_back(static_cast<char>(0x80 | (code >> 6 & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | code >> 18));
      out.push_back(static_cast<char>(0x80 | (code >> 12 & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code >> 6 & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  // An option id as its canonical decimal ("-0" is 0).
  void append_integer(std::int64_t value) {
    char digits[24];
    const auto [end, error] = std::to_chars(digits, digits + sizeof digits, value);
    out_.append(digits, end);
  }

  // ---- bookkeeping ------------------------------------------------------------------------

  bool enter() {
    if (++depth_ > limits_.max_depth) {
      return fail("JSON nesting is deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    return true;
  }
  bool leave() {
    --depth_;
    return true;
  }

  bool at_end() const { return pos_ >= body_.size(); }
  char peek() const { return body_[pos_]; }
  bool consume(char c) {
    if (at_end() || body_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  void skip_whitespace() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
      ++pos_;
    }
  }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  static std::string describe(Scalar kind, std::string_view text) {
    switch (kind) {
      case Scalar::string:
        return "a string";
      case Scalar::integer:
      case Scalar::unsigned_integer:
        return "a number";
      case Scalar::number:
        return "the number " + truncate(text);
      case Scalar::boolean:
        return "a boolean";
      case Scalar::null:
        return "null";
    }
    return "a value";
  }

  static std::string truncate(std::string_view text) {
    constexpr std::size_t kShown = 32;
    return text.size() <= kShown ? std::string(text) : std::string(text.substr(0, kShown)) + "...";
  }

  bool fail(std::string message) {
    if (!error_) error_ = AnswersError{std::move(message)};
    return false;
  }
  bool malformed(std::string_view what) {
    return fail("malformed JSON at byte " + std::to_string(pos_ + 1) + ": " + std::string(what));
  }
  std::optional<AnswersError> take_error() {
    return std::move(error_).value_or(AnswersError{"malformed JSON"});
  }

  const std::string_view body_;
  const AnswersLimits& limits_;
  std::string& out_;
  std::vector<std::int64_t>& question_ids_;
  std::string& key_;
  std::size_t pos_ = 0;
  std::size_t depth_ = 0;
  std::int64_t integer_ = 0;  // the last number read, when it was a 64-bit integer
  bool closed_ = false;
  bool answers_seen_ = false;
  bool revision_seen_ = false;
  std::optional<std::int64_t> revision_;
  std::optional<AnswersError> error_;
};

}  // namespace

std::optional<AnswersError> parse_answers_document(std::string_view body,
                                                   const AnswersLimits& limits,
                                                   AnswersDocument& out) {
  // A raw NUL is never valid JSON; said first, wherever it is.
  if (const auto nul = body.find('\0'); nul != std::string_view::npos) {
    return AnswersError{"malformed JSON at byte " + std::to_string(nul + 1) + ": NUL byte"};
  }
  // The question ids seen (for the duplicate check) and the member name being read: buffers per
  // thread, reused, so validating a document allocates nothing beyond its output once warm.
  thread_local std::vector<std::int64_t> question_ids;
  thread_local std::string key;
  AnswersReader reader(body, limits, out.json, question_ids, key);
  if (auto error = reader.read()) return error;
  out.question_count = reader.question_count();
  out.revision = reader.revision();
  return std::nullopt;
}

AnswersParseResult parse_answers_document(std::string_view body, const AnswersLimits& limits) {
  AnswersDocument document;
  if (auto error = parse_answers_document(body, limits, document)) return std::move(*error);
  return document;
}

}  // namespace attempts
