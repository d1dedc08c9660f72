#pragma once

#include <array>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include "attempts/codec/gzip_pieces.hpp"
#include "attempts/domain/attempt_exports.hpp"
#include "attempts/domain/attempt_store.hpp"
#include "attempts/http/http_metrics.hpp"
#include "attempts/http/request.hpp"
#include "attempts/http/request_handler.hpp"
#include "attempts/http/request_reader.hpp"
#include "attempts/http/types.hpp"
#include "attempts/progress/progress_hub.hpp"

namespace attempts::http {

using Executor = boost::asio::io_context::executor_type;
// Concrete executor types: no type-erased executor is copied on the request path.
using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
using Timer = boost::asio::basic_waitable_timer<
    std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>, Executor>;

struct SessionOptions {
  std::size_t body_limit = 64 * 1024;
  std::uint32_t header_limit = 8 * 1024;
  // Keep-alive: how long a connection may sit between requests.
  std::chrono::seconds idle_timeout{15};
  // From a request's first byte to its response, whatever the client or the database does.
  std::chrono::milliseconds request_timeout{10000};
  // Writing a response: how long a client that does not read it may hold it.
  std::chrono::seconds write_timeout{15};
  // After an error response the server stops sending and discards what the client still sends
  // for this long, so the client reads the response instead of a connection reset.
  std::chrono::milliseconds linger_timeout{1000};
  // One info line per request: peer, method, target, status, microseconds.
  bool access_log = false;
  // A progress stream: a comment after this long without writing anything else
  // (--progress-heartbeat); the events' interval, for the retry field (--progress-interval);
  // the bytes of events queued behind the one being written before the stream falls behind
  // (its queue is dropped for a fresh snapshot; the third time, it is ended).
  std::chrono::milliseconds progress_heartbeat{15000};
  std::chrono::milliseconds progress_interval{2000};
  std::size_t progress_queue_bytes = 8 << 20;
  unsigned progress_falls_behind = 3;

  // The read buffer's ceiling: a whole header, chunk-size line (extensions included) or
  // trailer section must fit in it, so none can grow without bound.
  std::size_t read_buffer_limit() const { return header_limit + 8 * 1024; }
};

class Session;

// The sessions of one event loop; used only on that loop's thread.
class LoopSessions {
 public:
  bool draining() const { return draining_; }
  std::size_t size() const { return sessions_.size(); }
  void add(Session& session);
  void remove(Session& session);
  // Asks every session to finish its current request and close; `on_empty` runs once, when the
  // last has gone (at once if there are none). Sessions added later close at once.
  void drain(std::function<void()> on_empty);

