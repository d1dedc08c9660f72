#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <variant>

#include "attempts/auth/token_verifier.hpp"
#include "auth/key_fetch_failure.hpp"
#include "http_fetch.hpp"

namespace attempts::auth {

class Authenticator;

// Puts a fetched JWKS in force: reads it as a fetched document (key_source_rules.hpp: public
// keys only, a bad key refused alone), swaps in a verifier made from its keys, and logs the key
// set when it changes (the skipped and refused keys with it). Used by the fetching thread only.
class KeyInstaller {
 public:
  KeyInstaller(Authenticator& authenticator, VerifierOptions options)
      : authenticator_(authenticator), options_(std::move(options)) {}

  struct Installed {
    std::size_t keys;
    std::size_t refused_keys;
  };
  // `document` was fetched from `source` (perhaps redirected); `next_refresh` is only logged.
  // A document with no usable key changes nothing.
  std::variant<Installed, KeyFetchFailure> install(const Url& source,
                                                   const FetchedDocument& document,
                                                   std::chrono::seconds next_refresh);

 private:
  Authenticator& authenticator_;
  const VerifierOptions options_;
  std::string logged_;  // what the log last said of the key set, to say it again only on change
};

}  // namespace attempts::auth
