#pragma once

#include <memory>
#include <string>

#include "attempts/codec/gzip_pieces.hpp"

namespace attempts::progress {

// Which forms of an event its streams need: the text for clients that take no gzip, the
// deflated piece for those that do (browsers always do).
struct EventForms {
  bool text = false;
  bool gzip = false;

  EventForms operator|(EventForms other) const { return {text || other.text, gzip || other.gzip}; }
  bool covers(EventForms other) const { return (text || !other.text) && (gzip || !other.gzip); }
};

// An event as the streams send it, built once and shared by every stream of its exam, in the
// forms they need. A changes event of a busy 20,000-attempt exam is 3.8 MB of text and about
// 0.5 MB deflated, sent to each of the exam's streams every interval, and held until the slowest
// has it: when every stream takes gzip the text is not kept.
struct EncodedEvent {
  EncodedEvent(std::string event_text, EventForms wanted)
      : gzip(wanted.gzip ? codec::deflate_piece(event_text) : codec::DeflatedPiece{}),
        text(wanted.text ? std::move(event_text) : std::string()),
        forms(wanted) {}

  codec::DeflatedPiece gzip;
  std::string text;
  EventForms forms;
};

using SharedEvent = std::shared_ptr<const EncodedEvent>;

inline SharedEvent make_event(std::string text, EventForms forms) {
  return std::make_shared<const EncodedEvent>(std::move(text), forms);
}

}  // namespace attempts::progress
