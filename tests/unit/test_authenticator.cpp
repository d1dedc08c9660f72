// Authenticator: the Authorization header, the cache in front of the verifier, key rotation,
// rejection counters and the WWW-Authenticate value.

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "attempts/auth/authenticator.hpp"
#include "auth_test_support.hpp"

namespace attempts::auth {
namespace {

using test::claims_for;
using test::json;
using test::kNow;
using test::make_token;

std::shared_ptr<const TokenVerifier> verifier_for(std::shared_ptr<const KeySet> keys,
                                                  VerifierOptions options = {}) {
  return std::make_shared<const TokenVerifier>(std::move(keys), std::move(options));
}

AuthResult student(std::int64_t id) {
  return id;
}
AuthResult failure(TokenError reason) {
  return AuthFailure{reason};
}

// ---- The Authorization header ------------------------------------------------------------------

using BearerResult = std::variant<std::string_view, TokenError>;

TEST(BearerTokenTest, MissingOrOtherSchemeIsMissing) {
  for (const char* value : {"", "Basic dXNlcjpwYXNz", "Basic", "Digest username=\"x\"",
                            "Bearerx abc", "Bear abc", "Token abc", " Bearer abc"}) {
    EXPECT_EQ(bearer_token(value), BearerResult(TokenError::missing)) << "'" << value << "'";
  }
}

TEST(BearerTokenTest, SchemeIsCaseInsensitive) {
  for (const char* value :
       {"Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER abc.def.ghi", "bEaReR abc.def.ghi"}) {
    EXPECT_EQ(bearer_token(value), BearerResult(std::string_view("abc.def.ghi"))) << value;
  }
}

TEST(BearerTokenTest, Token68CharactersAndTrailingEqualsAreAccepted) {
  EXPECT_EQ(bearer_token("Bearer aZ09-._~+/=="), BearerResult(std::string_view("aZ09-._~+/==")));
}

TEST(BearerTokenTest, AnythingButOneSpaceAndOneToken68IsMalformed) {
  for (const char* value :
       {"Bearer", "Bearer ", "Bearer  abc", "Bearer abc ", "Bearer abc def", "Bearer abc,def",
        "Bearer a=b", "Bearer =abc", "Bearer abc\t", "Bearer \"abc\"", "Bearer abc\r\n",
        "Bearer ab%63", "bearer  abc.def.ghi"}) {
    EXPECT_EQ(bearer_token(value), BearerResult(TokenError::malformed)) << "'" << value << "'";
  }
}

// ---- Authentication ----------------------------------------------------------------------------

TEST(AuthenticatorTest, ValidBearerTokenGivesTheStudentAndIsCached) {
  const Authenticator authenticator(verifier_for(test::test_key_set()));
  TokenCache cache({.capacity = 64});
  const std::string header = "Bearer " + make_token("test-rs256", {}, claims_for(77));
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), kNow), student(77));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), kNow + 1), student(77));
  EXPECT_EQ(cache.hits(), 1u);
}

TEST(AuthenticatorTest, CachedTokenStillExpiresAtItsLeewayBoundary) {
  const Authenticator authenticator(verifier_for(test::test_key_set()));
  TokenCache cache({.capacity = 64});
  const std::string header = "Bearer " + make_token("test-hs256");
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), kNow), student(42));
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), test::kExpiry + 30), student(42));
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), test::kExpiry + 31),
            failure(TokenError::expired));
}

TEST(AuthenticatorTest, RejectionsAreNotCachedAndAreCountedByReason) {
  const Authenticator authenticator(verifier_for(test::test_key_set()));
  TokenCache cache({.capacity = 64});
  auto& tokens = cache.reader();
  EXPECT_EQ(authenticator.authenticate("", tokens, kNow), failure(TokenError::missing));
  EXPECT_EQ(authenticator.authenticate("Basic abc", tokens, kNow), failure(TokenError::missing));
  EXPECT_EQ(authenticator.authenticate("Bearer  x", tokens, kNow), failure(TokenError::malformed));
  const std::string expired = "Bearer " + make_token("test-eddsa");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(authenticator.authenticate(expired, tokens, test::kExpiry + 3600),
              failure(TokenError::expired));
  }
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(authenticator.rejections(TokenError::missing), 2u);
  EXPECT_EQ(authenticator.rejections(TokenError::malformed), 1u);
  EXPECT_EQ(authenticator.rejections(TokenError::expired), 3u);
  EXPECT_EQ(authenticator.rejections(TokenError::bad_signature), 0u);
}

