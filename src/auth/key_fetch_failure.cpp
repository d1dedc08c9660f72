#include "auth/key_fetch_failure.hpp"

namespace attempts::auth {

FetchOutcome outcome_of(FetchFailure failure) noexcept {
  switch (failure) {
    case FetchFailure::network:
      return FetchOutcome::network_error;
    case FetchFailure::timeout:
      return FetchOutcome::timeout;
    case FetchFailure::tls:
      return FetchOutcome::tls_error;
    case FetchFailure::status:
      return FetchOutcome::http_error;
    case FetchFailure::too_large:
      return FetchOutcome::too_large;
    case FetchFailure::redirects:
      return FetchOutcome::too_many_redirects;
    case FetchFailure::insecure:
      return FetchOutcome::insecure;
  }
  return FetchOutcome::network_error;
}

KeyFetchFailure fetch_failure(const FetchError& error, const std::string& what) {
  return {outcome_of(error.failure), what + ": " + error.message};
}

}  // namespace attempts::auth
