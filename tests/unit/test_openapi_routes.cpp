// docs/openapi.yaml against the code: the document describes exactly the paths and methods the
// router serves (attempts::http::kPaths), every operation lists the statuses any request can get
// from the session, HEAD lists those of GET, and the id pattern accepts exactly what the server
// parses.
//
// The document is read by a small line reader, not a YAML library. It knows the layout that
// docs/openapi.yaml keeps: 2-space indentation; `paths:` at column 0; each path at 2 spaces;
// its methods (and summary, description, parameters, servers) at 4; an operation's `responses:`
// at 6 and their quoted status codes at 8. Anything else there throws, so a change of layout
// fails these tests loudly instead of hiding a path or a method from them.

#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "attempts/domain/attempt_id.hpp"
#include "attempts/http/router.hpp"

namespace attempts::http {
namespace {

// The method keys of an OpenAPI Path Item.
const std::set<std::string, std::less<>> kMethodKeys = {"get",     "put",  "post",  "delete",
                                                        "options", "head", "patch", "trace"};
// The other Path Item fields the document may use. `$ref` is not one: a path item kept
// elsewhere could not be read here.
const std::set<std::string, std::less<>> kPathItemFields = {"summary", "description", "parameters",
                                                            "servers"};

struct Operation {
  std::set<int> statuses;
};
using PathItem = std::map<std::string, Operation>;  // method, lower case -> operation
using Paths = std::map<std::string, PathItem>;

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = text.find('\n', start);
    lines.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return lines;
}

// One line of the document: its indentation, and its key and value when it is `key: value`
// or `key:`; a list item or a line of text has no key.
struct Line {
  std::size_t number = 0;
  std::size_t indent = 0;
  std::string key;
  std::string value;
  bool has_key = false;
  bool blank = false;  // empty, spaces only, or a comment
};

[[noreturn]] void fail_at(std::size_t number, const std::string& what) {
  throw std::runtime_error("openapi.yaml line " + std::to_string(number) + ": " + what);
}

Line parse_line(const std::string& text, std::size_t number) {
  Line line;
  line.number = number;
  const auto first = text.find_first_not_of(' ');
  if (first == std::string::npos || text[first] == '#') {
    line.blank = true;
    return line;
  }
  if (text[first] == '\t' || text.find('\r') != std::string::npos) {
    fail_at(number, "tabs and carriage returns are not part of the layout this test reads");
  }
  line.indent = first;
  const std::string_view content = std::string_view(text).substr(first);
  if (content.starts_with("- ") || content == "-") return line;
  // The key ends at the first ':' that ends the line or is followed by a space.
  for (std::size_t i = 0; i < content.size(); ++i) {
    if (content[i] == ':' && (i + 1 == content.size() || content[i + 1] == ' ')) {
      line.has_key = true;
      line.key = std::string(content.substr(0, i));
      const auto value = content.substr(i + 1);
      const auto value_start = value.find_first_not_of(' ');
      if (value_start != std::string_view::npos)
        line.value = std::string(value.substr(value_start));
      break;
    }
  }
  return line;
}

// A status key as the document writes it: three digits in single quotes ('200').
int parse_status(const Line& line) {
  const std::string& key = line.key;
  if (key == "default") {
    fail_at(line.number, "a `default` response would let any status pass the contract");
  }
  if (key.size() != 5 || key.front() != '\'' || key.back() != '\'' || key[1] < '1' ||
      key[1] > '5' || !std::isdigit(static_cast<unsigned char>(key[2])) ||
      !std::isdigit(static_cast<unsigned char>(key[3]))) {
    fail_at(line.number, "expected a quoted status code such as '200', found `" + key + "`");
  }
  return std::stoi(key.substr(1, 3));
}

// The `paths:` section: each path with its operations and their response statuses.
Paths read_paths(std::string_view text) {
  const auto lines = split_lines(text);
  std::size_t section = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] != "paths:") continue;
    if (section != lines.size()) fail_at(i + 1, "a second `paths:`");
    section = i;
  }
  if (section == lines.size()) throw std::runtime_error("openapi.yaml: no `paths:` line");

  Paths paths;
  PathItem* path = nullptr;
  Operation* operation = nullptr;
  bool in_responses = false;
  // Inside a block scalar (`key: |`): its lines are text, whatever they look like.
  std::size_t text_deeper_than = std::string::npos;
  for (std::size_t i = section + 1; i < lines.size(); ++i) {
    const Line line = parse_line(lines[i], i + 1);
    if (line.blank) continue;
    if (text_deeper_than != std::string::npos) {
      if (line.indent > text_deeper_than) continue;
      text_deeper_than = std::string::npos;
    }
    if (line.indent == 0) break;  // the next top-level key: the section is over
    if (line.indent % 2 != 0) fail_at(line.number, "indentation is not a multiple of 2");
    if (line.has_key && (line.value.starts_with('|') || line.value.starts_with('>'))) {
      text_deeper_than = line.indent;
    }
    switch (line.indent) {
      case 2: {
        if (!line.has_key || !line.key.starts_with('/') || !line.value.empty()) {
          fail_at(line.number, "expected a path such as `  /attempts/{id}:`");
        }
        const auto [it, added] = paths.try_emplace(line.key);
        if (!added) fail_at(line.number, "path " + line.key + " appears twice");
        path = &it->second;
        operation = nullptr;
        in_responses = false;
        break;
      }
      case 4: {
        if (path == nullptr) fail_at(line.number, "expected a path at 2 spaces first");
        in_responses = false;
        operation = nullptr;
        if (line.has_key && kMethodKeys.contains(line.key) && line.value.empty()) {
          const auto [it, added] = path->try_emplace(line.key);
          if (!added) fail_at(line.number, "method " + line.key + " appears twice");
          operation = &it->second;
        } else if (!line.has_key || !kPathItemFields.contains(line.key)) {
          fail_at(line.number,
                  "expected a method or one of summary, description, parameters, "
                  "servers");
        }
        break;
      }
      case 6:
        if (operation == nullptr) break;  // inside a path item's parameters or servers
        in_responses = line.has_key && line.key == "responses";
        if (in_responses && !line.value.empty()) {
          fail_at(line.number, "expected the responses as a block mapping");
        }
        break;
      case 8:
        if (operation == nullptr || !in_responses) break;
        if (!line.has_key) fail_at(line.number, "expected a status code");
        if (!operation->statuses.insert(parse_status(line)).second) {
          fail_at(line.number, "status " + line.key + " appears twice");
        }
        break;
      default:
        break;  // deeper: the content of a response, a parameter, ...
    }
  }
  if (paths.empty()) throw std::runtime_error("openapi.yaml: `paths:` lists no path");
  return paths;
}