TEST(AuthenticatorTest, WithoutKeysItIsNotReadyAndTheFirstVerifierMakesItReady) {
  Authenticator authenticator;
  EXPECT_FALSE(authenticator.ready());
  TokenCache cache({.capacity = 64});
  const std::string header = "Bearer " + make_token("test-hs256");
  // Safe if asked anyway: nothing verifies, nothing is cached.
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), kNow),
            failure(TokenError::unknown_key));
  EXPECT_EQ(cache.size(), 0u);
  authenticator.replace(verifier_for(test::test_key_set()));
  EXPECT_TRUE(authenticator.ready());
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), kNow), student(42));
}

TEST(AuthenticatorTest, AMissingOrChangedKeyAsksTheHookAndNothingElseDoes) {
  Authenticator authenticator(verifier_for(test::test_key_set()));
  std::vector<TokenError> asked;
  authenticator.on_key_miss([&asked](TokenError reason) {
    asked.push_back(reason);
    return std::chrono::seconds(3);
  });
  TokenCache cache({.capacity = 64});
  auto& tokens = cache.reader();
  // A kid the keys do not have: the provider rotated in a new one. The 401 says when to retry.
  const auto unknown = "Bearer " + make_token("test-hs256", {{"kid", "rotated-in"}});
  EXPECT_EQ(authenticator.authenticate(unknown, tokens, kNow),
            AuthResult(AuthFailure{TokenError::unknown_key, std::chrono::seconds(3)}));
  // A kid the keys have, whose key does not verify the token: the provider may have rotated
  // under the same kid.
  const auto same_kid = tools::sign_token(
      tools::signing_key_from_jwk(tools::generate_private_jwk(Algorithm::rs256, "test-rs256")),
      json::object(), claims_for(42));
  EXPECT_EQ(authenticator.authenticate("Bearer " + same_kid, tokens, kNow),
            AuthResult(AuthFailure{TokenError::bad_signature, std::chrono::seconds(3)}));
  // No kid, and the one key of its algorithm does not verify it: a provider without kids that
  // rotated.
  const auto no_kid = tools::sign_token(
      tools::signing_key_from_jwk(tools::generate_private_jwk(Algorithm::es256, "other")),
      {{"kid", nullptr}}, claims_for(42));
  EXPECT_EQ(authenticator.authenticate("Bearer " + no_kid, tokens, kNow),
            AuthResult(AuthFailure{TokenError::bad_signature, std::chrono::seconds(3)}));
  EXPECT_EQ(asked, (std::vector{TokenError::unknown_key, TokenError::bad_signature,
                                TokenError::bad_signature}));
  // Other rejections and successes are none of a key source's business.
  asked.clear();
  EXPECT_EQ(authenticator.authenticate("Bearer abc", tokens, kNow), failure(TokenError::malformed));
  EXPECT_EQ(authenticator.authenticate("Bearer " + make_token("test-eddsa"), tokens,
                                       test::kExpiry + 3600),
            failure(TokenError::expired));
  EXPECT_EQ(authenticator.authenticate("Bearer " + make_token("test-rs256"), tokens, kNow),
            student(42));
  EXPECT_TRUE(asked.empty());
}

TEST(AuthenticatorTest, WithoutAHookAMissingKeyIsAPlain401) {
  const Authenticator authenticator(verifier_for(test::test_key_set()));
  TokenCache cache({.capacity = 64});
  const auto unknown = "Bearer " + make_token("test-hs256", {{"kid", "rotated-in"}});
  EXPECT_EQ(authenticator.authenticate(unknown, cache.reader(), kNow),
            failure(TokenError::unknown_key));
}

TEST(AuthenticatorTest, ATokenTooLongToVerifyIsNotHashed) {
  VerifierOptions options;
  options.max_token_bytes = 64;
  const Authenticator authenticator(verifier_for(test::test_key_set(), options));
  TokenCache cache({.capacity = 64});
  EXPECT_EQ(authenticator.authenticate("Bearer " + std::string(65, 'a'), cache.reader(), kNow),
            failure(TokenError::too_large));
  EXPECT_EQ(cache.misses(), 0u) << "looked up";
}

TEST(AuthenticatorTest, AKeyThatLeavesTheSetTakesItsCachedTokensAndTheOthersStay) {
  // Key rotation: test-hs256 is removed. A token it signed, already cached, must stop working;
  // the tokens of the keys that stay keep their entries (no signature checked again).
  Authenticator authenticator(verifier_for(test::test_key_set()));
  TokenCache cache({.capacity = 64});
  auto& tokens = cache.reader();
  const std::string old_key_token = "Bearer " + make_token("test-hs256");
  const std::string kept_key_token = "Bearer " + make_token("test-es256", {}, claims_for(5));
  EXPECT_EQ(authenticator.authenticate(old_key_token, tokens, kNow), student(42));
  EXPECT_EQ(authenticator.authenticate(kept_key_token, tokens, kNow), student(5));
  EXPECT_EQ(cache.size(), 2u);

  // The new file lists the kept key again (a fresh copy of the same key: same fingerprint).
  authenticator.replace(verifier_for(test::key_set_of(
      test::jwks_of({test::public_jwk("test-rs256"), test::public_jwk("test-es256")}))));
  EXPECT_EQ(authenticator.authenticate(old_key_token, tokens, kNow),
            failure(TokenError::unknown_key));
  const auto hits = cache.hits();
  EXPECT_EQ(authenticator.authenticate(kept_key_token, tokens, kNow), student(5));
  EXPECT_EQ(cache.hits(), hits + 1) << "the kept key's token was verified again";
}

