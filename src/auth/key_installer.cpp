#include "auth/key_installer.hpp"

#include <spdlog/spdlog.h>

#include "attempts/auth/authenticator.hpp"

namespace attempts::auth {
namespace {

// "kid-a, kid-b" for the log; keys without a kid show as "(no kid)".
std::string kid_list(const KeySet& keys) {
  std::string list;
  for (const auto& key : keys.keys()) {
    if (!list.empty()) list += ", ";
    list += key.kid ? *key.kid : "(no kid)";
  }
  return list;
}

}  // namespace

std::variant<KeyInstaller::Installed, KeyFetchFailure> KeyInstaller::install(
    const Url& source, const FetchedDocument& document, std::chrono::seconds next_refresh) {
  const auto where = to_string(source);
  auto loaded = KeySet::parse(document.body, KeyOrigin::remote);
  if (const auto* error = std::get_if<KeySetError>(&loaded)) {
    return KeyFetchFailure{FetchOutcome::malformed, where + ": " + error->message,
                           error->refused_keys};
  }
  auto& keys = std::get<LoadedKeySet>(loaded);
  std::string kids = kid_list(keys.key_set);
  std::string logged = kids;
  for (const auto& line : keys.refused) logged += '\n' + line;
  const bool changed = logged != logged_;
  if (changed) {
    for (const auto& warning : keys.warnings) spdlog::warn("{}: {}", where, warning);
    for (const auto& refusal : keys.refused) spdlog::warn("{}: {}", where, refusal);
  }
  const Installed installed{keys.key_set.keys().size(), keys.refused.size()};
  // Replaced even when unchanged: the same keys keep their fingerprints, so the tokens they
  // verified stay cached.
  authenticator_.replace(std::make_shared<const TokenVerifier>(
      std::make_shared<const KeySet>(std::move(keys.key_set)), options_));
  if (changed) {
    spdlog::info(
        "{}: {} verification keys (kids: {}){}; next refresh in {} s", where, installed.keys, kids,
        installed.refused_keys == 0 ? std::string()
                                    : ", " + std::to_string(installed.refused_keys) + " refused",
        next_refresh.count());
    logged_ = std::move(logged);
  } else {
    spdlog::debug("{}: keys unchanged; next refresh in {} s", where, next_refresh.count());
  }
  return installed;
}

}  // namespace attempts::auth