// The `pattern:` of the schema components.schemas.<name> (at 4 spaces; its keys at 6), unquoted.
std::string read_schema_pattern(std::string_view text, std::string_view name) {
  const auto lines = split_lines(text);
  const std::string header = "    " + std::string(name) + ":";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] != header) continue;
    for (std::size_t j = i + 1; j < lines.size(); ++j) {
      const Line line = parse_line(lines[j], j + 1);
      if (line.blank) continue;
      if (line.indent <= 4) break;
      if (line.indent != 6 || line.key != "pattern") continue;
      const std::string& value = line.value;
      if (value.size() < 2 || value.front() != '\'' || value.back() != '\'' ||
          value.find('\'', 1) != value.size() - 1) {
        fail_at(line.number, "expected the pattern in single quotes, without quotes inside");
      }
      return value.substr(1, value.size() - 2);
    }
    fail_at(i + 1, std::string(name) + " has no pattern");
  }
  throw std::runtime_error("openapi.yaml: no schema " + std::string(name));
}

std::string read_document() {
  std::ifstream file(ATTEMPTS_OPENAPI_DOCUMENT);
  if (!file) throw std::runtime_error("cannot read " + std::string(ATTEMPTS_OPENAPI_DOCUMENT));
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// kPaths as path -> methods in lower case ("GET, HEAD" -> {"get", "head"}).
std::map<std::string, std::set<std::string>> router_paths() {
  std::map<std::string, std::set<std::string>> routes;
  for (const auto& [path, methods] : kPaths) {
    auto& set = routes[std::string(path)];
    std::string_view rest = methods;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      std::string method(rest.substr(0, comma));
      method.erase(0, method.find_first_not_of(' '));
      for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      set.insert(method);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
  }
  return routes;
}

std::string join(const std::set<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text.empty() ? "(none)" : text;
}

class OpenApiRoutesTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_THROW(document_ = read_document());
    ASSERT_NO_THROW(paths_ = read_paths(document_));
  }

  std::string document_;
  Paths paths_;
};

