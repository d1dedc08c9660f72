// libFuzzer target: arbitrary bytes as a PATCH body through parse_answers_document (the answers
// validator), checked against an independent nlohmann DOM parse of the same bytes.
//
// Invariants (a violation prints what broke and aborts, which libFuzzer reports as a crash):
//   - on success the produced json uses only digits - , : " [ ] { }, parses (DOM) to an object
//     whose keys are canonical positive decimal strings and whose values are arrays of int64,
//     with question_count entries;
//   - validating `{"answers": <produced json>}` again yields the same json (idempotence);
//   - on error the message is non-empty;
//   - the verdict is the one an independent reading of the same bytes gives: invalid JSON (for
//     nlohmann) or a NUL byte or nesting deeper than the limit => error; otherwise success exactly
//     when the DOM has the required shape and neither "answers" nor a question id is repeated, and
//     then the produced json equals the DOM's "answers" value.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "attempts/domain/answers.hpp"
#include "attempts/domain/attempt_id.hpp"

namespace {

using json = nlohmann::json;

[[noreturn]] void violated(const char* what, std::string_view input, const std::string& detail) {
  std::fprintf(stderr, "fuzz_answers: INVARIANT VIOLATED: %s\n  detail: %s\n  input (%zu bytes)\n",
               what, detail.c_str(), input.size());
  std::abort();
}

#define CHECK(cond, detail)                                 \
  do {                                                      \
    if (!(cond)) violated(#cond, input, std::string(detail)); \
  } while (false)

// A SAX reader independent of the validator: is the input JSON at all, how deep does it nest,
// how often does the top-level object have "answers", and does the object under the (first)
// "answers" key repeat a key. Iterative, so it copes with any depth.
class Probe {
 public:
  std::size_t max_depth = 0;
  int answers_keys = 0;
  bool duplicate_question = false;

  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(json::number_integer_t) { return value(); }
  bool number_unsigned(json::number_unsigned_t) { return value(); }
  bool number_float(json::number_float_t, const json::string_t&) { return value(); }
  bool string(json::string_t&) { return value(); }
  bool binary(json::binary_t&) { return value(); }
  bool start_object(std::size_t) { return open(Kind::object); }
  bool start_array(std::size_t) { return open(Kind::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& name) {
    if (stack_.size() == 1) {
      next_is_answers_ = name == "answers";
      if (next_is_answers_) ++answers_keys;
    } else if (stack_.size() == 2 && stack_[1].is_answers) {
      if (!stack_[1].keys.insert(name).second) duplicate_question = true;
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const json::exception&) { return false; }

 private:
  enum class Kind { object, array };
  struct Frame {
    Kind kind;
    bool is_answers;  // the object that is the value of the first top-level "answers"
    std::set<std::string> keys;
  };

  bool open(Kind kind) {
    const bool answers =
        kind == Kind::object && stack_.size() == 1 && next_is_answers_ && answers_keys == 1;
    stack_.push_back({kind, answers, {}});
    if (stack_.size() > max_depth) max_depth = stack_.size();
    next_is_answers_ = false;
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }
  bool value() {
    next_is_answers_ = false;
    return true;
  }

  std::vector<Frame> stack_;
  bool next_is_answers_ = false;
};

bool is_int64(const json& value) {
  if (!value.is_number_integer()) return false;  // floats, and integers nlohmann could not fit
  if (value.is_number_unsigned()) {
    return value.get<std::uint64_t>() <=
           static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  }
  return true;
}

bool is_question_id(const std::string& key) {
  const auto id = attempts::parse_positive_decimal(key);
  return id && std::to_string(*id) == key;
}

// The shape rules of the validator, read off a DOM (which keeps the last of repeated keys, so
// repetitions are the Probe's business).
bool has_answers_shape(const json& document) {
  if (!document.is_object()) return false;
  const auto answers = document.find("answers");
  if (answers == document.end() || !answers->is_object()) return false;
  for (const auto& [question, options] : answers->items()) {
    if (!is_question_id(question) || !options.is_array()) return false;
    for (const auto& option : options) {
      if (!is_int64(option)) return false;
    }
  }
  return true;
}

void check_document(std::string_view input, const attempts::AnswersDocument& document) {
  const std::string& out = document.json;
  CHECK(out.find_first_not_of("0123456789-,:\"[]{}") == std::string::npos, out);
  const json parsed = json::parse(out, nullptr, /*allow_exceptions=*/false);
  CHECK(!parsed.is_discarded() && parsed.is_object(), out);
  CHECK(parsed.size() == document.question_count,
        out + " count=" + std::to_string(document.question_count));
  for (const auto& [question, options] : parsed.items()) {
    CHECK(is_question_id(question), question);
    CHECK(options.is_array(), out);
    for (const auto& option : options) CHECK(is_int64(option), out);
  }
  // Compact, as promised: what nlohmann prints for the same value in the same key order is
  // not available (its objects are sorted), so compare the length with a sorted compact dump.
  CHECK(parsed.dump().size() == out.size(), out);

  const std::string again_input = R"({"answers":)" + out + "}";
  const auto again = attempts::parse_answers_document(again_input);
  const auto* redone = std::get_if<attempts::AnswersDocument>(&again);
  CHECK(redone != nullptr,
        "re-validation failed: " + std::get<attempts::AnswersError>(again).message);
  CHECK(redone->json == out, redone->json + " != " + out);
  CHECK(redone->question_count == document.question_count, out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const attempts::AnswersLimits limits;
  const auto result = attempts::parse_answers_document(input, limits);
  const auto* document = std::get_if<attempts::AnswersDocument>(&result);
  if (document != nullptr) {
    check_document(input, *document);
  } else {
    CHECK(!std::get<attempts::AnswersError>(result).message.empty(), "");
  }
  const std::string verdict =
      document ? "accepted as " + document->json
               : "rejected: " + std::get<attempts::AnswersError>(result).message;

  // The independent reading. nlohmann's lexer ends the input at a NUL byte, which the validator
  // rejects outright (documented in answers.cpp): no cross-check to make but the rejection.
  if (input.find('\0') != std::string_view::npos) {
    CHECK(document == nullptr, verdict);
    return 0;
  }
  Probe probe;
  const bool is_json =
      json::sax_parse(input.begin(), input.end(), &probe, json::input_format_t::json, true);
  if (!is_json || probe.max_depth > limits.max_depth) {
    CHECK(document == nullptr, verdict + (is_json ? " (too deep)" : " (not JSON for nlohmann)"));
    return 0;
  }
  const json dom = json::parse(input.begin(), input.end(), nullptr, /*allow_exceptions=*/false);
  CHECK(!dom.is_discarded(), "the SAX and DOM parses of nlohmann disagree");
  const bool expected = has_answers_shape(dom) && probe.answers_keys == 1 && !probe.duplicate_question;
  CHECK(expected == (document != nullptr), verdict + (expected ? " (expected accept)"
                                                               : " (expected reject)"));
  if (document != nullptr) {
    CHECK(json::parse(document->json) == dom["answers"], verdict + " vs " + dom["answers"].dump());
  }
  return 0;
}
