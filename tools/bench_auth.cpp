// attempts-auth-bench: the cost of authenticating one request, per path. Build it with the
// release preset (no sanitizers) and run it on a quiet machine:
//
//   cmake --preset release && cmake --build --preset release --target attempts-auth-bench
//   build/release/tools/attempts-auth-bench [ITERATIONS]
//
// Prints, per signature algorithm, the mean time of TokenVerifier::verify() on a valid token,
// then the cache-hit path (the token's digest, TokenCache::Reader::find, and
// Authenticator::authenticate from the header value), with the heap allocations each performs
// (global operator new is counted).

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "attempts/auth/authenticator.hpp"
#include "attempts/auth/token_cache.hpp"
#include "attempts/auth/token_verifier.hpp"
#include "token/insecure_test_keys.hpp"
#include "token/token_tools.hpp"

namespace {

std::uint64_t allocations = 0;

}  // namespace

// Counting replacements: this binary alone, to show which paths allocate. GCC 12 takes the
// free() below for a mismatch with operator new once inlined (-Wmismatched-new-delete), though
// this operator new is malloc.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  ++allocations;
  if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
  throw std::bad_alloc();
}
void operator delete(void* memory) noexcept {
  std::free(memory);
}
void operator delete(void* memory, std::size_t) noexcept {
  std::free(memory);
}
#pragma GCC diagnostic pop

namespace {

using namespace attempts::auth;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::int64_t kNow = 1'700'000'000;

struct Measure {
  double nanoseconds_per_call;
  double allocations_per_call;
};

template <typename Call>
Measure measure(int iterations, Call&& call) {
  for (int i = 0; i < iterations / 10 + 1; ++i) call();  // warm up
  const std::uint64_t allocations_before = allocations;
  const auto start = Clock::now();
  for (int i = 0; i < iterations; ++i) call();
  const auto elapsed = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  return {elapsed / iterations, static_cast<double>(allocations - allocations_before) / iterations};
}

void report(const char* what, const Measure& result) {
  std::printf("%-46s %10.0f ns  %6.1f allocations\n", what, result.nanoseconds_per_call,
              result.allocations_per_call);
}

}  // namespace

int main(int argc, char* argv[]) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 20000;
  if (iterations <= 0) {
    std::fprintf(stderr, "usage: attempts-auth-bench [ITERATIONS]\n");
    return 2;
  }
  const json private_jwks = json::parse(tools::insecure_test_private_jwks());
  const tools::SigningKeys signing_keys = tools::signing_keys_from_jwks(private_jwks);
  json public_jwks = {{"keys", json::array()}};
  for (const auto& jwk : private_jwks["keys"])
    public_jwks["keys"].push_back(tools::public_jwk(jwk));
  auto parsed = KeySet::parse(public_jwks.dump(), KeyOrigin::file);
  const auto keys =
      std::make_shared<const KeySet>(std::move(std::get<LoadedKeySet>(parsed).key_set));
  const auto verifier = std::make_shared<const TokenVerifier>(keys, VerifierOptions{});
  const json claims = {{"sub", "123456"}, {"iat", kNow}, {"exp", kNow + 3600}};

  std::printf("attempts-auth-bench: %d iterations per line, mean per call\n", iterations);
  std::string token_for_cache;
  for (const char* kid : {"test-hs256", "test-rs256", "test-es256", "test-eddsa"}) {
    const std::string token = tools::sign_token(signing_keys.at(kid), {}, claims);
    if (!std::holds_alternative<VerifiedToken>(verifier->verify(token, kNow))) {
      std::fprintf(stderr, "attempts-auth-bench: the %s token does not verify\n", kid);
      return 1;
    }
    // Asymmetric verification is slower: fewer rounds keep the run short.
    const int rounds = std::string_view(kid) == "test-hs256" ? iterations : iterations / 4 + 1;
    const std::string label =
        std::string("verify ") + kid + " (" + std::to_string(token.size()) + " bytes)";
    report(label.c_str(), measure(rounds, [&] { return verifier->verify(token, kNow); }));
    token_for_cache = token;
  }

  TokenCache cache;
  auto& reader = cache.reader();
  const TokenDigest digest = reader.digest(token_for_cache);
  reader.insert(digest, {123456, kNow + 3600, 1}, kNow);
  report("TokenCache::Reader::digest (SipHash of the token)",
         measure(iterations * 10, [&] { return reader.digest(token_for_cache); }));
  report("TokenCache::Reader::find, hit (the same token)",
         measure(iterations * 10, [&] { return reader.find(digest, kNow); }));
  const TokenDigest other = reader.digest(std::string_view(token_for_cache).substr(1));
  report("TokenCache::Reader::find, miss",
         measure(iterations * 10, [&] { return reader.find(other, kNow); }));

  const Authenticator authenticator(verifier);
  const std::string header = "Bearer " + token_for_cache;
  authenticator.authenticate(header, reader, kNow);
  report("Authenticator::authenticate, cache hit", measure(iterations * 10, [&] {
           return authenticator.authenticate(header, reader, kNow);
         }));
  // A miss every time: each call parses, verifies (HS256) and inserts again.
  const std::string hs256_header =
      "Bearer " + tools::sign_token(signing_keys.at("test-hs256"), {}, claims);
  report("Authenticator::authenticate, miss (HS256)", measure(iterations, [&] {
           TokenCache empty({.capacity = 8});
           return authenticator.authenticate(hs256_header, empty.reader(), kNow);
         }));
  // The process cache full of 100,000 students' tokens: the lookup cost with a realistic table.
  TokenCache full_cache;
  auto& full = full_cache.reader();
  std::vector<TokenDigest> digests;
  for (int student = 1; student <= 100000; ++student) {
    const std::string token =
        tools::sign_token(signing_keys.at("test-hs256"), {},
                          {{"sub", std::to_string(student)}, {"exp", kNow + 3600}});
    digests.push_back(full.digest(token));
    full.insert(digests.back(), {student, kNow + 3600, 1}, kNow);
  }
  std::size_t next = 0;
  report("TokenCache::Reader::find among 100,000 entries", measure(iterations * 10, [&] {
           next = (next + 7919) % digests.size();
           return full.find(digests[next], kNow);
         }));
  return 0;
}
