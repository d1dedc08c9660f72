#include "attempts/auth/remote_keys.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "attempts/auth/authenticator.hpp"
#include "http_fetch.hpp"

namespace attempts::auth {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

constexpr std::string_view kDiscoveryPath = "/.well-known/openid-configuration";

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

FetchOutcome outcome_of(FetchFailure failure) {
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
  }
  return FetchOutcome::network_error;
}

// "kid-a, kid-b" for the log; keys without a kid show as "(no kid)".
std::string kid_list(const KeySet& keys) {
  std::string list;
  for (const auto& key : keys.keys()) {
    if (!list.empty()) list += ", ";
    list += key.kid ? *key.kid : "(no kid)";
  }
  return list;
}

// The discovery document's URL: the issuer without a trailing '/', then the well-known path
// (OpenID Connect Discovery 1.0, section 4).
std::string discovery_url(std::string issuer) {
  while (!issuer.empty() && issuer.back() == '/') issuer.pop_back();
  return issuer + std::string(kDiscoveryPath);
}

struct Failure {
  FetchOutcome outcome;
  std::string message;
};

}  // namespace

std::string_view name(FetchOutcome outcome) noexcept {
  switch (outcome) {
    case FetchOutcome::ok:
      return "ok";
    case FetchOutcome::network_error:
      return "network_error";
    case FetchOutcome::timeout:
      return "timeout";
    case FetchOutcome::tls_error:
      return "tls_error";
    case FetchOutcome::http_error:
      return "http_error";
    case FetchOutcome::too_large:
      return "too_large";
    case FetchOutcome::too_many_redirects:
      return "too_many_redirects";
    case FetchOutcome::malformed:
      return "malformed";
    case FetchOutcome::issuer_mismatch:
      return "issuer_mismatch";
  }
  return "unknown";
}

std::optional<seconds> max_age(std::string_view cache_control) {
  constexpr std::string_view kMaxAge = "max-age=";
  std::optional<seconds> found;
  while (!cache_control.empty()) {
    const std::size_t comma = cache_control.find(',');
    std::string_view directive = cache_control.substr(0, comma);
    cache_control = comma == std::string_view::npos ? "" : cache_control.substr(comma + 1);
    directive.remove_prefix(std::min(directive.find_first_not_of(" \t"), directive.size()));
    directive = directive.substr(0, directive.find_last_not_of(" \t") + 1);
    if (beast::iequals(directive, "no-cache") || beast::iequals(directive, "no-store")) {
      return seconds{0};
    }
    if (found || directive.size() <= kMaxAge.size() ||
        !beast::iequals(directive.substr(0, kMaxAge.size()), kMaxAge)) {
      continue;
    }
    std::string_view value = directive.substr(kMaxAge.size());
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    // Delta-seconds; too large a value means "a long time" (RFC 9111 section 1.2.2).
    if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) continue;
    std::int64_t number = 0;
    for (const char c : value) number = std::min<std::int64_t>(number * 10 + (c - '0'), 1ll << 31);
    found = seconds{number};
  }
  return found;
}

seconds refresh_interval(const RemoteKeysOptions& options, std::string_view cache_control) {
  if (options.refresh) return *options.refresh;
  const auto asked = max_age(cache_control);
  if (!asked) return kDefaultRefresh;
  return std::clamp(*asked, kMinAutoRefresh, kMaxAutoRefresh);
}

struct RemoteKeys::State {
  State(RemoteKeysOptions options_in, Authenticator& authenticator_in)
      : options(std::move(options_in)),
        authenticator(authenticator_in),
        tls(make_client_tls_context(options.ca_file)) {
    if (!options.jwks_url.empty()) {
      auto parsed = parse_url(options.jwks_url);
      if (const auto* why = std::get_if<std::string>(&parsed)) {
        throw std::runtime_error(options.jwks_url + ": " + *why);
      }
      jwks_url = std::get<Url>(parsed);
    } else {
      auto parsed = parse_url(discovery_url(options.issuer));
      if (const auto* why = std::get_if<std::string>(&parsed)) {
        throw std::runtime_error("the issuer " + options.issuer + ": " + *why);
      }
      discovery = std::get<Url>(parsed);
    }
    status.source = to_string(jwks_url ? *jwks_url : *discovery);
  }

  FetchLimits limits() const {
    return {.max_body_bytes = options.max_document_bytes,
            .timeout = options.fetch_timeout,
            .max_redirects = options.max_redirects};
  }

