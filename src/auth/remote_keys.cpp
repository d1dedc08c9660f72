#include "attempts/auth/remote_keys.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <thread>

#include "attempts/auth/authenticator.hpp"
#include "attempts/auth/key_source_rules.hpp"
#include "auth/key_installer.hpp"
#include "auth/key_source_monitor.hpp"
#include "auth/oidc_discovery.hpp"
#include "auth/refresh_schedule.hpp"
#include "http_fetch.hpp"

namespace attempts::auth {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

Url url_or_throw(const std::string& text, const std::string& what) {
  auto parsed = parse_url(text);
  if (const auto* why = std::get_if<std::string>(&parsed)) {
    throw std::runtime_error(what + ": " + *why);
  }
  return std::get<Url>(parsed);
}

// The configured JWKS URL, if any.
std::optional<Url> configured_jwks_url(const RemoteKeysOptions& options) {
  if (options.jwks_url.empty()) return std::nullopt;
  return url_or_throw(options.jwks_url, options.jwks_url);
}

// The discovery document's URL, when the JWKS URL is to be discovered.
std::optional<Url> discovery_of(const RemoteKeysOptions& options) {
  if (!options.jwks_url.empty()) return std::nullopt;
  return url_or_throw(discovery_url(options.issuer), "the issuer " + options.issuer);
}

}  // namespace

// The fetching thread and its loop: when (schedule), where (discovery), what is used
// (installer), what is shown (monitor).
struct RemoteKeys::State {
  State(RemoteKeysOptions options_in, Authenticator& authenticator)
      : options(std::move(options_in)),
        jwks_url(configured_jwks_url(options)),
        discovery(discovery_of(options)),
        tls(make_client_tls_context(options.ca_file)),
        schedule(options.min_refresh, Clock::now()),
        installer(authenticator, options.verifier),
        monitor(to_string(source())) {}

  // Where the keys are fetched from, as the start-up log and /readyz name it until a fetch
  // has succeeded.
  const Url& source() const { return jwks_url ? *jwks_url : *discovery; }

  FetchLimits limits() const {
    return {.max_body_bytes = options.max_document_bytes,
            .timeout = options.fetch_timeout,
            .max_redirects = options.max_redirects};
  }

  asio::awaitable<void> run();
  // One fetch: discovery when the JWKS URL is not known yet, then the JWKS. The interval to
  // the next refresh, or why the keys in force stay.
  asio::awaitable<std::variant<seconds, KeyFetchFailure>> fetch();
  // Wakes the loop to look at the schedule again (from any thread).
  void wake() {
    asio::post(io, [this] { timer.cancel(); });
  }

  const RemoteKeysOptions options;
  // The fetching thread's own once it runs: where the keys are (the JWKS URL is forgotten, to
  // be discovered again, when it answers an HTTP error).
  std::optional<Url> jwks_url;
  const std::optional<Url> discovery;
  asio::io_context io{1};
  asio::ssl::context tls;
  asio::steady_timer timer{io};
  std::thread thread;
  std::atomic<bool> stopping{false};
  RefreshSchedule schedule;
  KeyInstaller installer;
  KeySourceMonitor monitor;
};

asio::awaitable<std::variant<seconds, KeyFetchFailure>> RemoteKeys::State::fetch() {
  if (!jwks_url) {
    auto found = co_await discover_jwks_url(*discovery, options.issuer, limits(), tls);
    if (auto* failure = std::get_if<KeyFetchFailure>(&found)) co_return std::move(*failure);
    jwks_url = std::get<Url>(found);
  }
  auto fetched = co_await fetch_document(*jwks_url, limits(), tls);
  if (const auto* error = std::get_if<FetchError>(&fetched)) {
    // A discovered jwks_uri that has gone away is looked up again next time.
    if (discovery && error->failure == FetchFailure::status) jwks_url.reset();
    co_return fetch_failure(*error, "JWKS");
  }
  const auto& document = std::get<FetchedDocument>(fetched);
  const auto interval = refresh_interval(options, document.cache_control);
  auto installed = installer.install(*jwks_url, document, interval);
  if (auto* failure = std::get_if<KeyFetchFailure>(&installed)) co_return std::move(*failure);
  const auto& keys = std::get<KeyInstaller::Installed>(installed);
  monitor.fetch_succeeded(to_string(*jwks_url), keys.keys, keys.refused_keys);
  co_return interval;
}

asio::awaitable<void> RemoteKeys::State::run() {
  auto interval = options.refresh.value_or(kDefaultRefresh);
  for (;;) {
    // Sleep until the schedule says a fetch is due; an ask wakes the loop to look again.
    for (auto wake = schedule.next_fetch(); Clock::now() < wake; wake = schedule.next_fetch()) {
      timer.expires_at(wake);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (stopping.load()) co_return;
    }
    schedule.fetch_started(Clock::now());
    const auto fetched = co_await fetch();
    if (stopping.load()) co_return;
    if (const auto* next = std::get_if<seconds>(&fetched)) {
      interval = *next;
      schedule.fetch_succeeded(Clock::now(), interval);
    } else {
      const auto delay = schedule.fetch_failed(Clock::now(), interval);
      monitor.fetch_failed(std::get<KeyFetchFailure>(fetched), delay);
    }
  }
}

RemoteKeys::RemoteKeys(RemoteKeysOptions options, Authenticator& authenticator)
    : state_(std::make_unique<State>(std::move(options), authenticator)) {
  if (const auto warning = plaintext_warning(state_->source())) spdlog::warn("{}", *warning);
  // On the request path: no lock, no wait.
  authenticator.on_key_miss([state = state_.get()](TokenError reason) {
    if (state->stopping.load(std::memory_order_relaxed)) return seconds{0};
    const auto ask = state->schedule.ask_for_token(Clock::now());
    if (ask.first) {
      state->monitor.token_asked(reason);
      state->wake();
    }
    return ask.retry_after;
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

bool RemoteKeys::refresh_now() noexcept {
  if (state_->stopping.load(std::memory_order_relaxed)) return false;
  if (!state_->schedule.ask_for_operator()) return false;
  state_->wake();
  return true;
}

KeySourceStatus RemoteKeys::status() const {
  return state_->monitor.status();
}

std::uint64_t RemoteKeys::fetches(FetchOutcome outcome) const noexcept {
  return state_->monitor.fetches(outcome);
}

std::uint64_t RemoteKeys::unknown_kid_refreshes() const noexcept {
  return state_->monitor.unknown_kid_refreshes();
}

std::uint64_t RemoteKeys::bad_signature_refreshes() const noexcept {
  return state_->monitor.bad_signature_refreshes();
}

}  // namespace attempts::auth