TEST_F(OpenApiRoutesTest, DocumentHasExactlyTheRoutersPaths) {
  const auto routes = router_paths();
  std::set<std::string> only_router, only_document;
  for (const auto& [path, methods] : routes) {
    if (!paths_.contains(path)) only_router.insert(path);
  }
  for (const auto& [path, item] : paths_) {
    if (!routes.contains(path)) only_document.insert(path);
  }
  EXPECT_TRUE(only_router.empty()) << "served but not in docs/openapi.yaml: " << join(only_router);
  EXPECT_TRUE(only_document.empty())
      << "in docs/openapi.yaml but not served (kPaths): " << join(only_document);
}

// OPTIONS is no method of the router's: the request handler answers it as a CORS preflight on
// every path the router knows (cors.hpp), and the document says so with an `options` operation.
TEST_F(OpenApiRoutesTest, EachPathHasExactlyTheRoutersMethodsAndAPreflight) {
  for (const auto& [path, methods] : router_paths()) {
    const auto it = paths_.find(path);
    if (it == paths_.end()) continue;  // reported by DocumentHasExactlyTheRoutersPaths
    std::set<std::string> documented;
    for (const auto& [method, operation] : it->second) documented.insert(method);
    EXPECT_EQ(documented.erase("options"), 1u) << path << ": no `options` (CORS preflight)";
    EXPECT_EQ(documented, methods) << path << ": docs/openapi.yaml has " << join(documented)
                                   << ", the router allows " << join(methods);
  }
}

// What a preflight can get: 204 or 403 (allowed origin or not), 400 (malformed), 405 (CORS
// off, or no preflight).
TEST_F(OpenApiRoutesTest, EveryPreflightListsItsStatuses) {
  for (const auto& [path, item] : paths_) {
    const auto options = item.find("options");
    if (options == item.end()) continue;  // reported above
    for (const int status : {204, 400, 403, 405}) {
      EXPECT_TRUE(options->second.statuses.contains(status)) << path << ": no " << status;
    }
  }
}

// The session answers these before any route is involved: unparsable HTTP (400), a request
// that does not arrive in time (408), a body over --body-limit (413), a header over 8 KiB (431).
TEST_F(OpenApiRoutesTest, EveryOperationListsTheStatusesOfTheSession) {
  for (const auto& [path, item] : paths_) {
    for (const auto& [method, operation] : item) {
      for (const int status : {400, 408, 413, 431}) {
        EXPECT_TRUE(operation.statuses.contains(status))
            << method << " " << path << ": no " << status;
      }
    }
  }
}

TEST_F(OpenApiRoutesTest, HeadListsTheStatusesOfGet) {
  for (const auto& [path, item] : paths_) {
    const auto head = item.find("head");
    if (head == item.end()) continue;
    const auto get = item.find("get");
    ASSERT_NE(get, item.end()) << path << " has HEAD without GET";
    EXPECT_EQ(head->second.statuses, get->second.statuses) << path;
  }
}

