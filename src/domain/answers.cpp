#include "attempts/domain/answers.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "attempts/domain/attempt_id.hpp"

namespace attempts {
namespace {

using json = nlohmann::json;

constexpr const char* kRevisionRule =
    "\"revision\" must be a positive integer of at most 64 bits";

// Validates while nlohmann's parser streams events, so no DOM is built and a deep or wide
// document is rejected as soon as it breaks a rule. Returning false from a handler stops
// the parse; the first error recorded wins.

class AnswersSaxValidator {
 public:
  AnswersSaxValidator(const AnswersLimits& limits, std::string& out,
                      std::vector<std::int64_t>& question_ids)
      : limits_(limits), question_ids_(question_ids), out_(out) {
    out_.clear();
    question_ids_.clear();
  }

  bool null() { return scalar("null"); }
  bool boolean(bool) { return scalar("a boolean"); }
  bool number_integer(json::number_integer_t value) { return integer(value); }
  bool number_unsigned(json::number_unsigned_t value) {
    if (place_ == Place::revision_value) {
      if (value == 0 || value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return fail(kRevisionRule);
      }
      revision_ = static_cast<std::int64_t>(value);
      place_ = Place::top_object;
      return true;
    }
    if (place_ == Place::option_array &&
        value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return fail("option id " + std::to_string(value) + " in question " + question_ +
                  " is out of the 64-bit range");
    }
    return integer(static_cast<std::int64_t>(value));
  }
  bool number_float(json::number_float_t, const json::string_t& text) {
    return scalar("the number " + truncate(text));
  }
  bool string(json::string_t&) { return scalar("a string"); }
  bool binary(json::binary_t&) { return scalar("binary data"); }

  bool start_object(std::size_t) {
    if (!enter()) return false;
    switch (place_) {
      case Place::document:
        place_ = Place::top_object;
        return true;
      case Place::answers_value:
        place_ = Place::answers_object;
        out_.push_back('{');
        return true;
      case Place::question_value:
        return fail("answers for question " + question_ + " must be an array of option ids");
      case Place::option_array:
        return fail("option ids in question " + question_ + " must be integers, not an object");
      case Place::revision_value:
        return fail(kRevisionRule);
      default:
        return true;  // inside an ignored top-level field
    }
  }

  bool key(json::string_t& name) {
    if (place_ == Place::top_object && ignored_depth_ == 0) {
      if (name == "revision") {
        if (revision_seen_) return fail("field \"revision\" appears more than once");
        revision_seen_ = true;
        place_ = Place::revision_value;
        return true;
      }
      if (name != "answers") {
        place_ = Place::ignored_value;
        return true;
      }
      if (answers_seen_) return fail("field \"answers\" appears more than once");
      answers_seen_ = true;
      place_ = Place::answers_value;
      return true;
    }
    if (place_ == Place::answers_object) {
      const auto id = parse_positive_decimal(name);
      if (!id) {
        return fail("question id \"" + truncate(name) +
                    "\" must be a positive decimal integer without leading zeros");
      }
      question_ids_.push_back(*id);
      question_ = name;
      if (question_ids_.size() > 1) out_.push_back(',');
      out_.push_back('"');
      out_.append(name);
      out_.append("\":");
      place_ = Place::question_value;
      return true;
    }
    return true;  // a key inside an ignored field
  }

  bool end_object() {
    leave();
    if (place_ == Place::answers_object) {
      out_.push_back('}');
      place_ = Place::top_object;
    } else if (place_ == Place::top_object && depth_ == 0) {
      place_ = Place::done;
    } else {
      end_ignored_value();
    }
    return true;
  }

  bool start_array(std::size_t) {
    if (!enter()) return false;
    switch (place_) {
      case Place::document:
        return fail("request body must be a JSON object");
      case Place::answers_value:
        return fail("\"answers\" must be an object, not an array");
      case Place::question_value:
        place_ = Place::option_array;
        options_in_question_ = 0;
        out_.push_back('[');
        return true;
      case Place::option_array:
        return fail("option ids in question " + question_ + " must be integers, not an array");
      case Place::revision_value:
        return fail(kRevisionRule);
      default:
        return true;
    }
  }

  bool end_array() {
    leave();
    if (place_ == Place::option_array) {
      out_.push_back(']');
      place_ = Place::answers_object;
    } else {
      end_ignored_value();
    }
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const json::exception& error) {
    if (error_.empty()) {
      error_ = "malformed JSON at byte " + std::to_string(position) + ": " + describe(error);
    }
    return false;
  }

