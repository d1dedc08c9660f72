#include "attempts/runtime/event_loops.hpp"

#include <boost/asio/post.hpp>
#include <thread>

namespace attempts::runtime {

EventLoops::EventLoops(std::size_t count) {
  loops_.reserve(count);
  for (std::size_t i = 0; i < count; ++i) loops_.push_back(std::make_unique<Loop>());
}

EventLoops::~EventLoops() = default;

void EventLoops::run() {
  std::vector<std::thread> threads;
  threads.reserve(loops_.size() - 1);
  for (std::size_t i = 1; i < loops_.size(); ++i) {
    threads.emplace_back([&context = loops_[i]->context] { context.run(); });
  }
  loops_[0]->context.run();
  for (auto& thread : threads) thread.join();
}

void EventLoops::release() {
  // Each guard belongs to its loop's thread; reset it there.
  for (auto& loop : loops_) {
    boost::asio::post(loop->context, [&work = loop->work] { work.reset(); });
  }
}

void EventLoops::stop() {
  for (auto& loop : loops_) loop->context.stop();
}

}  // namespace attempts::runtime