  asio::awaitable<void> run();
  asio::awaitable<std::optional<Failure>> refresh(seconds& interval);
  asio::awaitable<std::optional<Failure>> discover();
  std::optional<Failure> install(const FetchedDocument& document, seconds& interval);
  void record(const std::optional<Failure>& failure);

  const RemoteKeysOptions options;
  Authenticator& authenticator;
  asio::io_context io{1};
  asio::ssl::context tls;
  asio::steady_timer timer{io};
  std::thread thread;
  std::atomic<bool> stopping{false};
  // A token named an unknown kid since the last fetch ended.
  std::atomic<bool> refresh_asked{false};
  std::array<std::atomic<std::uint64_t>, kFetchOutcomeCount> fetches{};
  std::atomic<std::uint64_t> unknown_kid_refreshes{0};
  mutable std::mutex status_mutex;
  KeySourceStatus status;
  // The event loop thread's own: where the keys are, and the kids last installed.
  std::optional<Url> jwks_url;
  std::optional<Url> discovery;
  std::string installed_kids;
};

asio::awaitable<std::optional<Failure>> RemoteKeys::State::discover() {
  auto fetched = co_await fetch_document(*discovery, limits(), tls);
  if (const auto* error = std::get_if<FetchError>(&fetched)) {
    co_return Failure{outcome_of(error->failure),
                      "OpenID configuration " + to_string(*discovery) + ": " + error->message};
  }
  const auto document = nlohmann::json::parse(std::get<FetchedDocument>(fetched).body, nullptr,
                                              /*allow_exceptions=*/false);
  const auto where = "OpenID configuration " + to_string(*discovery);
  if (!document.is_object())
    co_return Failure{FetchOutcome::malformed, where + ": not a JSON object"};
  const auto issuer = document.find("issuer");
  const auto jwks_uri = document.find("jwks_uri");
  if (issuer == document.end() || !issuer->is_string() || jwks_uri == document.end() ||
      !jwks_uri->is_string()) {
    co_return Failure{FetchOutcome::malformed, where + ": no issuer or jwks_uri string"};
  }
  // OpenID Connect Discovery 1.0, section 4.3: exactly the issuer asked about, or the keys
  // would be another issuer's.
  if (issuer->get_ref<const std::string&>() != options.issuer) {
    co_return Failure{FetchOutcome::issuer_mismatch, where + ": names the issuer '" +
                                                         issuer->get<std::string>() + "', not '" +
                                                         options.issuer + "'"};
  }
  auto url = parse_url(jwks_uri->get_ref<const std::string&>());
  if (const auto* why = std::get_if<std::string>(&url)) {
    co_return Failure{FetchOutcome::malformed, where + ": jwks_uri: " + *why};
  }
  jwks_url = std::get<Url>(url);
  spdlog::info("OpenID configuration of {}: keys at {}", options.issuer, to_string(*jwks_url));
  co_return std::nullopt;
}

std::optional<Failure> RemoteKeys::State::install(const FetchedDocument& document,
                                                  seconds& interval) {
  const auto where = to_string(*jwks_url);
  auto loaded = KeySet::parse(document.body);
  if (const auto* error = std::get_if<KeySetError>(&loaded)) {
    return Failure{FetchOutcome::malformed, where + ": " + error->message};
  }
  auto& keys = std::get<LoadedKeySet>(loaded);
  if (keys.key_set.keys().empty()) {
    return Failure{FetchOutcome::malformed, where + ": no key this service can verify with"};
  }
  std::string kids = kid_list(keys.key_set);
  const bool changed = kids != installed_kids;
  if (changed) {
    for (const auto& warning : keys.warnings) spdlog::warn("{}: {}", where, warning);
  }
  const std::size_t count = keys.key_set.keys().size();
  // Replaced even when unchanged: the same keys keep their fingerprints, so the tokens they
  // verified stay cached.
  authenticator.replace(std::make_shared<const TokenVerifier>(
      std::make_shared<const KeySet>(std::move(keys.key_set)), options.verifier));
  interval = refresh_interval(options, document.cache_control);
  if (changed) {
    spdlog::info("{}: {} verification keys (kids: {}); next refresh in {} s", where, count, kids,
                 interval.count());
    installed_kids = std::move(kids);
  } else {
    spdlog::debug("{}: keys unchanged; next refresh in {} s", where, interval.count());
  }
  const std::lock_guard lock(status_mutex);
  status.source = where;
  status.keys_known = true;
  status.fetched_at = unix_seconds();
  status.keys = count;
  return std::nullopt;
}

