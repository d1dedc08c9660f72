#pragma once

// unique_ptr aliases for the OpenSSL objects the auth layer and its tools use, and the text of
// OpenSSL's last error. Private to src/auth and the token tools.

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <memory>
#include <string>

namespace attempts::auth::openssl {

template <auto free_function>
struct Free {
  template <typename T>
  void operator()(T* object) const noexcept {
    free_function(object);
  }
};

using BignumPtr = std::unique_ptr<BIGNUM, Free<BN_free>>;
using BioPtr = std::unique_ptr<BIO, Free<BIO_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Free<ECDSA_SIG_free>>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, Free<EVP_MAC_CTX_free>>;
using MacPtr = std::unique_ptr<EVP_MAC, Free<EVP_MAC_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Free<EVP_MD_CTX_free>>;
using MdPtr = std::unique_ptr<EVP_MD, Free<EVP_MD_free>>;
using ParamBuilderPtr = std::unique_ptr<OSSL_PARAM_BLD, Free<OSSL_PARAM_BLD_free>>;
using ParamsPtr = std::unique_ptr<OSSL_PARAM, Free<OSSL_PARAM_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Free<EVP_PKEY_CTX_free>>;

// The reason of the oldest error in this thread's OpenSSL error queue, which it then empties
// (a failed verification must not leave errors behind for the next, unrelated, call).
inline std::string take_error() {
  const unsigned long code = ERR_peek_error();
  std::string text = "unknown error";
  if (code != 0) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    text = buffer;
  }
  ERR_clear_error();
  return text;
}

}  // namespace attempts::auth::openssl
