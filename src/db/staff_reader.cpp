#include "attempts/db/staff_reader.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <unordered_map>

#include "export_job.hpp"
#include "export_rows.hpp"
#include "pqxx_connection.hpp"
#include "progress_rows.hpp"
#include "sql.hpp"
#include "staff_connection.hpp"
#include "statement_codec.hpp"

namespace attempts::db {

// A read for the progress streams: a stream's right to an exam, or an exam's changed attempts.
struct ProgressJob {
  bool authorize = false;
  ExamId exam = 0;
  std::optional<std::string> staff_id;  // authorize
  std::optional<UnixMicros> since;      // changed attempts
  std::chrono::steady_clock::time_point deadline;
  ProgressReads::Completion done;
};

// A job waiting for a worker: an export, a staff member's read of one attempt, or a progress
// read.
struct StaffJob {
  enum State { queued, taken, expired };

  std::shared_ptr<ExportJob> export_job;
  std::optional<ProgressJob> progress;
  // A read: the caller's call (alive until completed), its loop, and the timer that answers it
  // at its deadline if no worker has taken it by then.
  StoreCall* call = nullptr;
  StoreCompletion* completion = nullptr;
  boost::asio::io_context* loop = nullptr;
  std::optional<boost::asio::steady_timer> deadline_timer;
  std::atomic<int> state{queued};
};

namespace {

constexpr int kWorkerNiceness = 10;

std::int64_t unix_seconds_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// --- the ports, one per event loop ---------------------------------------------------------------

// A staff member's read of one attempt or its history (StoreCall::staff_id set).
class LoopStaffStore final : public AttemptStore {
 public:
  LoopStaffStore(StaffReader& reader, boost::asio::io_context& loop)
      : reader_(reader), loop_(loop) {}

  void execute(StoreCall& call, StoreCompletion& completion) override {
    auto job = std::make_shared<StaffJob>();
    job->call = &call;
    job->completion = &completion;
    job->loop = &loop_;
    // Answered by its deadline whatever the workers do: they may all be busy with exports.
    job->deadline_timer.emplace(loop_, call.deadline);
    job->deadline_timer->async_wait([job](const boost::system::error_code& ec) {
      int queued = StaffJob::queued;
      if (ec || !job->state.compare_exchange_strong(queued, StaffJob::expired)) return;
      job->call->outcome = StoreOutcome::unavailable;
      job->completion->on_store_complete(*job->call);
    });
    if (!reader_.enqueue(job)) {
      int queued = StaffJob::queued;
      if (!job->state.compare_exchange_strong(queued, StaffJob::expired)) return;
      job->deadline_timer->cancel();
      boost::asio::post(loop_, [job] {
        job->call->outcome = StoreOutcome::overloaded;
        job->completion->on_store_complete(*job->call);
      });
    }
  }

 private:
  StaffReader& reader_;
  boost::asio::io_context& loop_;
};

class LoopExports final : public AttemptExports {
 public:
  LoopExports(StaffReader& reader, boost::asio::io_context& loop) : reader_(reader), loop_(loop) {}

  void open(ExportCall& call, ExportCompletion& completion) override {
    auto job = std::make_shared<ExportJob>(loop_, call, completion,
                                           [this](ExportCall& over) { jobs_.erase(&over); });
    jobs_[&call] = job;
    // A refusal reaches the call through the job too: a cancel() before it lands stops it.
    if (!reader_.admit_export()) {
      reader_.metrics_.exports_refused.fetch_add(1, std::memory_order_relaxed);
      return job->deliver(ExportOutcome::busy, 0);
    }
    auto queued = std::make_shared<StaffJob>();
    queued->export_job = job;
    if (!reader_.enqueue(std::move(queued))) {
      reader_.export_ended();
      job->deliver(ExportOutcome::unavailable, 0, "too many staff jobs waiting");
    }
  }

  void next(ExportCall& call) override {
    if (const auto found = jobs_.find(&call); found != jobs_.end()) found->second->request_next();
  }

  void cancel(ExportCall& call) override {
    const auto found = jobs_.find(&call);
    if (found == jobs_.end()) return;
    found->second->abandon();
    jobs_.erase(found);
  }