TEST(AuthenticatorTest, AKeyWithTheSameKidButOtherMaterialIsAnotherKey) {
  Authenticator authenticator(verifier_for(test::test_key_set()));
  TokenCache cache({.capacity = 64});
  const std::string token = "Bearer " + make_token("test-rs256");
  EXPECT_EQ(authenticator.authenticate(token, cache.reader(), kNow), student(42));
  // kid test-rs256 now names the EdDSA key's material: not the key that verified the token.
  auto renamed = test::public_jwk("test-eddsa");
  renamed["kid"] = "test-rs256";
  authenticator.replace(verifier_for(test::key_set_of(test::jwks_of({renamed}))));
  EXPECT_EQ(authenticator.authenticate(token, cache.reader(), kNow),
            failure(TokenError::algorithm_mismatch));
}

TEST(AuthenticatorTest, ReplacingTheOptionsAppliesToCachedTokensToo) {
  Authenticator authenticator(verifier_for(test::test_key_set()));
  TokenCache cache({.capacity = 64});
  const std::string header = "Bearer " + make_token("test-hs256");
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), kNow), student(42));
  VerifierOptions options;
  options.audience = "attempts";
  authenticator.replace(verifier_for(test::test_key_set(), options));
  EXPECT_EQ(authenticator.authenticate(header, cache.reader(), kNow),
            failure(TokenError::wrong_audience));
}

TEST(AuthenticatorTest, NeedsAVerifier) {
  EXPECT_THROW(Authenticator(nullptr), std::invalid_argument);
  Authenticator authenticator(verifier_for(test::test_key_set()));
  EXPECT_THROW(authenticator.replace(nullptr), std::invalid_argument);
}

TEST(AuthenticatorTest, ConcurrentAuthenticationsDuringReplacements) {
  Authenticator authenticator(verifier_for(test::test_key_set()));
  const std::string header = "Bearer " + make_token("test-es256");
  std::atomic<bool> stop{false};
  std::atomic<int> accepted{0};
  std::atomic<int> rejected{0};
  std::vector<std::thread> threads;
  TokenCache cache({.capacity = 64, .readers = 3});  // one for the process, as the server has
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      auto& tokens = cache.reader(static_cast<std::size_t>(t));
      while (!stop.load()) {
        if (authenticator.authenticate(header, tokens, kNow) == student(42)) {
          ++accepted;
        } else {
          ++rejected;
        }
      }
    });
  }
  // Each replacement waits for more authentications, so that they interleave.
  const auto wait_for_more = [&] {
    const int seen = accepted.load();
    while (accepted.load() < seen + 3) std::this_thread::yield();
  };
  for (int i = 0; i < 50; ++i) {
    wait_for_more();
    authenticator.replace(verifier_for(test::test_key_set()));
  }
  wait_for_more();
  stop = true;
  for (auto& thread : threads) thread.join();
  EXPECT_GE(accepted.load(), 150);
  EXPECT_EQ(rejected.load(), 0);
}

// ---- WWW-Authenticate --------------------------------------------------------------------------

TEST(WwwAuthenticateTest, MissingCredentialsGetTheBareChallenge) {
  EXPECT_EQ(www_authenticate(TokenError::missing), "Bearer");
  EXPECT_EQ(www_authenticate(TokenError::missing, "attempts"), "Bearer realm=\"attempts\"");
}

TEST(WwwAuthenticateTest, RejectedTokensGetInvalidTokenAndTheDescription) {
  EXPECT_EQ(www_authenticate(TokenError::expired),
            "Bearer error=\"invalid_token\", error_description=\"The token has expired\"");
  EXPECT_EQ(www_authenticate(TokenError::algorithm_mismatch, "attempts"),
            "Bearer realm=\"attempts\", error=\"invalid_token\", "
            "error_description=\"The token algorithm does not match its key\"");
  EXPECT_EQ(www_authenticate(TokenError::malformed),
            "Bearer error=\"invalid_token\", error_description=\"The token is malformed\"");
}

TEST(WwwAuthenticateTest, RealmIsEscaped) {
  EXPECT_EQ(www_authenticate(TokenError::missing, R"(a"b\c)"), R"(Bearer realm="a\"b\\c")");
}

}  // namespace
}  // namespace attempts::auth