asio::awaitable<std::optional<Failure>> RemoteKeys::State::refresh(seconds& interval) {
  const bool from_discovery = discovery.has_value();
  if (!jwks_url) {
    if (auto failure = co_await discover()) co_return failure;
  }
  auto fetched = co_await fetch_document(*jwks_url, limits(), tls);
  if (const auto* error = std::get_if<FetchError>(&fetched)) {
    // A discovered jwks_uri that has gone away is looked up again next time.
    if (from_discovery && error->failure == FetchFailure::status) jwks_url.reset();
    co_return Failure{outcome_of(error->failure), "JWKS: " + error->message};
  }
  co_return install(std::get<FetchedDocument>(fetched), interval);
}

void RemoteKeys::State::record(const std::optional<Failure>& failure) {
  fetches[static_cast<std::size_t>(failure ? failure->outcome : FetchOutcome::ok)].fetch_add(
      1, std::memory_order_relaxed);
  const std::lock_guard lock(status_mutex);
  status.last_error = failure ? failure->message : std::string();
}

asio::awaitable<void> RemoteKeys::State::run() {
  auto retry = seconds{1};
  auto interval = options.refresh.value_or(kDefaultRefresh);
  auto due = Clock::now();
  auto last_start = Clock::now() - options.min_refresh;
  for (;;) {
    // Sleep until the next refresh, or until a token names an unknown kid and min_refresh
    // since the last fetch has passed.
    for (;;) {
      auto wake = due;
      if (refresh_asked.load()) wake = std::min(wake, last_start + options.min_refresh);
      if (Clock::now() >= wake) break;
      timer.expires_at(wake);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (stopping.load()) co_return;
    }
    last_start = Clock::now();
    const auto failure = co_await refresh(interval);
    if (stopping.load()) co_return;
    // Unknown kids met while this fetch ran are answered by it; asking is open again now.
    refresh_asked.store(false);
    record(failure);
    if (!failure) {
      retry = seconds{1};
      due = Clock::now() + interval;
      continue;
    }
    const auto delay = std::min({retry, kMaxRetryDelay, interval});
    retry = std::min(retry * 2, kMaxRetryDelay);
    due = Clock::now() + delay;
    KeySourceStatus state;
    {
      const std::lock_guard lock(status_mutex);
      state = status;
    }
    if (state.keys_known) {
      spdlog::warn("{} ({}); keeping the {} keys fetched {} s ago; next try in {} s",
                   failure->message, name(failure->outcome), state.keys,
                   unix_seconds() - state.fetched_at, delay.count());
    } else {
      spdlog::error("{} ({}); no keys yet, so requests get 503; next try in {} s", failure->message,
                    name(failure->outcome), delay.count());
    }
  }
}

RemoteKeys::RemoteKeys(RemoteKeysOptions options, Authenticator& authenticator)
    : state_(std::make_unique<State>(std::move(options), authenticator)) {
  authenticator.on_unknown_key([this] {
    if (refresh_soon()) state_->unknown_kid_refreshes.fetch_add(1, std::memory_order_relaxed);
  });
}

RemoteKeys::~RemoteKeys() {
  stop();
}

void RemoteKeys::start() {
  if (state_->thread.joinable()) return;
  asio::co_spawn(state_->io, state_->run(), [](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      spdlog::critical("the key source stopped: {}", e.what());
    }
  });
  state_->thread = std::thread([this] { state_->io.run(); });
}

void RemoteKeys::stop() {
  state_->stopping.store(true);
  state_->io.stop();
  if (state_->thread.joinable()) state_->thread.join();
}

bool RemoteKeys::refresh_soon() noexcept {
  if (state_->stopping.load(std::memory_order_relaxed)) return false;
  // One fetch per wave of unknown kids: the rest of the wave waits for it.
  if (state_->refresh_asked.exchange(true)) return false;
  asio::post(state_->io, [state = state_.get()] { state->timer.cancel(); });
  return true;
}

KeySourceStatus RemoteKeys::status() const {
  const std::lock_guard lock(state_->status_mutex);
  return state_->status;
}

std::uint64_t RemoteKeys::fetches(FetchOutcome outcome) const noexcept {
  return state_->fetches[static_cast<std::size_t>(outcome)].load(std::memory_order_relaxed);
}

std::uint64_t RemoteKeys::unknown_kid_refreshes() const noexcept {
  return state_->unknown_kid_refreshes.load(std::memory_order_relaxed);
}

}  // namespace attempts::auth
