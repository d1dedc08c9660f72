#include "attempts/auth/key_source_rules.hpp"

#include "attempts/auth/jwks.hpp"

namespace attempts::auth {

bool may_carry(KeyOrigin origin, Algorithm algorithm) noexcept {
  return origin == KeyOrigin::file || algorithm != Algorithm::hs256;
}

bool refuses_whole_document(KeyOrigin origin) noexcept {
  return origin == KeyOrigin::file;
}

std::optional<std::string> downgrade_error(const Url& from, const Url& next) {
  if (!from.https || next.https) return std::nullopt;
  return "from https (" + to_string(from) + ") to http (" + to_string(next) +
         "): keys fetched in clear text could be anyone's";
}

std::optional<std::string> plaintext_warning(const Url& source) {
  if (source.https) return std::nullopt;
  return "the token signing keys come from " + to_string(source) +
         " over plain http: anyone on the path can replace them and sign any student's token; "
         "use https outside a test or a trusted network";
}

}  // namespace attempts::auth