 private:
  StaffReader& reader_;
  boost::asio::io_context& loop_;
  // The exports of this loop's connections that are not over: at most one per connection.
  std::unordered_map<ExportCall*, std::shared_ptr<ExportJob>> jobs_;
};

// The progress streams' reads: completed on the worker's thread (the hub posts them on).
class StaffProgressReads final : public ProgressReads {
 public:
  explicit StaffProgressReads(StaffReader& reader) : reader_(reader) {}

  void authorize(ExamId exam, std::optional<std::string> staff_id,
                 std::chrono::steady_clock::time_point deadline, Completion done) override {
    enqueue({true, exam, std::move(staff_id), std::nullopt, deadline, std::move(done)});
  }

  void changed_since(ExamId exam, std::optional<UnixMicros> since,
                     std::chrono::steady_clock::time_point deadline, Completion done) override {
    enqueue({false, exam, std::nullopt, since, deadline, std::move(done)});
  }

 private:
  void enqueue(ProgressJob progress) {
    auto job = std::make_shared<StaffJob>();
    job->progress = std::move(progress);
    if (reader_.enqueue(job)) return;
    ProgressReadResult refused;
    refused.problem = "too many staff jobs waiting, or the server is stopping";
    job->progress->done(std::move(refused));
  }

  StaffReader& reader_;
};

// --- StaffReader ---------------------------------------------------------------------------------

StaffReader::StaffReader(runtime::EventLoops& loops, StaffReaderOptions options)
    : loops_(loops),
      options_(std::move(options)),
      export_started_at_(
          new std::atomic<std::int64_t>[std::max<std::size_t>(options_.connections, 1)] {}) {
  for (std::size_t loop = 0; loop < loops_.size(); ++loop) {
    stores_.push_back(std::make_unique<LoopStaffStore>(*this, loops_.context(loop)));
    exports_.push_back(std::make_unique<LoopExports>(*this, loops_.context(loop)));
  }
  progress_reads_ = std::make_unique<StaffProgressReads>(*this);
  // The connection string is checked now (throws std::invalid_argument), not in a worker.
  (void)pool_conninfo(options_.database_url);
  for (std::size_t worker = 0; worker < std::max<std::size_t>(options_.connections, 1); ++worker) {
    workers_.emplace_back([this, worker] { work(worker); });
  }
}

StaffReader::~StaffReader() {
  stop();
}

AttemptStore& StaffReader::store(std::size_t loop) {
  return *stores_.at(loop);
}

AttemptExports& StaffReader::exports(std::size_t loop) {
  return *exports_.at(loop);
}

ProgressReads& StaffReader::progress_reads() {
  return *progress_reads_;
}

std::chrono::seconds StaffReader::longest_export() const {
  std::int64_t oldest = 0;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    const std::int64_t started = export_started_at_[i].load(std::memory_order_relaxed);
    if (started != 0 && (oldest == 0 || started < oldest)) oldest = started;
  }
  return std::chrono::seconds(oldest == 0 ? 0
                                          : std::max<std::int64_t>(0, unix_seconds_now() - oldest));
}

bool StaffReader::admit_export() {
  std::int64_t running = metrics_.exports_running.load(std::memory_order_relaxed);
  do {
    if (running >= static_cast<std::int64_t>(options_.max_exports)) return false;
  } while (!metrics_.exports_running.compare_exchange_weak(running, running + 1,
                                                           std::memory_order_relaxed));
  return true;
}

void StaffReader::export_ended() {
  metrics_.exports_running.fetch_sub(1, std::memory_order_relaxed);
}

bool StaffReader::enqueue(std::shared_ptr<StaffJob> job) {
  {
    const std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= options_.queue_capacity) return false;
    // A progress read is short and its streams wait for it each interval: ahead of the rest.
    if (job->progress) {
      queue_.push_front(std::move(job));
    } else {
      queue_.push_back(std::move(job));
    }
  }
  work_available_.notify_one();
  return true;
}