  // The error, or nullopt when the document is valid; then out_ holds it re-serialised.
  std::optional<AnswersError> finish(bool parsed) {
    if (!parsed || !error_.empty()) {
      return AnswersError{error_.empty() ? "malformed JSON" : error_};
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
  enum class Place {
    document,        // nothing read yet
    top_object,      // between fields of the top-level object
    ignored_value,   // inside (or about to read) a top-level field other than "answers"
    answers_value,   // about to read the value of "answers"
    answers_object,  // between questions
    question_value,  // about to read one question's option array
    option_array,    // inside one question's option array
    revision_value,  // about to read the value of "revision"
    done,
  };

  bool enter() {
    if (++depth_ > limits_.max_depth) {
      return fail("JSON nesting is deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    if (place_ == Place::ignored_value) ++ignored_depth_;
    return true;
  }

  void leave() {
    --depth_;
    if (place_ == Place::ignored_value && ignored_depth_ > 0) --ignored_depth_;
  }

  // An ignored field's value is finished when its outermost container closes.
  void end_ignored_value() {
    if (place_ == Place::ignored_value && ignored_depth_ == 0) place_ = Place::top_object;
  }

  bool scalar(const std::string& what) {
    switch (place_) {
      case Place::document:
        return fail("request body must be a JSON object");
      case Place::answers_value:
        return fail("\"answers\" must be an object, not " + what);
      case Place::question_value:
        return fail("answers for question " + question_ + " must be an array of option ids, not " +
                    what);
      case Place::option_array:
        return fail("option ids in question " + question_ + " must be integers, not " + what);
      case Place::ignored_value:
        if (ignored_depth_ == 0) place_ = Place::top_object;
        return true;
      case Place::revision_value:
        return fail(kRevisionRule);
      default:
        return true;
    }
  }

  bool integer(std::int64_t value) {
    if (place_ == Place::revision_value) {
      if (value <= 0) return fail(kRevisionRule);
      revision_ = value;
      place_ = Place::top_object;
      return true;
    }
    if (place_ != Place::option_array) return scalar("a number");
    if (options_in_question_++ > 0) out_.push_back(',');
    char digits[24];
    const auto [end, error] = std::to_chars(digits, digits + sizeof digits, value);
    out_.append(digits, end);
    return true;
  }

  bool fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  static std::string truncate(const std::string& text) {
    constexpr std::size_t kShown = 32;
    return text.size() <= kShown ? text : text.substr(0, kShown) + "...";
  }

  // nlohmann prefixes messages with "[json.exception.parse_error.101] parse error at line 1,
  // column 5: "; the position is already reported, so the client gets what follows.
  static std::string describe(const json::exception& error) {
    const std::string text = error.what();
    const auto column = text.find("column ");
    const auto colon = text.find(": ", column == std::string::npos ? 0 : column);
    return colon == std::string::npos ? text : text.substr(colon + 2);
  }

  const AnswersLimits& limits_;
  Place place_ = Place::document;
  std::size_t depth_ = 0;
  std::size_t ignored_depth_ = 0;
  std::size_t options_in_question_ = 0;
  bool answers_seen_ = false;
  bool revision_seen_ = false;
  std::optional<std::int64_t> revision_;
  std::string question_;
  std::vector<std::int64_t>& question_ids_;
  std::string& out_;
  std::string error_;
};

}  // namespace

std::optional<AnswersError> parse_answers_document(std::string_view body,
                                                   const AnswersLimits& limits,
                                                   AnswersDocument& out) {
  // nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows it;
  // a raw NUL is never valid JSON anyway.
  if (const auto nul = body.find('\0'); nul != std::string_view::npos) {
    return AnswersError{"malformed JSON at byte " + std::to_string(nul + 1) + ": NUL byte"};
  }
  // The question ids seen, for the duplicate check: a buffer per thread, reused, so validating
  // a document allocates nothing beyond its output once warmed up.
  thread_local std::vector<std::int64_t> question_ids;
  AnswersSaxValidator validator(limits, out.json, question_ids);
  const bool parsed = json::sax_parse(body.begin(), body.end(), &validator,
                                      json::input_format_t::json, /*strict=*/true);
  if (auto error = validator.finish(parsed)) return error;
  out.question_count = validator.question_count();
  out.revision = validator.revision();
  return std::nullopt;
}

AnswersParseResult parse_answers_document(std::string_view body, const AnswersLimits& limits) {
  AnswersDocument document;
  if (auto error = parse_answers_document(body, limits, document)) return std::move(*error);
  return document;
}

}  // namespace attempts
