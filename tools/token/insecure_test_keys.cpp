#include "token/insecure_test_keys.hpp"

namespace attempts::auth::tools {

// Generated once with `attempts-token keygen`, kids renamed from dev-* to test-*.
std::string_view insecure_test_private_jwks() {
  static constexpr std::string_view kJwks =
      "{\"keys\": [\n"
      "{\"kid\": \"test-hs256\", \"kty\": \"oct\", \"alg\": \"HS256\", \"use\": \"sig\", \"k"
      "\": \"V7CLJak4m5LMM5tv6nLqzgGp6dm5ki1sf3wH5suL2Nc\"},\n"
      "{\"kid\": \"test-rs256\", \"kty\": \"RSA\", \"alg\": \"RS256\", \"use\": \"sig\", \"n"
      "\": \"3Hg5eGn5XDkB1MZWH1aqNokvKQpR36XfvS2qmzXNk0vmdi5AJ0kLNenVpKBbg61icP89A87h-lCijrhF"
      "przST4Q8_6IBkN2CCgD14PfDKmcRHqyB0KsWjWJnL8gTZtXjq-WJQNdDTxQhPTBrjmsLe5dGXVCjnc8UiVNcfC"
      "lu--UgtK7TYWS3UyF2h0YaBz44mLlmxjk2pUcTRcx_KoYU3ckcNGHFB8qG9bfzeU431efvCHT4PJD4ERbNS4TG"
      "SxEIZ09Q-hMjOd-saqfQJ1XRWP5IGx_UsefuOJpoa8hq6Be8DSQ-0w5zDoAKnroW-WY_Jc0tBIfWf-CMqTY2kd"
      "R_wQ\", \"e\": \"AQAB\", \"d\": \"CtroiXzX4d1bF7mqpK34GraA2fAMilesDBZ8uSbaN_YB8BbkfCRL"
      "WjY1mX6qKT7KNm7hKpgIsr7YCIrnv9PtAix5DGUfpDa9bMMRvo5OAuWpB1Rn3kXuPSJEZ_fdhkl8Hwr7Y3PpEb"
      "J-CHmjC61KY9iihrAUiw3J7XdrRrm-uyw8UKAVf4vtHcHQhsHr9587RGOUNnaFMUtMxAe4XsSz-hEedAc3Bgxx"
      "sgO_cZVif1soj1VdsvUb0pkgbRKYQxmycnsraql5sTNyQj5T4k0X8k8-aOVQc2PB3xREx8K9VHZU0Kb6MBkMQu"
      "iDylGgzBdNV-7beZi3K5X6Z8sOZRUvoQ\", \"p\": \"8C0GdFZzaNq6D67C7M6ga008aaco3a-rv8-sywNYv"
      "8LqK8JBkXLdgXwf7Q_dQ2le6cKRadT8bQEuQSg68Le_AHnICBddLbQXxx5S0FFOGvDP9unKc7xhGA7c0kA-amK"
      "wvpJN1uVybo8_rxSb8iz1dxvq0vFZeCJOe2I12BR83hU\", \"q\": \"6v7R3qzlcuUFEQ3y81enD65mcQLrw"
      "OdZykOYnHDHX-3AyD4jxHmlGac9d4CSvsw9wPEh9YPi9cafSXrru0q_XAqIPq43Drq36audeGBQVSAc_yYO2op"
      "gHbBo1ev7VWj2rTWcI4TiN4d48p-dwPQJd8ersGNDYRo8EYSDaqH_Mf0\", \"dp\": \"sSKUAxOLlMbUuSJM"
      "UzjlqZ3SM538jtu0UQhKyYPTXcLU0Kc5kptj8M7qAP5VUxWQ0dkVRDe4YHChe56_MbBjJ2ep9wW8TCvp6Ypcy5"
      "VbhJUc3F97WDaUaZj0lgCZx_63miXvUNHyvsXZ0zfg-BDejRVC8IbeVLMArRE24wHhQi0\", \"dq\": \"NFg"
      "KW3VbrpoA5OmcgkO1_LI2M1oZNWDTCVDBP6eHYYDN_kyJHwyRkANGl8XV6hYIc1_C1rNH7MMPXAi7VX6y3UejT"
      "YL01J0Wtj_51YRuoGeEzfimOlu0SSiwUWY9F6tHtxFH9El3MjNE55ZSR1aUfU_GmIWjzo9Pbf98XlYzR-k\", "
      "\"qi\": \"LFt4kqyh-MWRK_G9uwexFaOQec5NpaXtsdSyZP1yLJHhadmb9GpW6Se5L9dcJRoEVgAyp_yePUjo"
      "LOb-BIX3WFmWC-fAC4Ccet2IIGZJVg-M5VqpJU2cYmZW_YpJDPevAdbwIdb_FfG-584_61A4etfPtcGibzerjo"
      "N_OlH0A30\"},\n"
      "{\"kid\": \"test-es256\", \"kty\": \"EC\", \"crv\": \"P-256\", \"alg\": \"ES256\", \"u"
      "se\": \"sig\", \"x\": \"RZbY1eQPBLA1-on9TqLEoAnGdXma_SYZpXYOW4p5oiQ\", \"y\": \"fbp_Iz"
      "40AsH2CKA1XEtP6k5NhPaa8MtUsf4vjTZOftc\", \"d\": \"gRFQ5SgeSL5cI3JX0De4BKIU9AiFOiBqWmeb"
      "MlIVfS4\"},\n"
      "{\"kid\": \"test-eddsa\", \"kty\": \"OKP\", \"crv\": \"Ed25519\", \"alg\": \"EdDSA\", "
      "\"use\": \"sig\", \"x\": \"M5LT7-Jf6vae-cNo9yc-sT2wzxPypeWQaOjmQlJIFl0\", \"d\": \"Esi"
      "7Ck-mdoMsHZ8CbSclDjCCPqGl3jU9uMFqnjSMkZM\"}\n"
      "]}\n";
  return kJwks;
}

}  // namespace attempts::auth::tools