void StaffReader::stop() {
  std::deque<std::shared_ptr<StaffJob>> left;
  {
    const std::lock_guard lock(mutex_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
    stopping_flag_.store(true, std::memory_order_relaxed);
    left.swap(queue_);
    // Running exports end at their workers' next poll: their clients are gone by now.
    for (const auto& job : running_) job->interrupt();
  }
  work_available_.notify_all();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  workers_.clear();
  for (const auto& job : left) {
    if (job->progress) {
      ProgressReadResult stopped;
      stopped.problem = "the server is stopping";
      job->progress->done(std::move(stopped));
      continue;
    }
    if (job->export_job) {
      export_ended();
      job->export_job->deliver(ExportOutcome::unavailable, 0, "the server is stopping");
      continue;
    }
    int queued = StaffJob::queued;
    if (!job->state.compare_exchange_strong(queued, StaffJob::taken)) continue;
    job->call->outcome = StoreOutcome::unavailable;
    boost::asio::io_context& loop = *job->loop;
    boost::asio::post(loop, [job = job] {
      job->deadline_timer->cancel();
      job->completion->on_store_complete(*job->call);
    });
  }
}

void StaffReader::work(std::size_t worker) {
  // Below the event loops: encoding an export's rows yields the CPU to the saves' threads
  // whenever they have work (nice 10; raising one's own niceness needs no privilege).
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kWorkerNiceness);
  StaffConnection connection(pool_conninfo(options_.database_url), options_.statement_timeout,
                             options_.connect_timeout);
  bool counted_up = false;
  for (;;) {
    std::shared_ptr<StaffJob> job;
    {
      std::unique_lock lock(mutex_);
      work_available_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      job = std::move(queue_.front());
      queue_.pop_front();
      if (job->export_job) running_.push_back(job->export_job);
    }
    std::string error;
    const bool open = connection.open(error);
    if (open != counted_up) {
      metrics_.connections_up.fetch_add(open ? 1 : -1, std::memory_order_relaxed);
      counted_up = open;
    }
    metrics_.connections_busy.fetch_add(1, std::memory_order_relaxed);
    if (job->progress) {
      if (open) {
        run_progress(connection, *job);
      } else {
        ProgressReadResult failed;
        failed.problem = "cannot connect: " + error;
        job->progress->done(std::move(failed));
      }
    } else if (job->export_job) {
      ExportJob& export_job = *job->export_job;
      if (!open) {
        spdlog::warn("staff reader {}: cannot connect: {}", worker, error);
        metrics_.exports_failed.fetch_add(1, std::memory_order_relaxed);
        export_ended();
        export_job.deliver(ExportOutcome::unavailable, 0, "cannot connect: " + error);
      } else {
        run_export(worker, connection, export_job);
      }
      const std::lock_guard lock(mutex_);
      std::erase(running_, job->export_job);
    } else {
      int queued = StaffJob::queued;
      if (job->state.compare_exchange_strong(queued, StaffJob::taken)) {
        if (open) {
          run_read(connection, *job);
        } else {
          spdlog::warn("staff reader {}: cannot connect: {}", worker, error);
          job->call->outcome = StoreOutcome::unavailable;
        }
        // The job goes with the completion: its timer is the loop's, destroyed there.
        boost::asio::io_context& loop = *job->loop;
        boost::asio::post(loop, [job = std::move(job)] {
          job->deadline_timer->cancel();
          job->completion->on_store_complete(*job->call);
        });
      }
    }
    metrics_.connections_busy.fetch_sub(1, std::memory_order_relaxed);
    const bool still_open = connection.is_open();
    if (still_open != counted_up) {
      metrics_.connections_up.fetch_add(still_open ? 1 : -1, std::memory_order_relaxed);
      counted_up = still_open;
    }
  }
  if (counted_up) metrics_.connections_up.fetch_sub(1, std::memory_order_relaxed);
}

