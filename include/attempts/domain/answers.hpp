#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace attempts {

// Limits that keep a hostile document from costing more than its size.
struct AnswersLimits {
  // Nesting allowed anywhere in the document (ignored top-level fields included).
  std::size_t max_depth = 32;
};

// A validated answers object, re-serialised compactly: `{"<question id>":[<option id>,...],...}`.
// Only digits, '-', ',', ':', '"', '[', ']', '{' and '}' can appear in it.
struct AnswersDocument {
  std::string json;
  std::size_t question_count = 0;
  // The optional top-level "revision": a positive integer the client increases with each change.
  std::optional<std::int64_t> revision;
};

// Why a request body is not an acceptable answers document, in words a client can act on.
struct AnswersError {
  std::string message;
};

using AnswersParseResult = std::variant<AnswersDocument, AnswersError>;

// Validates a request body of the shape
// `{"answers": {"<question id>": [<option id>, ...]}, "revision": <n>}`.
// Question ids are positive decimal integers (as JSON strings, no leading zeros, each at most
// once); option ids are JSON integers in the signed 64-bit range; "revision" is optional and a
// positive integer in that range. Other top-level fields are ignored. Malformed JSON, invalid
// UTF-8 and trailing garbage are rejected. Pure: no I/O.
AnswersParseResult parse_answers_document(std::string_view body, const AnswersLimits& limits = {});

// The same, writing into `out` (whose buffer is reused): nullopt when valid, else the error.
std::optional<AnswersError> parse_answers_document(std::string_view body,
                                                   const AnswersLimits& limits,
                                                   AnswersDocument& out);

}  // namespace attempts