 private:
  std::unordered_set<Session*> sessions_;
  bool draining_ = false;
  std::function<void()> on_empty_;
};

// What every session of one event loop shares.
struct LoopServices {
  const RequestHandler& handler;
  AttemptStore& store;
  auth::TokenCache::Reader* tokens;  // the loop's way into the token cache; null with auth off
  const SessionOptions& options;
  LoopSessions& sessions;
  HttpMetrics& metrics;
  // Staff reads of one attempt, and exports: the staff reader's connections (db/staff_reader).
  AttemptStore& staff_store;
  AttemptExports& exports;
  // The progress streams of the process (null: the route answers 503).
  progress::ProgressHub* progress = nullptr;
};

// One client connection, on one event loop from accept to close. Requests are read and answered
// one at a time, so pipelined requests are answered in order:
//   wait for a first byte (idle timeout) -> read header -> (100 Continue) -> read body ->
//   handle (the store answers on this same thread) -> write (one contiguous buffer) -> again.
// One deadline per request, from its first byte to its response.
// An export streams instead (chunked): each chunk the store hands over is written, and only
// then is the next one asked for, so a client that reads slowly slows only its own export; a
// client that goes away (or a write that times out) cancels the export, which frees its
// database connection at once.
// A progress stream (session_progress.cpp) is written the same way, event by event: the
// events come from the exam's watch, shared with every other stream; those that arrive while
// one is written wait in a bounded queue.
class Session final : public std::enable_shared_from_this<Session>,
                      private StoreCompletion,
                      private ExportCompletion,
                      private progress::ProgressListener {
 public:
  Session(Socket&& socket, LoopServices services);
  ~Session();

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();
  // Finish the request in progress, if any, then close. On the session's loop only.
  void drain();

 private:
  enum class Phase {
    idle,
    reading,
    awaiting_store,
    awaiting_export,  // an export's next chunk
    streaming,        // a progress stream: its first event, or between and during events
    writing,
    lingering,
    closed
  };

  void do_wait_request();
  void begin_request();
  // Parses what the read buffer holds (up to the header's end if `header_only`); false (with
  // `ec`) if the request is malformed.
  bool parse_buffered(boost::beast::error_code& ec, bool header_only);
  void on_read_header(boost::beast::error_code ec, std::size_t bytes);
  void do_read_body();
  void on_read_body(boost::beast::error_code ec, std::size_t bytes);
  void on_read_error(boost::beast::error_code ec);
  void on_store_complete(StoreCall& call) override;
  void send(Response response, bool close_after);
  // The response's status in the metrics and the access log.
  void record(const Response& response);

  // --- an export (GET /exams/{id}/attempts), chunk by chunk
  void do_export();
  void on_export_step(ExportCall& call) override;
  void do_write_chunk(bool last);
  void on_write_chunk(bool last, boost::beast::error_code ec, std::size_t bytes);
  // Ends the export in progress, if any: its query is cancelled and no step completes after.
  void cancel_export();
  // --- a progress stream (GET /exams/{id}/progress), event by event (session_progress.cpp)
  void do_progress();
  void on_progress_event(progress::SharedEvent event) override;
  void on_progress_refused(ProgressReadOutcome why) override;
  void do_write_progress();
  void on_write_progress(boost::beast::error_code ec, std::size_t bytes);
  // The deadline passed while streaming: a heartbeat, a write timed out, or no first event.
  void on_progress_timer();
  // Ends the stream with the chunked terminator once what is being written is written.
  void end_progress();
  // Leaves the watch: nothing more reaches this session.
  void close_progress();

  std::string_view cors_fields(const Response& response) const;
  void on_write(bool keep_alive, boost::beast::error_code ec, std::size_t bytes);
  void do_linger();
  void on_linger(boost::beast::error_code ec, std::size_t bytes);
  void do_close();
  void release_memory();

  void set_deadline(std::chrono::steady_clock::time_point at);
  void on_timer(boost::beast::error_code ec);

  Socket socket_;
  Timer timer_;
  boost::beast::flat_buffer buffer_;
  LoopServices services_;

  Phase phase_ = Phase::idle;
  Request request_;                      // reused for every request of the connection
  std::optional<RequestReader> reader_;  // a fresh parser per request
  HeaderVerdict verdict_;
  StoreCall call_;
  std::shared_ptr<Session> self_while_stored_;  // alive while the store holds call_
  std::string write_buffer_;

  ExportCall export_;
  Response export_head_;      // sent with the first chunk
  bool export_open_ = false;  // opened, not over and not cancelled
  bool export_head_sent_ = false;
  bool export_chunked_ = true;  // false for an HTTP/1.0 client: the body ends at the close
  std::string chunk_prefix_;    // the head (first chunk only) and the chunk-size line
  std::shared_ptr<Session> self_while_exporting_;  // alive while a step is awaited

  std::shared_ptr<progress::ProgressStream> progress_;  // open, not closed
  std::shared_ptr<Session> self_while_streaming_;       // alive while the watch may post
  std::deque<progress::SharedEvent> progress_queue_;
  std::size_t progress_queued_bytes_ = 0;
  progress::SharedEvent progress_writing_;  // the event being written
  // The body's gzip state when the client takes gzip (each event is deflated once, for every
  // stream: codec/gzip_pieces.hpp); what follows an event's bytes in its write.
  std::optional<codec::GzipBody> progress_gzip_;
  std::string progress_tail_;
  bool progress_head_sent_ = false;
  bool progress_write_pending_ = false;  // a write is under way
  bool progress_needs_snapshot_ = false;
  bool progress_heartbeat_due_ = false;
  bool progress_ending_ = false;
  bool progress_chunked_ = true;
  unsigned progress_fell_behind_ = 0;
  ExamId progress_exam_ = 0;

  // One timer, armed lazily: it is never later than deadline_, and re-armed only when the
  // deadline moves earlier, so a busy connection does not cancel and re-arm it per request.
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::time_point timer_armed_ = std::chrono::steady_clock::time_point::max();
  bool timed_out_ = false;

  std::chrono::steady_clock::time_point started_;
  std::string access_line_;  // "peer method target" of the request, when access_log is on
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_request_ = false;
  bool draining_ = false;
};

}  // namespace attempts::http