void StaffReader::run_read(StaffConnection& connection, StaffJob& job) {
  StoreCall& call = *job.call;
  metrics_.reads.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::optional<std::string>> parameters{std::to_string(call.attempt_id),
                                                     call.staff_id};
  const char* statement = sql::kStaffLoadAttempt;
  if (call.kind == StoreCall::Kind::load_history) {
    statement = sql::kStaffLoadHistory;
    const HistoryQuery& query = call.history_query;
    parameters.push_back(query.before ? std::optional(std::to_string(*query.before))
                                      : std::nullopt);
    parameters.push_back(query.at);
    parameters.push_back(std::to_string(query.limit));
  }
  std::string error;
  const PgResultPtr result = connection.run(
      statement, parameters, [this] { return stopping_flag_.load(std::memory_order_relaxed); },
      call.deadline, error);
  if (!result || PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    metrics_.reads_failed.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("staff read of attempt {} failed: {}", call.attempt_id,
                 result ? error_message(*result) : error);
    call.outcome = StoreOutcome::unavailable;
    return;
  }
  call.outcome = StatementCodec::read_call(*result, call);
}

void StaffReader::run_progress(StaffConnection& connection, StaffJob& job) {
  ProgressJob& progress = *job.progress;
  metrics_.progress_reads.fetch_add(1, std::memory_order_relaxed);
  const auto stop = [this] { return stopping_flag_.load(std::memory_order_relaxed); };
  ProgressReadResult result;
  std::string error;
  const std::optional<std::string> exam = std::to_string(progress.exam);
  if (progress.authorize) {
    const std::optional<std::string> parameters[] = {exam, progress.staff_id};
    const PgResultPtr rows =
        connection.run(sql::kProgressAuthorize, parameters, stop, progress.deadline, error);
    if (!rows || PQresultStatus(rows.get()) != PGRES_TUPLES_OK) {
      result.problem = rows ? error_message(*rows) : error;
    } else {
      const bool allowed =
          PQgetvalue(rows.get(), 0, 0)[0] == 't' && PQgetvalue(rows.get(), 0, 1)[0] == 't';
      result.outcome = allowed ? ProgressReadOutcome::done : ProgressReadOutcome::not_found;
    }
  } else {
    const std::optional<std::string> parameters[] = {
        exam, progress.since ? std::optional(std::to_string(*progress.since)) : std::nullopt};
    const PgResultPtr rows =
        connection.run(sql::kProgressChanged, parameters, stop, progress.deadline, error);
    if (!rows || PQresultStatus(rows.get()) != PGRES_TUPLES_OK) {
      result.problem = rows ? error_message(*rows) : error;
    } else {
      read_progress_rows(*rows, result);
    }
  }
  progress.done(std::move(result));
}