// The pattern of DecimalId (every id in a path and every question id) against the server's
// own parser, on the edges and on random strings of digits.
TEST_F(OpenApiRoutesTest, IdPatternAcceptsExactlyWhatTheServerParses) {
  std::string pattern;
  ASSERT_NO_THROW(pattern = read_schema_pattern(document_, "DecimalId"));
  const std::regex regex(pattern, std::regex::ECMAScript);
  const auto agree = [&](const std::string& text) {
    EXPECT_EQ(std::regex_search(text, regex), parse_positive_decimal(text).has_value())
        << "\"" << text << "\"";
  };
  constexpr const char* kEdges[] = {"1",
                                    "9",
                                    "10",
                                    "42",
                                    "100000",
                                    "999999999999999999",
                                    "1000000000000000000",
                                    "9223372036854775806",
                                    "9223372036854775807",
                                    "9223372036854775808",
                                    "9223372036854775810",
                                    "9223372036854775900",
                                    "9300000000000000000",
                                    "9999999999999999999",
                                    "10000000000000000000",
                                    "0",
                                    "00",
                                    "01",
                                    "-1",
                                    "+1",
                                    "",
                                    " 1",
                                    "1 ",
                                    "1a",
                                    "a1",
                                    "1.5",
                                    "1e3",
                                    "0x1F"};
  for (const char* text : kEdges) {
    agree(text);
  }
  std::mt19937_64 random(20261128);
  const std::string max = "9223372036854775807";
  for (int i = 0; i < 20000; ++i) {
    // Random digits, half of them sharing a prefix with the largest id.
    std::string text = i % 2 == 0 ? max.substr(0, random() % max.size()) : "";
    const std::size_t length = i % 2 == 0 ? max.size() + random() % 2 : 1 + random() % 20;
    while (text.size() < length) text += static_cast<char>('0' + random() % 10);
    agree(text);
  }
}

// --- The reader itself: an unexpected layout throws ------------------------------------------

TEST(OpenApiReaderTest, ReadsPathsMethodsAndStatuses) {
  const Paths paths = read_paths(
      "openapi: 3.1.0\n"
      "paths:\n"
      "  /a/{id}:\n"
      "    summary: A.\n"
      "    description: |\n"
      "      Text that looks like a method:\n"
      "    get:\n"
      "      description: |\n"
      "        responses:\n"
      "          '999':\n"
      "      responses:\n"
      "        '200':\n"
      "          $ref: '#/components/responses/X'\n"
      "        '404':\n"
      "          description: Not found.\n"
      "    parameters:\n"
      "      - $ref: '#/components/parameters/Id'\n"
      "    patch:\n"
      "      responses:\n"
      "        '204':\n"
      "          description: Saved.\n"
      "  /b:\n"
      "    post:\n"
      "      security: []\n"
      "      responses:\n"
      "\n"
      "        # a comment\n"
      "        '201':\n"
      "          description: Created.\n"
      "components:\n"
      "  /not-a-path:\n");
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(paths.at("/a/{id}").at("get").statuses, (std::set<int>{200, 404}));
  EXPECT_EQ(paths.at("/a/{id}").at("patch").statuses, (std::set<int>{204}));
  EXPECT_EQ(paths.at("/a/{id}").size(), 2u);
  EXPECT_EQ(paths.at("/b").at("post").statuses, (std::set<int>{201}));
}

TEST(OpenApiReaderTest, ThrowsOnALayoutItDoesNotKnow) {
  const std::string head = "paths:\n  /a:\n";
  const std::vector<std::string> broken = {
      "",                                                       // no paths:
      "paths:\n",                                               // no path
      head + "   get:\n",                                       // 3 spaces
      head + "\tget:\n",                                        // a tab
      head + "    got:\n",                                      // not a method
      head + "    $ref: '#/components/pathItems/A'\n",          // a path item elsewhere
      head + "    get: {}\n",                                   // an inline operation
      head + "    get:\n    get:\n",                            // a method twice
      head + "  /a:\n",                                         // a path twice
      "paths:\n  a:\n",                                         // not a path
      "paths:\n  '/a':\n",                                      // a quoted path
      head + "    get:\n      responses: {}\n",                 // inline responses
      head + "    get:\n      responses:\n        default:\n",  // a default response
      head + "    get:\n      responses:\n        200:\n",      // an unquoted status
      head + "    get:\n      responses:\n        '200':\n        '200':\n",
      "paths:\n  /a:\n    get:\n      responses:\n        '200':\n" + std::string("paths:\n"),
  };
  for (const auto& text : broken) {
    EXPECT_THROW(read_paths(text), std::runtime_error) << text;
  }
}

}  // namespace
}  // namespace attempts::http
