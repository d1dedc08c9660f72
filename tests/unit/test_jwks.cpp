// KeySet: JWKS parsing (RFC 7517), the keys it keeps, skips with a warning, or refuses.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "attempts/auth/jwks.hpp"
#include "auth_test_support.hpp"

namespace attempts::auth {
namespace {

using test::json;
using test::jwks_of;
using test::public_jwk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A document as an operator's --jwks file holds it.
KeySetResult parse_file(std::string_view text) {
  return KeySet::parse(text, KeyOrigin::file);
}

const LoadedKeySet& loaded(const KeySetResult& result) {
  if (const auto* error = std::get_if<KeySetError>(&result)) {
    ADD_FAILURE() << "unexpected error: " << error->message;
    static const LoadedKeySet kEmpty =
        std::get<LoadedKeySet>(parse_file(jwks_of({public_jwk("test-hs256")}).dump()));
    return kEmpty;
  }
  return std::get<LoadedKeySet>(result);
}

std::string error_of(const KeySetResult& result) {
  if (const auto* error = std::get_if<KeySetError>(&result)) return error->message;
  ADD_FAILURE() << "parsed, but an error was expected";
  return {};
}

std::string error_of(const json& document) {
  return error_of(parse_file(document.dump()));
}

// A JWK changed by `edit`.
json edited(std::string_view kid, const std::function<void(json&)>& edit) {
  json jwk = public_jwk(kid);
  edit(jwk);
  return jwk;
}

TEST(KeySetTest, KeepsOneKeyPerSupportedTypeWithItsAlgorithm) {
  const auto result = parse_file(jwks_of({public_jwk("test-hs256"), public_jwk("test-rs256"),
                                          public_jwk("test-es256"), public_jwk("test-eddsa")})
                                     .dump());
  const LoadedKeySet& set = loaded(result);
  EXPECT_THAT(set.warnings, IsEmpty());
  ASSERT_EQ(set.key_set.keys().size(), 4u);
  const std::pair<const char*, Algorithm> expected[] = {{"test-hs256", Algorithm::hs256},
                                                        {"test-rs256", Algorithm::rs256},
                                                        {"test-es256", Algorithm::es256},
                                                        {"test-eddsa", Algorithm::eddsa}};
  for (const auto& [kid, algorithm] : expected) {
    const VerificationKey* key = set.key_set.find(kid);
    ASSERT_NE(key, nullptr) << kid;
    EXPECT_EQ(key->algorithm, algorithm) << kid;
    EXPECT_EQ(key->public_key == nullptr, algorithm == Algorithm::hs256) << kid;
    EXPECT_EQ(key->hmac_secret.size(), algorithm == Algorithm::hs256 ? 32u : 0u) << kid;
  }
  EXPECT_EQ(set.key_set.find("test-hs257"), nullptr);
}

TEST(KeySetTest, MinimalKeysWithoutKidAlgOrUseAreAccepted) {
  json jwk = public_jwk("test-es256");
  for (const char* member : {"kid", "alg", "use"}) jwk.erase(member);
  const auto result = parse_file(jwks_of({jwk}).dump());
  const LoadedKeySet& set = loaded(result);
  ASSERT_EQ(set.key_set.keys().size(), 1u);
  EXPECT_FALSE(set.key_set.keys()[0].kid.has_value());
  EXPECT_EQ(set.key_set.keys()[0].algorithm, Algorithm::es256);
}

TEST(KeySetTest, AlgorithmNamesRoundTrip) {
  for (const auto algorithm :
       {Algorithm::hs256, Algorithm::rs256, Algorithm::es256, Algorithm::eddsa}) {
    EXPECT_EQ(algorithm_from_name(algorithm_name(algorithm)), algorithm);
  }
  EXPECT_EQ(algorithm_name(Algorithm::eddsa), "EdDSA");
  EXPECT_EQ(algorithm_from_name("none"), std::nullopt);
  EXPECT_EQ(algorithm_from_name("hs256"), std::nullopt);
}

// ---- Skipped, with a warning -------------------------------------------------------------------

TEST(KeySetTest, KeysForOtherPurposesOrTypesAreSkippedWithAWarning) {
  const json document = jwks_of({
      public_jwk("test-hs256"),
      edited("test-rs256", [](json& jwk) { jwk["use"] = "enc"; }),
      edited("test-es256", [](json& jwk) { jwk["key_ops"] = {"sign"}; }),
      {{"kty", "EC"}, {"crv", "P-384"}, {"kid", "p384"}, {"x", "AA"}, {"y", "AA"}},
      {{"kty", "OKP"}, {"crv", "X25519"}, {"x", "AA"}},
      {{"kty", "foo"}, {"kid", "mystery"}},
      edited("test-rs256",
             [](json& jwk) {
               jwk["alg"] = "RS512";
               jwk["kid"] = "rs512";
             }),
  });
  const auto result = parse_file(document.dump());
  const LoadedKeySet& set = loaded(result);
  ASSERT_EQ(set.key_set.keys().size(), 1u);
  EXPECT_EQ(set.key_set.keys()[0].kid, "test-hs256");
  EXPECT_THAT(set.warnings,
              ElementsAre(HasSubstr("keys[1] (kid \"test-rs256\") skipped: \"use\" is \"enc\""),
                          HasSubstr("keys[2] (kid \"test-es256\") skipped: \"key_ops\""),
                          HasSubstr("keys[3] (kid \"p384\") skipped: kty \"EC\" curve \"P-384\""),
                          HasSubstr("keys[4] skipped: kty \"OKP\" curve \"X25519\""),
                          HasSubstr("keys[5] (kid \"mystery\") skipped: kty \"foo\""),
                          HasSubstr("keys[6] (kid \"rs512\") skipped: \"alg\" \"RS512\"")));
}

TEST(KeySetTest, KeyOpsWithVerifyAndUseSigAreKept) {
  const json jwk = edited("test-eddsa", [](json& key) {
    key["key_ops"] = {"sign", "verify"};
    key["use"] = "sig";
  });
  EXPECT_EQ(loaded(parse_file(jwks_of({jwk}).dump())).key_set.keys().size(), 1u);
}

TEST(KeySetTest, OnlySkippedKeysIsAnError) {
  const std::string message = error_of(jwks_of({
      edited("test-rs256", [](json& jwk) { jwk["use"] = "enc"; }),
      {{"kty", "foo"}},
  }));
  EXPECT_THAT(message, HasSubstr("no usable signature verification key"));
  EXPECT_THAT(message, HasSubstr("keys[0] (kid \"test-rs256\") skipped"));
  EXPECT_THAT(message, HasSubstr("keys[1] skipped: kty \"foo\""));
  EXPECT_THAT(error_of(jwks_of({})), HasSubstr("no usable signature verification key"));
}

// ---- Refused documents -------------------------------------------------------------------------

TEST(KeySetTest, MalformedJsonIsAnError) {
  EXPECT_THAT(error_of(parse_file(R"({"keys": [)")), HasSubstr("JWKS is not valid JSON"));
  EXPECT_THAT(error_of(parse_file("")), HasSubstr("JWKS is not valid JSON"));
  EXPECT_THAT(error_of(parse_file(R"({"keys": []} x)")), HasSubstr("JWKS is not valid JSON"));
  const std::string valid = jwks_of({public_jwk("test-hs256")}).dump();
  EXPECT_EQ(error_of(parse_file(valid + '\0' + "junk")), "JWKS contains a NUL byte");
}

TEST(KeySetTest, DocumentWithoutKeysArrayIsAnError) {
  for (const char* text : {"[]", "{}", R"({"keys": {}})", R"({"keys": "x"})", "null"}) {
    EXPECT_THAT(error_of(parse_file(text)), HasSubstr("a JSON object with a \"keys\" array"))
        << text;
  }
}

TEST(KeySetTest, MalformedMembersAreErrors) {
  const struct {
    json jwk;
    const char* message;
  } cases[] = {
      {json("oct"), "keys[0]: is not a JSON object"},
      {{{"k", "AA"}}, "\"kty\" is missing"},
      {{{"kty", 1}}, "\"kty\" is not a string"},
      {edited("test-hs256", [](json& jwk) { jwk["kid"] = 5; }), "\"kid\" is not a string"},
      {edited("test-hs256", [](json& jwk) { jwk["kid"] = ""; }), "\"kid\" is empty"},
      {edited("test-hs256", [](json& jwk) { jwk["use"] = true; }), "\"use\" is not a string"},
      {edited("test-hs256", [](json& jwk) { jwk["key_ops"] = "verify"; }), "\"key_ops\" is not"},
      {edited("test-hs256", [](json& jwk) { jwk.erase("k"); }), "\"k\" is missing"},
      {edited("test-hs256", [](json& jwk) { jwk["k"] = jwk["k"].get<std::string>() + "="; }),
       "\"k\" is not unpadded base64url"},
      {edited("test-rs256", [](json& jwk) { jwk.erase("e"); }), "\"e\" is missing"},
      {edited("test-es256", [](json& jwk) { jwk.erase("crv"); }), "\"crv\" is missing"},
      {edited("test-es256", [](json& jwk) { jwk["x"] = "AAAA"; }),
       "coordinates \"x\" and \"y\" must be 32 bytes"},
      {edited("test-eddsa", [](json& jwk) { jwk["x"] = "AAAA"; }),
       "Ed25519 \"x\" must be 32 bytes"},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(error_of(jwks_of({c.jwk})), HasSubstr(c.message)) << c.jwk.dump();
  }
}

TEST(KeySetTest, ShortHmacSecretIsAnError) {
  const json short_secret = {
      {"kty", "oct"}, {"kid", "short"}, {"k", base64url_encode(std::string(31, 's'))}};
  EXPECT_EQ(error_of(jwks_of({short_secret})),
            "JWKS keys[0] (kid \"short\"): HS256 secret \"k\" is 31 bytes; at least 32 are "
            "required");
  const json enough = {{"kty", "oct"}, {"k", base64url_encode(std::string(32, 's'))}};
  EXPECT_EQ(loaded(parse_file(jwks_of({enough}).dump())).key_set.keys().size(), 1u);
}

TEST(KeySetTest, SmallRsaModulusIsAnError) {
  const json small =
      tools::public_jwk(tools::generate_private_jwk(Algorithm::rs256, "rsa-1024", 1024));
  EXPECT_EQ(error_of(jwks_of({public_jwk("test-hs256"), small})),
            "JWKS keys[1] (kid \"rsa-1024\"): RSA modulus is 1024 bits; at least 2048 are "
            "required");
}

TEST(KeySetTest, EcPointNotOnTheCurveIsAnError) {
  const json off_curve = edited("test-es256", [](json& jwk) {
    std::string y = base64url_decode(jwk["y"].get<std::string>()).value();
    y.back() = static_cast<char>(y.back() ^ 0x01);
    jwk["y"] = base64url_encode(y);
  });
  EXPECT_THAT(error_of(jwks_of({off_curve})), HasSubstr("not on the curve"));
  // The point at infinity has no affine encoding; all zeros is not on P-256 either.
  const json zeros = edited("test-es256", [](json& jwk) {
    jwk["x"] = base64url_encode(std::string(32, '\0'));
    jwk["y"] = base64url_encode(std::string(32, '\0'));
  });
  EXPECT_THAT(error_of(jwks_of({zeros})), HasSubstr("not on the curve"));
}

TEST(KeySetTest, AlgContradictingTheKeyTypeIsAnError) {
  const struct {
    const char* kid;
    const char* alg;
  } cases[] = {{"test-rs256", "ES256"},
               {"test-hs256", "RS256"},
               {"test-es256", "EdDSA"},
               {"test-eddsa", "HS256"}};
  for (const auto& c : cases) {
    const json jwk = edited(c.kid, [&](json& key) { key["alg"] = c.alg; });
    EXPECT_THAT(error_of(jwks_of({jwk})),
                HasSubstr(std::string("\"alg\" is \"") + c.alg + "\" but a kty"))
        << c.kid;
  }
}

TEST(KeySetTest, PrivateMembersInAnAsymmetricKeyAreAnError) {
  const json private_rsa = json::parse(tools::insecure_test_private_jwks())["keys"][1];
  ASSERT_EQ(private_rsa["kty"], "RSA");
  EXPECT_THAT(error_of(jwks_of({private_rsa})), HasSubstr("private key member \"d\""));
}

TEST(KeySetTest, DuplicateKidIsAnError) {
  const json second = edited("test-es256", [](json& jwk) { jwk["kid"] = "test-hs256"; });
  EXPECT_EQ(error_of(jwks_of({public_jwk("test-hs256"), public_jwk("test-rs256"), second})),
            "JWKS keys[2] (kid \"test-hs256\"): kid is already used by keys[0]");
  // A skipped key does not count: two different kinds of key may share a kid.
  const json encryption = edited("test-rs256", [](json& jwk) {
    jwk["use"] = "enc";
    jwk["kid"] = "test-hs256";
  });
  EXPECT_EQ(loaded(parse_file(jwks_of({public_jwk("test-hs256"), encryption}).dump()))
                .key_set.keys()
                .size(),
            1u);
}

// ---- Fetched documents (KeyOrigin::remote) -----------------------------------------------------

TEST(KeySetTest, AFetchedDocumentMayNotCarryHs256Secrets) {
  // A JWKS endpoint is public: a secret published there signs anyone's token.
  const auto result = KeySet::parse(
      jwks_of({public_jwk("test-hs256"), public_jwk("test-rs256")}).dump(), KeyOrigin::remote);
  const LoadedKeySet& set = loaded(result);
  ASSERT_EQ(set.key_set.keys().size(), 1u);
  EXPECT_EQ(set.key_set.keys()[0].kid, "test-rs256");
  EXPECT_EQ(set.key_set.find("test-hs256"), nullptr);
  EXPECT_THAT(set.refused, ElementsAre(HasSubstr("keys[0] (kid \"test-hs256\"): an HS256 secret "
                                                 "(kty \"oct\") in a fetched JWKS is public")));
  // The same key in an operator's file is fine.
  EXPECT_EQ(loaded(parse_file(jwks_of({public_jwk("test-hs256")}).dump())).key_set.keys().size(),
            1u);
}

TEST(KeySetTest, InAFetchedDocumentABadKeyIsRefusedAloneAndTheOthersAreUsed) {
  const json small =
      tools::public_jwk(tools::generate_private_jwk(Algorithm::rs256, "rsa-1024", 1024));
  const json repeated = edited("test-eddsa", [](json& jwk) { jwk["kid"] = "test-rs256"; });
  const json private_rsa = json::parse(tools::insecure_test_private_jwks())["keys"][1];
  const json encryption = edited("test-es256", [](json& jwk) { jwk["use"] = "enc"; });
  const json document = jwks_of({small, public_jwk("test-rs256"), repeated, private_rsa, encryption,
                                 public_jwk("test-es256")});
  // In a file, the first of them refuses the whole document.
  EXPECT_THAT(error_of(document), HasSubstr("RSA modulus is 1024 bits"));

  const auto result = KeySet::parse(document.dump(), KeyOrigin::remote);
  const LoadedKeySet& set = loaded(result);
  ASSERT_EQ(set.key_set.keys().size(), 2u);
  EXPECT_EQ(set.key_set.keys()[0].kid, "test-rs256");
  EXPECT_EQ(set.key_set.keys()[0].algorithm, Algorithm::rs256);  // the first with that kid
  EXPECT_EQ(set.key_set.keys()[1].kid, "test-es256");
  EXPECT_THAT(set.refused,
              ElementsAre(HasSubstr("keys[0] (kid \"rsa-1024\"): RSA modulus is 1024 bits"),
                          HasSubstr("keys[2] (kid \"test-rs256\"): kid is already used by keys[1]"),
                          HasSubstr("keys[3] (kid \"test-rs256\"): has the private key member")));
  // A key not meant for verifying is skipped, as from a file: not a refusal.
  EXPECT_THAT(set.warnings, ElementsAre(HasSubstr("keys[4] (kid \"test-es256\") skipped")));
}

TEST(KeySetTest, AFetchedDocumentWithNoUsableKeyIsAnErrorThatCountsTheRefused) {
  const json small =
      tools::public_jwk(tools::generate_private_jwk(Algorithm::rs256, "rsa-1024", 1024));
  const auto result =
      KeySet::parse(jwks_of({public_jwk("test-hs256"), small}).dump(), KeyOrigin::remote);
  ASSERT_TRUE(std::holds_alternative<KeySetError>(result));
  const auto& error = std::get<KeySetError>(result);
  EXPECT_EQ(error.refused_keys, 2u);
  EXPECT_THAT(error.message, HasSubstr("no usable signature verification key"));
  EXPECT_THAT(error.message, HasSubstr("RSA modulus is 1024 bits"));
}

// ---- Files -------------------------------------------------------------------------------------

TEST(KeySetTest, LoadsAFileAndNamesItInErrors) {
  char path[] = "/tmp/attempts-jwks-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream file(path);
    file << jwks_of({public_jwk("test-eddsa")}).dump(2);
  }
  EXPECT_EQ(loaded(KeySet::load_file(path)).key_set.keys().size(), 1u);
  {
    std::ofstream file(path);
    file << "{";
  }
  EXPECT_THAT(error_of(KeySet::load_file(path)), HasSubstr(std::string(path) + "\": JWKS is not"));
  std::remove(path);
  EXPECT_THAT(error_of(KeySet::load_file(path)),
              HasSubstr(std::string("cannot open JWKS file \"") + path + "\""));
}

TEST(KeySetTest, GeneratedDevKeysVerifyTheirOwnTokens) {
  const tools::DevKeys keys = tools::generate_dev_keys();
  for (const auto& jwk : keys.public_jwks["keys"]) {
    for (const char* member : {"d", "p", "q", "dp", "dq", "qi"}) {
      EXPECT_FALSE(jwk.contains(member)) << jwk["kid"] << " has " << member;
    }
  }
  const auto key_set = test::key_set_of(keys.public_jwks);
  const TokenVerifier verifier(key_set, {});
  const tools::SigningKeys signing = tools::signing_keys_from_jwks(keys.private_jwks);
  ASSERT_EQ(signing.size(), 4u);
  for (const char* kid : {"dev-hs256", "dev-rs256", "dev-es256", "dev-eddsa"}) {
    const std::string token = tools::sign_token(signing.at(kid), {}, test::claims_for(9));
    EXPECT_EQ(verifier.verify(token, test::kNow),
              VerifyResult(
                  VerifiedToken{9, test::kExpiry, key_set->find(kid)->fingerprint, std::nullopt}))
        << kid;
  }
  EXPECT_EQ(tools::sign(signing.at("dev-es256"), "input").size(), 64u);
}

}  // namespace
}  // namespace attempts::auth
