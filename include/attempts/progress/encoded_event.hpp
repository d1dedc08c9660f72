#pragma once

#include <memory>
#include <string>

#include "attempts/codec/gzip_pieces.hpp"

namespace attempts::progress {

// An event as the streams send it, built once and shared by every stream of its exam: its text
// (progress_events.hpp), and that text deflated once for the streams whose client takes gzip,
// which browsers always do. A changes event of a busy 20,000-attempt exam is 3.8 MB of text and
// about 0.5 MB deflated, sent to each of the exam's streams every interval.
struct EncodedEvent {
  explicit EncodedEvent(std::string event_text)
      : text(std::move(event_text)), gzip(codec::deflate_piece(text)) {}

  std::string text;
  codec::DeflatedPiece gzip;
};

using SharedEvent = std::shared_ptr<const EncodedEvent>;

inline SharedEvent make_event(std::string text) {
  return std::make_shared<const EncodedEvent>(std::move(text));
}

}  // namespace attempts::progress
