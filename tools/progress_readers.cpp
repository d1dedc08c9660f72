// The progress benchmark's silent proctors (scripts/bench-progress.sh): STREAMS connections to
// GET /exams/{EXAM}/progress on 127.0.0.1:PORT that read every byte and discard it, in one
// epoll loop, so that the readers cost the shared machine little more than the kernel's copies
// (as wrk is for the saves). The events are checked and timed by bench/progress-streams.mjs on
// a few streams of their own. Runs until SIGTERM or SIGINT, then prints one line:
//   readers: streams=N open=N refused=N bytes=N
//
//   PORT=8080 EXAM=1 TOKEN=... STREAMS=196 ENCODING=gzip attempts-progress-readers
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

volatile std::sig_atomic_t stop_requested = 0;

void on_signal(int) {
  stop_requested = 1;
}

std::string environment(const char* name, const char* fallback = nullptr) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    if (fallback != nullptr) return fallback;
    std::fprintf(stderr, "attempts-progress-readers: %s is not set\n", name);
    std::exit(2);
  }
  return value;
}

struct Stream {
  int fd = -1;
  bool head_checked = false;
};

}  // namespace

int main() {
  const int port = std::atoi(environment("PORT").c_str());
  const std::string exam = environment("EXAM");
  const std::string token = environment("TOKEN");
  const int count = std::atoi(environment("STREAMS").c_str());
  const bool gzip = environment("ENCODING", "gzip") == "gzip";
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);

  std::string request = "GET /exams/" + exam + "/progress HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                        "Authorization: Bearer " + token + "\r\nAccept: text/event-stream\r\n";
  if (gzip) request += "Accept-Encoding: gzip, deflate, br\r\n";
  request += "\r\n";

  const int epoll = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Stream> streams(static_cast<std::size_t>(count > 0 ? count : 0));
  int open = 0;
  int refused = 0;
  for (std::size_t i = 0; i < streams.size(); ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(request.size())) {
      std::perror("attempts-progress-readers: connect");
      if (fd >= 0) close(fd);
      continue;
    }
    streams[i].fd = fd;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = i;
    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
    ++open;
  }

  static char buffer[1 << 18];
  unsigned long long bytes = 0;
  std::vector<epoll_event> ready(64);
  while (stop_requested == 0 && open > 0) {
    const int n = epoll_wait(epoll, ready.data(), static_cast<int>(ready.size()), 200);
    for (int k = 0; k < n; ++k) {
      Stream& stream = streams[ready[static_cast<std::size_t>(k)].data.u64];
      const ssize_t got = recv(stream.fd, buffer, sizeof buffer, 0);
      if (got <= 0) {
        close(stream.fd);
        stream.fd = -1;
        --open;
        continue;
      }
      if (!stream.head_checked) {
        stream.head_checked = true;
        if (got < 12 || std::memcmp(buffer, "HTTP/1.1 200", 12) != 0) ++refused;
      }
      bytes += static_cast<unsigned long long>(got);
    }
  }
  std::printf("readers: streams=%d open=%d refused=%d bytes=%llu\n", count, open, refused, bytes);
  return 0;
}