void StaffReader::run_export(std::size_t worker, StaffConnection& connection, ExportJob& job) {
  if (job.abandoned()) {  // its client left while it waited for a connection
    export_ended();
    return;
  }
  metrics_.exports_started.fetch_add(1, std::memory_order_relaxed);
  export_started_at_[worker].store(unix_seconds_now(), std::memory_order_relaxed);
  const auto stop = [&] {
    return job.abandoned() || stopping_flag_.load(std::memory_order_relaxed);
  };
  // How it ended, said once the transaction is closed and the export no longer counts.
  ExportOutcome outcome = ExportOutcome::unavailable;
  std::size_t last_rows = 0;
  std::string problem;
  bool aborted = false;

  const auto fail = [&](const PgResultPtr& result, const std::string& error) {
    aborted = job.abandoned();
    problem = result ? error_message(*result) : error;
  };
  std::string error;
  const std::optional<std::string> exam = std::to_string(job.exam_id);
  if (connection.run_simple(sql::kExportBegin, error)) {
    const std::optional<std::string> authorize_parameters[] = {exam, job.staff_id};
    const PgResultPtr authorized = connection.run(sql::kExportAuthorize, authorize_parameters, stop,
                                                  job.first_deadline, error);
    const std::optional<std::string> declare_parameters[] = {
        exam,
        job.filter.submitted ? std::optional<std::string>(*job.filter.submitted ? "true" : "false")
                             : std::nullopt,
        job.filter.updated_since};
    if (!authorized || PQresultStatus(authorized.get()) != PGRES_TUPLES_OK) {
      fail(authorized, error);
    } else if (PQgetvalue(authorized.get(), 0, 0)[0] != 't' ||
               PQgetvalue(authorized.get(), 0, 1)[0] != 't') {
      outcome = ExportOutcome::not_found;
    } else if (const PgResultPtr declared = connection.run(sql::kExportDeclare, declare_parameters,
                                                           stop, job.first_deadline, error);
               !declared || PQresultStatus(declared.get()) != PGRES_COMMAND_OK) {
      fail(declared, error);
    } else {
      std::size_t rows_per_fetch =
          std::clamp<std::size_t>(options_.first_chunk_rows, 1, options_.max_chunk_rows);
      std::size_t largest_row = 1;
      ExportRowReader row_reader;
      const auto paced_from = Clock::now();
      std::size_t delivered = 0;
      for (bool first = true;; first = false) {
        const std::string fetch = std::string(sql::kExportFetchPrefix) +
                                  std::to_string(rows_per_fetch) + sql::kExportFetchSuffix;
        // The first rows by the request's deadline; later ones within the statement timeout
        // (the server's own limit), with a margin for the round trip.
        const auto deadline =
            first ? job.first_deadline
                  : Clock::now() + options_.statement_timeout + std::chrono::seconds(5);
        const PgResultPtr rows = connection.run(fetch.c_str(), {}, stop, deadline, error);
        if (!rows || PQresultStatus(rows.get()) != PGRES_TUPLES_OK) {
          fail(rows, error);
          break;
        }
        std::string& chunk = job.buffer();
        if (first) job.encoder.begin(chunk);
        const int count = PQntuples(rows.get());
        for (int row = 0; row < count; ++row) {
          const std::size_t before = chunk.size();
          job.encoder.row(row_reader.read(*rows, row), chunk);
          largest_row = std::max(largest_row, chunk.size() - before);
        }
        metrics_.export_rows.fetch_add(static_cast<std::uint64_t>(count),
                                       std::memory_order_relaxed);
        metrics_.export_bytes.fetch_add(chunk.size(), std::memory_order_relaxed);
        if (static_cast<std::size_t>(count) < rows_per_fetch) {
          // The cursor is exhausted: the last chunk goes once the transaction is closed.
          outcome = ExportOutcome::finished;
          last_rows = static_cast<std::size_t>(count);
          break;
        }
        job.deliver(ExportOutcome::rows, static_cast<std::size_t>(count));
        delivered += static_cast<std::size_t>(count);
        // As many rows as fit in a chunk, judged by the largest row so far.
        rows_per_fetch =
            std::clamp<std::size_t>(options_.chunk_bytes / largest_row, 1, options_.max_chunk_rows);
        // The pace (--export-rate): the next rows no sooner than the rows so far allow.
        if (options_.rows_per_second > 0 &&
            !job.pause_until(paced_from + std::chrono::microseconds(delivered * 1000000 /
                                                                    options_.rows_per_second))) {
          aborted = true;
          break;
        }
        // Backpressure: nothing more is read until the client has taken this chunk.
        if (!job.wait_for_demand(options_.client_timeout)) {
          aborted = true;
          break;
        }
      }
    }
  } else {
    problem = error;
  }
  // Read only: COMMIT and ROLLBACK end it alike; a broken connection has ended it already.
  if (connection.is_open() &&
      !connection.run_simple(
          outcome == ExportOutcome::finished ? sql::kExportEnd : sql::kExportAbandon, error)) {
    connection.close();
  }
  export_started_at_[worker].store(0, std::memory_order_relaxed);
  export_ended();
  if (aborted || job.abandoned()) {
    metrics_.exports_aborted.fetch_add(1, std::memory_order_relaxed);
    return;  // nobody to tell
  }
  if (outcome == ExportOutcome::finished) {
    metrics_.exports_finished.fetch_add(1, std::memory_order_relaxed);
  } else if (outcome == ExportOutcome::unavailable) {
    metrics_.exports_failed.fetch_add(1, std::memory_order_relaxed);
  }
  job.deliver(outcome, last_rows, std::move(problem));
}

}  // namespace attempts::db
