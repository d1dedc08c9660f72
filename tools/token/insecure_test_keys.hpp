#pragma once

#include <string_view>

namespace attempts::auth::tools {

// A private JWKS with one key per algorithm, kids test-hs256, test-rs256, test-es256 and
// test-eddsa, fixed so that unit tests, fuzz seeds and benchmarks can use tokens made once.
// Published in the repository, hence worthless as secrets: never give them to a real server.
std::string_view insecure_test_private_jwks();

}  // namespace attempts::auth::tools
