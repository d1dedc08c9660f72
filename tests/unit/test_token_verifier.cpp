// TokenVerifier: a valid token of each algorithm, then every rejection rule with its own reason,
// in the order verify() applies them; RFC 7515 and RFC 8037 example signatures as known answers.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <atomic>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "attempts/auth/token_verifier.hpp"
#include "auth_test_support.hpp"

namespace attempts::auth {
namespace {

using namespace std::chrono_literals;
using test::claims_for;
using test::json;
using test::kExpiry;
using test::kNow;
using test::make_token;
using test::raw_token;
using test::signing_key;

// What the token says; which key verified it is checked on its own (VerifiedKeyTest).
VerifyResult without_key(VerifyResult result) {
  if (auto* verified = std::get_if<VerifiedToken>(&result)) verified->key = 0;
  return result;
}

VerifyResult verify(std::string_view token, const VerifierOptions& options = {},
                    std::int64_t now = kNow,
                    std::shared_ptr<const KeySet> keys = test::test_key_set()) {
  const TokenVerifier verifier(std::move(keys), options);
  return without_key(verifier.verify(token, now));
}

VerifyResult accepted(std::int64_t student_id, std::int64_t expires_at = kExpiry) {
  return VerifiedToken{student_id, expires_at, 0, std::nullopt};
}

VerifyResult rejected(TokenError error) {
  return error;
}

// The token with one of its three parts replaced.
std::string with_part(const std::string& token, int index, const std::string& part) {
  const std::size_t first = token.find('.');
  const std::size_t second = token.find('.', first + 1);
  std::string parts[3] = {token.substr(0, first), token.substr(first + 1, second - first - 1),
                          token.substr(second + 1)};
  parts[index] = part;
  return parts[0] + "." + parts[1] + "." + parts[2];
}

std::string part(const std::string& token, int index) {
  const std::size_t first = token.find('.');
  const std::size_t second = token.find('.', first + 1);
  if (index == 0) return token.substr(0, first);
  if (index == 1) return token.substr(first + 1, second - first - 1);
  return token.substr(second + 1);
}

std::string decoded_part(const std::string& token, int index) {
  return base64url_decode(part(token, index)).value();
}

// ---- Valid tokens, and tampering, for each algorithm -------------------------------------------

struct AlgorithmCase {
  const char* kid;
  Algorithm algorithm;
};

void PrintTo(const AlgorithmCase& test_case, std::ostream* out) {
  *out << test_case.kid;
}

class EachAlgorithmTest : public testing::TestWithParam<AlgorithmCase> {
 protected:
  std::string token(const json& header = json::object(), const json& claims = claims_for(42)) {
    return make_token(GetParam().kid, header, claims);
  }
};

TEST_P(EachAlgorithmTest, ValidTokenWithKidIsAccepted) {
  const std::string valid = token();
  EXPECT_EQ(json::parse(decoded_part(valid, 0))["kid"], GetParam().kid);
  EXPECT_EQ(verify(valid), accepted(42));
}

TEST_P(EachAlgorithmTest, ValidTokenWithoutKidIsAcceptedByItsAlgorithm) {
  const std::string valid = token({{"kid", nullptr}});
  EXPECT_FALSE(json::parse(decoded_part(valid, 0)).contains("kid"));
  EXPECT_EQ(verify(valid), accepted(42));
}

TEST_P(EachAlgorithmTest, HeaderAlgorithmIsTheKeys) {
  EXPECT_EQ(json::parse(decoded_part(token(), 0))["alg"], algorithm_name(GetParam().algorithm));
}

TEST_P(EachAlgorithmTest, TamperedHeaderIsRejected) {
  const std::string valid = token();
  json header = json::parse(decoded_part(valid, 0));
  header["typ"] = "at+jwt";
  EXPECT_EQ(verify(with_part(valid, 0, base64url_encode(header.dump()))),
            rejected(TokenError::bad_signature));
}

TEST_P(EachAlgorithmTest, TamperedPayloadIsRejected) {
  const std::string valid = token();
  const std::string other_student = base64url_encode(claims_for(43).dump());
  EXPECT_EQ(verify(with_part(valid, 1, other_student)), rejected(TokenError::bad_signature));
}

TEST_P(EachAlgorithmTest, PayloadOfAnotherValidTokenIsRejected) {
  const std::string mine = token();
  const std::string theirs = token(json::object(), claims_for(7));
  EXPECT_EQ(verify(with_part(mine, 1, part(theirs, 1))), rejected(TokenError::bad_signature));
}

TEST_P(EachAlgorithmTest, TamperedSignatureIsRejected) {
  const std::string valid = token();
  for (const std::size_t byte : {std::size_t{0}, std::size_t{17}}) {
    std::string signature = decoded_part(valid, 2);
    signature[byte] = static_cast<char>(signature[byte] ^ 0x01);
    EXPECT_EQ(verify(with_part(valid, 2, base64url_encode(signature))),
              rejected(TokenError::bad_signature))
        << "byte " << byte;
  }
}

TEST_P(EachAlgorithmTest, TruncatedOrExtendedSignatureIsRejected) {
  const std::string valid = token();
  const std::string signature = decoded_part(valid, 2);
  EXPECT_EQ(verify(with_part(valid, 2, base64url_encode(signature.substr(1)))),
            rejected(TokenError::bad_signature));
  EXPECT_EQ(verify(with_part(valid, 2, base64url_encode(signature + '\0'))),
            rejected(TokenError::bad_signature));
}

TEST_P(EachAlgorithmTest, RejectionLeavesNoOpenSslErrorBehind) {
  ERR_clear_error();
  const std::string valid = token();
  std::string signature = decoded_part(valid, 2);
  signature[3] = static_cast<char>(signature[3] ^ 0x40);
  EXPECT_EQ(verify(with_part(valid, 2, base64url_encode(signature))),
            rejected(TokenError::bad_signature));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Jws, EachAlgorithmTest,
                         testing::Values(AlgorithmCase{"test-hs256", Algorithm::hs256},
                                         AlgorithmCase{"test-rs256", Algorithm::rs256},
                                         AlgorithmCase{"test-es256", Algorithm::es256},
                                         AlgorithmCase{"test-eddsa", Algorithm::eddsa}),
                         [](const testing::TestParamInfo<AlgorithmCase>& test) {
                           return std::string(algorithm_name(test.param.algorithm));
                         });

// ---- RFC examples: the signature holds, so verify() gets as far as the claims -------------------

constexpr const char* kRfc7515Payload =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl"
    "fQ";
constexpr std::int64_t kRfc7515Now = 1300819380;  // the example's exp

// The RFC 7515 payload has no sub: bad_subject says every earlier check passed, the signature
// included. A changed payload then fails on the signature.
void expect_rfc7515_example(const json& jwk, const std::string& token) {
  const auto keys = test::key_set_of(test::jwks_of({jwk}));
  EXPECT_EQ(verify(token, {}, kRfc7515Now, keys), rejected(TokenError::bad_subject));
  std::string tampered = token;
  tampered[tampered.find('.') + 5] ^= 0x01;  // "eyJpc3" -> another character
  EXPECT_EQ(verify(tampered, {}, kRfc7515Now, keys), rejected(TokenError::bad_signature));
}

TEST(RfcExampleTest, Rfc7515AppendixA1Hs256) {
  expect_rfc7515_example(
      {{"kty", "oct"},
       {"k",
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}},
      std::string("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.") + kRfc7515Payload +
          ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
}

TEST(RfcExampleTest, Rfc7515AppendixA2Rs256) {
  expect_rfc7515_example(
      {{"kty", "RSA"},
       {"e", "AQAB"},
       {"n",
        "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0"
        "Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXnd"
        "S5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5Ihl"
        "JH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}},
      std::string("eyJhbGciOiJSUzI1NiJ9.") + kRfc7515Payload +
          ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_"
          "O8W"
          "2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkS"
          "jtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnv"
          "Wh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw");
}

TEST(RfcExampleTest, Rfc7515AppendixA3Es256) {
  expect_rfc7515_example({{"kty", "EC"},
                          {"crv", "P-256"},
                          {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                          {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}},
                         std::string("eyJhbGciOiJFUzI1NiJ9.") + kRfc7515Payload +
                             ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQ"
                             "xfKTUJqPP3-Kg6NU1Q");
}

TEST(RfcExampleTest, Rfc8037AppendixA4Ed25519) {
  const auto keys =
      test::key_set_of(test::jwks_of({{{"kty", "OKP"},
                                       {"crv", "Ed25519"},
                                       {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}}));
  const std::string token =
      "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcv"
      "Mg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
  // The payload is "Example of Ed25519 signing": past the signature, it is not a claims object.
  EXPECT_EQ(verify(token, {}, kNow, keys), rejected(TokenError::malformed));
  std::string tampered = token;
  tampered[tampered.find('.') + 1] = 'S';
  EXPECT_EQ(verify(tampered, {}, kNow, keys), rejected(TokenError::bad_signature));
}

// ---- Size and shape --------------------------------------------------------------------------

TEST(TokenShapeTest, SizeLimitIsCheckedFirstAndIsInclusive) {
  const std::string valid = make_token("test-hs256");
  VerifierOptions options;
  options.max_token_bytes = valid.size();
  EXPECT_EQ(verify(valid, options), accepted(42));
  options.max_token_bytes = valid.size() - 1;
  EXPECT_EQ(verify(valid, options), rejected(TokenError::too_large));
  // Before any parsing: garbage just over the default limit is too large, not malformed.
  EXPECT_EQ(verify(std::string(4097, '.')), rejected(TokenError::too_large));
  EXPECT_EQ(verify(std::string(4096, '.')), rejected(TokenError::malformed));
}

TEST(TokenShapeTest, NotThreeNonEmptyPartsIsMalformed) {
  const std::string valid = make_token("test-hs256");
  const std::string header = part(valid, 0);
  const std::string payload = part(valid, 1);
  const std::string signature = part(valid, 2);
  for (const std::string& token :
       {std::string(), std::string("."), std::string(".."), std::string("..."), header,
        header + "." + payload, valid + ".", "." + valid, valid + "." + signature,
        header + ".." + signature, "." + payload + "." + signature, header + "." + payload + ".",
        header + "." + payload + ".." + signature}) {
    EXPECT_EQ(verify(token), rejected(TokenError::malformed)) << token;
  }
}

TEST(TokenShapeTest, JweCompactFivePartsIsMalformed) {
  const std::string jwe =
      base64url_encode(R"({"alg":"RSA-OAEP","enc":"A256GCM"})") +
      ".OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe.48V1_ALb6US04U3b.5eym8T"
      "W_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6ji.XFBoMYUZodetZdvTiFvSkQ";
  EXPECT_EQ(verify(jwe), rejected(TokenError::malformed));
}

TEST(TokenShapeTest, NonBase64UrlPartsAreRejected) {
  const std::string valid = make_token("test-hs256");
  const std::string header = part(valid, 0);
  const std::string payload = part(valid, 1);
  const std::string signature = part(valid, 2);
  // The HS256 signature is 32 bytes: 43 characters, the last carrying 2 unused bits.
  ASSERT_EQ(signature.size(), 43u);
  const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const auto sextet = std::string_view(kAlphabet).find(signature.back());
  std::string low_bit_set = signature;
  low_bit_set.back() = kAlphabet[sextet | 1];
  ASSERT_NE(low_bit_set, signature);

  const std::string cases[] = {
      header + "=." + payload + "." + signature,                 // padding
      header + "." + payload + "." + signature + "=",            // padding
      header + "." + payload + "==." + signature,                // padding
      "+" + header.substr(1) + "." + payload + "." + signature,  // standard base64
      header + "." + "/" + payload.substr(1) + "." + signature,  // standard base64
      header + "." + payload.substr(0, 5) + " " + payload.substr(5) + "." + signature,
      header + "." + payload + "." + signature + "\n",
      header + "\t." + payload + "." + signature,
      header + "." + payload + "." + low_bit_set,       // non-canonical trailing bits
      header + "." + payload + "." + signature + "AB",  // a length of 1 modulo 4
      header + "." + payload + "\x80." + signature,
  };
  for (const std::string& token : cases) {
    EXPECT_EQ(verify(token), rejected(TokenError::bad_base64url)) << token;
  }
  // Valid base64url of 33 bytes: not an HS256 signature.
  EXPECT_EQ(verify(header + "." + payload + "." + signature + "A"),
            rejected(TokenError::bad_signature));
}

// ---- Header ------------------------------------------------------------------------------------

TEST(TokenHeaderTest, HeaderThatIsNotAJsonObjectIsMalformed) {
  const auto& key = signing_key("test-hs256");
  const std::string claims = claims_for(42).dump();
  for (const char* header :
       {"", "[]", "\"HS256\"", "not json", R"({"alg":"HS256")", "null", R"({"alg":"HS256"} x)"}) {
    EXPECT_EQ(verify(raw_token(key, header, claims)), rejected(TokenError::malformed)) << header;
  }
}

TEST(TokenHeaderTest, NulByteInHeaderOrPayloadIsMalformed) {
  // nlohmann's parser would stop at the NUL and never read what follows.
  const auto& key = signing_key("test-hs256");
  const std::string header = R"({"alg":"HS256"})";
  const std::string claims = claims_for(42).dump();
  ASSERT_EQ(verify(raw_token(key, header, claims)), accepted(42));
  EXPECT_EQ(verify(raw_token(key, header + '\0', claims)), rejected(TokenError::malformed));
  EXPECT_EQ(verify(raw_token(key, header, claims + '\0' + "junk")),
            rejected(TokenError::malformed));
  EXPECT_EQ(verify(raw_token(key, header, '\0' + claims)), rejected(TokenError::malformed));
}

TEST(TokenHeaderTest, MissingOrNonStringAlgIsMalformed) {
  const auto& key = signing_key("test-hs256");
  const std::string claims = claims_for(42).dump();
  for (const char* header :
       {R"({"kid":"test-hs256"})", R"({"alg":256,"kid":"test-hs256"})",
        R"({"alg":null,"kid":"test-hs256"})", R"({"alg":["HS256"],"kid":"test-hs256"})"}) {
    EXPECT_EQ(verify(raw_token(key, header, claims)), rejected(TokenError::malformed)) << header;
  }
}

TEST(TokenHeaderTest, AlgNoneIsRejectedInAnyCase) {
  for (const char* none : {"none", "None", "NONE", "nOnE"}) {
    // Signed with a real key, so that only the alg is wrong.
    EXPECT_EQ(verify(make_token("test-hs256", {{"alg", none}})),
              rejected(TokenError::algorithm_none))
        << none;
    EXPECT_EQ(verify(make_token("test-hs256", {{"alg", none}, {"kid", nullptr}})),
              rejected(TokenError::algorithm_none))
        << none;
  }
}

TEST(TokenHeaderTest, AnUnsignedTokenIsAlgorithmNoneInAnySpelling) {
  // The classic alg:none token has an empty third part; it is counted as what it is
  // (docs/auth.md), not as a malformed token.
  for (const char* none : {"none", "NoNe", "NONE"}) {
    const std::string unsigned_token = base64url_encode(std::string(R"({"alg":")") + none + "\"}") +
                                       "." + base64url_encode(claims_for(42).dump()) + ".";
    EXPECT_EQ(verify(unsigned_token), rejected(TokenError::algorithm_none)) << none;
  }
}

TEST(TokenHeaderTest, ASignedAlgorithmWithAnEmptySignatureIsMalformed) {
  const std::string token = base64url_encode(R"({"alg":"HS256","kid":"test-hs256"})") + "." +
                            base64url_encode(claims_for(42).dump()) + ".";
  EXPECT_EQ(verify(token), rejected(TokenError::malformed));
}

TEST(TokenHeaderTest, OtherAlgorithmsAreUnsupported) {
  for (const std::string alg : {"HS384", "HS512", "RS384", "RS512", "PS256", "ES384", "ES256K",
                                "Ed25519", "hs256", "Hs256", "EDDSA", "eddsa", "", "RS256 "}) {
    EXPECT_EQ(verify(make_token("test-hs256", {{"alg", alg}})),
              rejected(TokenError::unsupported_algorithm))
        << alg;
  }
  EXPECT_EQ(verify(make_token("test-hs256", {{"alg", std::string("HS256\0", 6)}})),
            rejected(TokenError::unsupported_algorithm));
}

TEST(TokenHeaderTest, CriticalHeaderIsRejected) {
  EXPECT_EQ(verify(make_token("test-hs256", {{"crit", {"exp"}}, {"exp", kExpiry}})),
            rejected(TokenError::critical_header));
  EXPECT_EQ(verify(make_token("test-es256", {{"crit", json::array()}})),
            rejected(TokenError::critical_header));
}

TEST(TokenHeaderTest, NonStringKidIsMalformed) {
  EXPECT_EQ(verify(make_token("test-hs256", {{"kid", 7}})), rejected(TokenError::malformed));
  EXPECT_EQ(verify(make_token("test-hs256", {{"kid", nullptr}, {"x", 1}})), accepted(42));
}

// ---- Key choice --------------------------------------------------------------------------------

TEST(KeyChoiceTest, UnknownKidIsRejected) {
  EXPECT_EQ(verify(make_token("test-hs256", {{"kid", "test-hs257"}})),
            rejected(TokenError::unknown_key));
  EXPECT_EQ(verify(make_token("test-hs256", {{"kid", ""}})), rejected(TokenError::unknown_key));
}

TEST(KeyChoiceTest, WithoutKidNoKeyOfThatAlgorithmIsUnknownKey) {
  const auto only_hmac = test::key_set_of(test::jwks_of({test::public_jwk("test-hs256")}));
  EXPECT_EQ(verify(make_token("test-es256", {{"kid", nullptr}}), {}, kNow, only_hmac),
            rejected(TokenError::unknown_key));
  EXPECT_EQ(verify(make_token("test-hs256", {{"kid", nullptr}}), {}, kNow, only_hmac),
            accepted(42));
}

TEST(KeyChoiceTest, WithoutKidTwoKeysOfThatAlgorithmIsUnknownKey) {
  json second = test::public_jwk("test-hs256");
  second["kid"] = "second-hs256";
  second["k"] = base64url_encode(std::string(32, 'k'));
  const auto two_hmac = test::key_set_of(test::jwks_of({test::public_jwk("test-hs256"), second}));
  EXPECT_EQ(verify(make_token("test-hs256", {{"kid", nullptr}}), {}, kNow, two_hmac),
            rejected(TokenError::unknown_key));
  // A kid resolves the ambiguity.
  EXPECT_EQ(verify(make_token("test-hs256"), {}, kNow, two_hmac), accepted(42));
}

// ---- The algorithm comes from the key ----------------------------------------------------------

TEST(AlgorithmConfusionTest, HeaderAlgorithmOtherThanTheKeysIsRejectedBeforeCrypto) {
  const struct {
    const char* signer;
    const char* claimed_kid;
  } cases[] = {{"test-hs256", "test-rs256"}, {"test-hs256", "test-es256"},
               {"test-hs256", "test-eddsa"}, {"test-rs256", "test-es256"},
               {"test-es256", "test-eddsa"}, {"test-eddsa", "test-hs256"}};
  for (const auto& c : cases) {
    EXPECT_EQ(verify(make_token(c.signer, {{"kid", c.claimed_kid}})),
              rejected(TokenError::algorithm_mismatch))
        << c.signer << " as " << c.claimed_kid;
  }
}

TEST(AlgorithmConfusionTest, HmacKeyedWithTheRsaPublicKeyIsRejected) {
  // The classic attack: the verifier's RSA public key is public, so an attacker signs HS256 with
  // its PEM or DER bytes and hopes the verifier feeds the same bytes to HMAC.
  const auto& rsa = signing_key("test-rs256");
  for (const std::string& secret : {tools::public_key_pem(rsa), tools::public_key_der(rsa)}) {
    const auto forger = tools::hmac_signing_key(secret, "test-rs256");
    EXPECT_EQ(verify(tools::sign_token(forger, {}, claims_for(1))),
              rejected(TokenError::algorithm_mismatch));
    // Without kid the HS256 key is chosen, whose secret the attacker does not have.
    EXPECT_EQ(verify(tools::sign_token(forger, {{"kid", nullptr}}, claims_for(1))),
              rejected(TokenError::bad_signature));
    // And with only the RSA key configured, there is no HS256 key at all.
    const auto only_rsa = test::key_set_of(test::jwks_of({test::public_jwk("test-rs256")}));
    EXPECT_EQ(
        verify(tools::sign_token(forger, {{"kid", nullptr}}, claims_for(1)), {}, kNow, only_rsa),
        rejected(TokenError::unknown_key));
  }
}

TEST(AlgorithmConfusionTest, Es256SignatureInDerFormIsRejected) {
  const std::string valid = make_token("test-es256");
  const std::string der = tools::ecdsa_raw_to_der(decoded_part(valid, 2));
  ASSERT_NE(der.size(), 64u);
  EXPECT_EQ(verify(with_part(valid, 2, base64url_encode(der))),
            rejected(TokenError::bad_signature));
}

TEST(AlgorithmConfusionTest, Es256SignatureOfWrongLengthIsRejected) {
  const std::string valid = make_token("test-es256");
  const std::string raw = decoded_part(valid, 2);
  ASSERT_EQ(raw.size(), 64u);
  for (const std::string& signature : {raw.substr(0, 63), raw + '\0', '\0' + raw, raw + raw}) {
    EXPECT_EQ(verify(with_part(valid, 2, base64url_encode(signature))),
              rejected(TokenError::bad_signature));
  }
  EXPECT_EQ(verify(with_part(valid, 2, base64url_encode(std::string(64, '\0')))),
            rejected(TokenError::bad_signature));
}

// ---- Claims, read only once the signature holds ------------------------------------------------

TEST(ClaimsTest, PayloadIsReadOnlyAfterTheSignature) {
  const std::string valid = make_token("test-hs256");
  // Not JSON, and not signed: the signature fails first.
  EXPECT_EQ(verify(with_part(valid, 1, base64url_encode("not json"))),
            rejected(TokenError::bad_signature));
  const auto& key = signing_key("test-hs256");
  for (const char* payload : {"not json", "[]", "42", "\"sub\"", "null", R"({"sub":"1"} x)"}) {
    EXPECT_EQ(verify(raw_token(key, R"({"alg":"HS256"})", payload)),
              rejected(TokenError::malformed))
        << payload;
  }
}

TEST(ClaimsTest, MissingExpiryIsRejected) {
  EXPECT_EQ(verify(make_token("test-eddsa", {}, {{"sub", "42"}, {"iat", kNow}})),
            rejected(TokenError::missing_expiry));
}

TEST(ClaimsTest, ExpiryMustBeAnInteger) {
  const auto& key = signing_key("test-hs256");
  for (const char* exp : {"\"1700003600\"", "1700003600.0", "1.7000036e9", "1700003600.5", "true",
                          "null", "[1700003600]", "18446744073709551616", "9223372036854775808"}) {
    const std::string payload = std::string(R"({"sub":"42","exp":)") + exp + "}";
    EXPECT_EQ(verify(raw_token(key, R"({"alg":"HS256"})", payload)),
              rejected(TokenError::invalid_claim))
        << exp;
  }
  // The largest integer is a valid, if distant, expiry: exp + leeway must not overflow.
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  EXPECT_EQ(verify(make_token("test-hs256", {}, {{"sub", "42"}, {"exp", max}})), accepted(42, max));
}

TEST(ClaimsTest, ExpiryIsAcceptedUpToExactlyTheLeeway) {
  const std::string token = make_token("test-rs256");
  EXPECT_EQ(verify(token, {}, kExpiry), accepted(42));
  EXPECT_EQ(verify(token, {}, kExpiry + 30), accepted(42));
  EXPECT_EQ(verify(token, {}, kExpiry + 31), rejected(TokenError::expired));
  VerifierOptions strict;
  strict.leeway = 0s;
  EXPECT_EQ(verify(token, strict, kExpiry), accepted(42));
  EXPECT_EQ(verify(token, strict, kExpiry + 1), rejected(TokenError::expired));
  VerifierOptions negative;
  negative.leeway = -10s;  // counts as zero
  EXPECT_EQ(verify(token, negative, kExpiry), accepted(42));
  EXPECT_EQ(verify(token, negative, kExpiry + 1), rejected(TokenError::expired));
}

TEST(ClaimsTest, NotBeforeIsAcceptedFromExactlyTheLeeway) {
  const std::string token =
      make_token("test-es256", {}, {{"sub", "42"}, {"nbf", kNow + 100}, {"exp", kExpiry}});
  EXPECT_EQ(verify(token, {}, kNow + 70), accepted(42));
  EXPECT_EQ(verify(token, {}, kNow + 69), rejected(TokenError::not_yet_valid));
  EXPECT_EQ(
      verify(make_token("test-es256", {}, {{"sub", "42"}, {"nbf", "soon"}, {"exp", kExpiry}})),
      rejected(TokenError::invalid_claim));
}

TEST(ClaimsTest, IssuedAtIsAcceptedUpToExactlyTheLeeway) {
  const std::string token =
      make_token("test-eddsa", {}, {{"sub", "42"}, {"iat", kNow + 100}, {"exp", kExpiry}});
  EXPECT_EQ(verify(token, {}, kNow + 70), accepted(42));
  EXPECT_EQ(verify(token, {}, kNow + 69), rejected(TokenError::issued_in_future));
  EXPECT_EQ(verify(make_token("test-eddsa", {}, {{"sub", "42"}, {"iat", 1.5}, {"exp", kExpiry}})),
            rejected(TokenError::invalid_claim));
}

// Options that check the issuer and the audience when given. Optionals are moved in whole:
// GCC 12 takes assigning a string to a disengaged std::optional<std::string> member for a read
// of its uninitialized payload (-Wmaybe-uninitialized, a false positive).
VerifierOptions expecting(std::optional<std::string> issuer, std::optional<std::string> audience) {
  VerifierOptions options;
  options.issuer = std::move(issuer);
  options.audience = std::move(audience);
  return options;
}

TEST(ClaimsTest, TimesAreCheckedBeforeIssuerAudienceAndSubject) {
  const VerifierOptions options = expecting("https://exams.example", std::nullopt);
  EXPECT_EQ(verify(make_token("test-hs256", {}, {{"exp", kNow - 3600}}), options),
            rejected(TokenError::expired));
}

TEST(ClaimsTest, IssuerMustMatchWhenConfigured) {
  const VerifierOptions options = expecting("https://exams.example", std::nullopt);
  const auto token_with_issuer = [](const json& issuer) {
    json claims = claims_for(42);
    claims["iss"] = issuer;
    return make_token("test-hs256", {}, claims);
  };
  EXPECT_EQ(verify(token_with_issuer("https://exams.example"), options), accepted(42));
  EXPECT_EQ(verify(token_with_issuer("https://exams.example/"), options),
            rejected(TokenError::wrong_issuer));
  EXPECT_EQ(verify(token_with_issuer("https://EXAMS.example"), options),
            rejected(TokenError::wrong_issuer));
  EXPECT_EQ(verify(make_token("test-hs256"), options), rejected(TokenError::wrong_issuer));
  EXPECT_EQ(verify(token_with_issuer(7), options), rejected(TokenError::invalid_claim));
  // Not configured: any issuer, or none.
  EXPECT_EQ(verify(token_with_issuer("someone"), {}), accepted(42));
}

TEST(ClaimsTest, AudienceMustContainTheConfiguredOne) {
  const VerifierOptions options = expecting(std::nullopt, "attempts");
  const auto token_with_audience = [](const json& audience) {
    json claims = claims_for(42);
    claims["aud"] = audience;
    return make_token("test-es256", {}, claims);
  };
  EXPECT_EQ(verify(token_with_audience("attempts"), options), accepted(42));
  EXPECT_EQ(verify(token_with_audience(json::array({"grades", "attempts"})), options),
            accepted(42));
  EXPECT_EQ(verify(token_with_audience("grades"), options), rejected(TokenError::wrong_audience));
  EXPECT_EQ(verify(token_with_audience("attempts "), options),
            rejected(TokenError::wrong_audience));
  EXPECT_EQ(verify(token_with_audience(json::array({"grades", "exams"})), options),
            rejected(TokenError::wrong_audience));
  EXPECT_EQ(verify(token_with_audience(json::array()), options),
            rejected(TokenError::wrong_audience));
  EXPECT_EQ(verify(make_token("test-es256"), options), rejected(TokenError::wrong_audience));
  EXPECT_EQ(verify(token_with_audience(json::array({"attempts", 5})), options),
            rejected(TokenError::invalid_claim));
  EXPECT_EQ(verify(token_with_audience({{"aud", "attempts"}}), options),
            rejected(TokenError::invalid_claim));
  EXPECT_EQ(verify(token_with_audience("grades"), {}), accepted(42));
}

TEST(ClaimsTest, SubjectMustBeAPositiveStudentId) {
  const auto token_with_subject = [](const json& subject) {
    json claims = claims_for(1);
    claims["sub"] = subject;
    return make_token("test-hs256", {}, claims);
  };
  for (const json& subject :
       {json("0"), json("-1"), json("+1"), json("007"), json("9223372036854775808"), json("12a"),
        json(""), json(" 42"), json("4.2"), json("1e3"), json(nullptr), json::array({"42"}),
        json(0), json(-1), json(42.0), json(9223372036854775808ull), json(true),
        json::object({{"id", 42}})}) {
    EXPECT_EQ(verify(token_with_subject(subject)), rejected(TokenError::bad_subject))
        << subject.dump();
  }
  EXPECT_EQ(verify(token_with_subject(42)), accepted(42));
  json no_subject = claims_for(1);
  no_subject.erase("sub");
  EXPECT_EQ(verify(make_token("test-hs256", {}, no_subject)), rejected(TokenError::bad_subject));
  EXPECT_EQ(verify(token_with_subject("1")), accepted(1));
  EXPECT_EQ(verify(token_with_subject("9223372036854775807")),
            accepted(std::numeric_limits<std::int64_t>::max()));
}

// What identity providers issue: sub is their own id (a UUID, "auth0|...", 21 digits), and a
// claim mapper adds the student id under a name of the platform's choosing.
TEST(ClaimsTest, TheStudentIdComesFromTheNamedClaim) {
  VerifierOptions options;
  options.student_claim = "student_id";
  const auto token_with = [](const json& student, const char* subject) {
    json claims = claims_for(1);
    claims["sub"] = subject;
    if (!student.is_discarded()) claims["student_id"] = student;
    return make_token("test-hs256", {}, claims);
  };
  const char* const uuid = "f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
  EXPECT_EQ(verify(token_with(42, uuid), options), accepted(42));
  EXPECT_EQ(verify(token_with("42", "auth0|5f7c8ec7c33c6c004bbafe82"), options), accepted(42));
  EXPECT_EQ(verify(token_with(std::numeric_limits<std::int64_t>::max(), "103547991597142817347"),
                   options),
            accepted(std::numeric_limits<std::int64_t>::max()));
  // sub is not read: a numeric sub without the claim is no student.
  EXPECT_EQ(verify(token_with(json(json::value_t::discarded), "42"), options),
            rejected(TokenError::bad_subject));
  for (const json& student : {json(0), json(-7), json(4.2), json(42.0), json("042"), json(""),
                              json(nullptr), json(9223372036854775808ull), json::array({42})}) {
    EXPECT_EQ(verify(token_with(student, uuid), options), rejected(TokenError::bad_subject))
        << student.dump();
  }
  // A claim name that is a URL, as Auth0 requires for custom claims.
  options.student_claim = "https://exams.example/student";
  json claims = claims_for(1);
  claims["sub"] = uuid;
  claims["https://exams.example/student"] = 77;
  EXPECT_EQ(verify(make_token("test-hs256", {}, claims), options), accepted(77));
}

// ---- Descriptions, construction, threads --------------------------------------------------------

TEST(TokenErrorTest, EachReasonHasItsOwnNameAndAQuotableDescription) {
  std::set<std::string_view> names;
  std::set<std::string_view> descriptions;
  for (std::size_t i = 0; i < kTokenErrorCount; ++i) {
    const auto error = static_cast<TokenError>(i);
    const std::string_view text = describe(error);
    EXPECT_FALSE(text.empty());
    // RFC 6750 section 3: error_description is %x20-21 / %x23-5B / %x5D-7E.
    for (const char c : text) {
      EXPECT_TRUE(c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') << text;
    }
    EXPECT_TRUE(names.insert(name(error)).second) << name(error);
    EXPECT_TRUE(descriptions.insert(text).second) << text;
  }
  EXPECT_EQ(name(TokenError::bad_subject), "bad_subject");
  EXPECT_EQ(describe(TokenError::expired), "The token has expired");
}

TEST(TokenVerifierTest, NeedsAKeySet) {
  EXPECT_THROW(TokenVerifier(nullptr, {}), std::invalid_argument);
}

TEST(TokenVerifierTest, ConcurrentVerificationsAgree) {
  const TokenVerifier verifier(test::test_key_set(), {});
  std::vector<std::string> tokens;
  for (const char* kid : {"test-hs256", "test-rs256", "test-es256", "test-eddsa"}) {
    tokens.push_back(make_token(kid));
  }
  std::vector<std::thread> threads;
  std::atomic<int> accepted_count{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const auto& token = tokens[static_cast<std::size_t>(i + t) % tokens.size()];
        if (without_key(verifier.verify(token, kNow)) == accepted(42)) ++accepted_count;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(accepted_count.load(), 200);
}

// ---- Which key verified a token ----------------------------------------------------------------

TEST(VerifiedKeyTest, ATokenNamesTheFingerprintOfTheKeyThatVerifiedIt) {
  const auto keys = test::test_key_set();
  const TokenVerifier verifier(keys, {});
  std::set<std::uint64_t> seen;
  for (const char* kid : {"test-hs256", "test-rs256", "test-es256", "test-eddsa"}) {
    const auto result = verifier.verify(make_token(kid), kNow);
    ASSERT_TRUE(std::holds_alternative<VerifiedToken>(result)) << kid;
    const std::uint64_t key = std::get<VerifiedToken>(result).key;
    EXPECT_EQ(key, keys->find(kid)->fingerprint) << kid;
    EXPECT_NE(key, 0u) << kid;
    seen.insert(key);
  }
  EXPECT_EQ(seen.size(), 4u) << "two keys share a fingerprint";
  // The same keys read again: the same fingerprints.
  const auto again = test::test_key_set();
  for (const auto& key : keys->keys())
    EXPECT_EQ(again->find(*key.kid)->fingerprint, key.fingerprint);
}

TEST(VerifiedKeyTest, OptionsHaveAFingerprintOfTheirOwn) {
  const VerifierOptions audience = expecting(std::nullopt, "attempts");
  const VerifierOptions issuer = expecting("attempts", std::nullopt);
  const auto keys = test::test_key_set();
  EXPECT_EQ(TokenVerifier(keys, {}).options_fingerprint(),
            TokenVerifier(keys, {}).options_fingerprint());
  EXPECT_NE(TokenVerifier(keys, audience).options_fingerprint(),
            TokenVerifier(keys, issuer).options_fingerprint());
  EXPECT_NE(TokenVerifier(keys, audience).options_fingerprint(),
            TokenVerifier(keys, {}).options_fingerprint());
  // Another student claim reads another id from the same token: its cached tokens are not ours.
  VerifierOptions claim;
  claim.student_claim = "student_id";
  EXPECT_NE(TokenVerifier(keys, claim).options_fingerprint(),
            TokenVerifier(keys, {}).options_fingerprint());
}

}  // namespace
}  // namespace attempts::auth
