#include "attempts/progress/progress_hub.hpp"

#include <boost/asio/post.hpp>
#include <random>

#include "exam_watch.hpp"

namespace attempts::progress {
namespace {

// A token that tells this process's watch of an exam from any other (another instance, a
// restart, a watch dropped and made again): ids of another watch resume nothing.
std::string new_watch_token() {
  static constexpr std::string_view kAlphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::string token(12, '0');
  for (char& c : token) c = kAlphabet[random() % kAlphabet.size()];
  return token;
}

}  // namespace

ProgressHub::ProgressHub(runtime::EventLoops& loops, ProgressReads& reads, ProgressOptions options)
    : loops_(loops), reads_(reads), options_(std::move(options)) {}

ProgressHub::~ProgressHub() {
  stop();
}

std::shared_ptr<ProgressStream> ProgressHub::open(boost::asio::io_context& loop,
                                                  ProgressListener& listener, ExamId exam,
                                                  std::optional<std::string> staff_id,
                                                  std::optional<std::string> last_event_id,
                                                  bool gzip) {
  std::int64_t open = metrics_.streams_open.load(std::memory_order_relaxed);
  do {
    if (open >= static_cast<std::int64_t>(options_.max_streams) ||
        stopped_.load(std::memory_order_relaxed)) {
      metrics_.streams_refused.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
  } while (!metrics_.streams_open.compare_exchange_weak(open, open + 1, std::memory_order_relaxed));
  auto stream = std::make_shared<ProgressStream>(loop, listener, gzip);
  stream->last_event_id_ = std::move(last_event_id);
  // Every stream's right to the exam is checked in the database, as for an export; only the
  // attempts come from memory.
  reads_.authorize(exam, std::move(staff_id),
                   std::chrono::steady_clock::now() + options_.read_timeout,
                   [this, stream, exam](ProgressReadResult result) {
                     boost::asio::post(stream->loop_,
                                       [this, stream, exam, result = std::move(result)]() mutable {
                                         on_authorized(stream, exam, std::move(result));
                                       });
                   });
  return stream;
}

void ProgressHub::on_authorized(const std::shared_ptr<ProgressStream>& stream, ExamId exam,
                                ProgressReadResult result) {
  if (stream->closed_ || stream->listener_ == nullptr) return;
  if (result.outcome != ProgressReadOutcome::done) {
    return stream->listener_->on_progress_refused(result.outcome);
  }
  const std::lock_guard lock(mutex_);
  auto& watch = watches_[exam];
  if (!watch) {
    watch = std::make_shared<ExamWatch>(*this, loops_.context(exam % loops_.size()), exam,
                                        new_watch_token());
    metrics_.watched_exams.fetch_add(1, std::memory_order_relaxed);
    watch->start();
  }
  stream->watch_ = watch;
  watch->subscribe(stream);
}

SharedEvent ProgressHub::snapshot(ProgressStream& stream) {
  if (!stream.watch_) return nullptr;
  auto event = stream.watch_->snapshot(stream.forms_);
  if (event) metrics_.snapshots_slow_consumer.fetch_add(1, std::memory_order_relaxed);
  return event;
}

void ProgressHub::close(ProgressStream& stream) {
  if (stream.closed_) return;
  stream.closed_ = true;
  stream.listener_ = nullptr;
  metrics_.streams_open.fetch_sub(1, std::memory_order_relaxed);
  const auto watch = std::move(stream.watch_);
  if (!watch) return;
  const std::lock_guard lock(mutex_);
  if (watch->unsubscribe(stream) > 0) return;
  // The last stream of the exam: nobody watches it any more, and it costs nothing from now on.
  if (const auto found = watches_.find(watch->exam());
      found != watches_.end() && found->second == watch) {
    watches_.erase(found);
    metrics_.watched_exams.fetch_sub(1, std::memory_order_relaxed);
  }
  watch->stop();
}

void ProgressHub::stop() {
  if (stopped_.exchange(true)) return;
  const std::lock_guard lock(mutex_);
  for (const auto& [exam, watch] : watches_) watch->stop();
}

}  // namespace attempts::progress
