#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

namespace attempts::runtime {

// The service's threads: each runs its own single-threaded io_context. A client connection
// lives on one loop from accept to close, together with the PostgreSQL connections its
// requests are written through, so a request never changes threads and nothing on its path
// needs a strand or a lock.
class EventLoops {
 public:
  using Executor = boost::asio::io_context::executor_type;

  explicit EventLoops(std::size_t count);
  ~EventLoops();

  EventLoops(const EventLoops&) = delete;
  EventLoops& operator=(const EventLoops&) = delete;

  std::size_t size() const { return loops_.size(); }
  boost::asio::io_context& context(std::size_t index) { return loops_[index]->context; }
  Executor executor(std::size_t index) { return loops_[index]->context.get_executor(); }

  // Runs loop 0 on the calling thread and the others on threads of their own; returns once
  // every loop has run out of work (after release()) or was stopped.
  void run();
  // Lets the loops end once their work is done (they otherwise wait for more). Thread-safe.
  void release();
  // Stops every loop at once, abandoning pending work. Thread-safe.
  void stop();

 private:
  struct Loop {
    // Concurrency hint 1: the context is only ever run by its one thread, so Asio may skip
    // its internal locking.
    boost::asio::io_context context{1};
    std::optional<boost::asio::executor_work_guard<Executor>> work{context.get_executor()};
  };
  std::vector<std::unique_ptr<Loop>> loops_;
};

}  // namespace attempts::runtime
