#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace attempts::codec {

// One text deflated on its own (RFC 1951): no reference to anything before its first byte, and
// it ends on a byte boundary with a block that is not the last. Any sequence of such pieces
// behind a gzip header (RFC 1952) is one valid deflate stream, so a text sent to many gzip
// bodies, each holding a different sequence of texts, is compressed once rather than once per
// body: the progress streams share each event this way.
struct DeflatedPiece {
  std::string bytes;        // the deflate blocks (empty for an empty text)
  std::uint32_t crc32 = 0;  // CRC-32 of the text, for the body's trailer
  std::uint64_t size = 0;   // the text's length
};

// Deflates `text` at zlib's fastest level: the pieces are made on an event loop, and the level
// gains little on the JSON they carry (7.3x at level 1, 8.9x at level 6 on a progress event).
DeflatedPiece deflate_piece(std::string_view text);

// One gzip body made of pieces: header(), then the pieces' bytes in order (add() each one),
// then end(). What a client decompresses is the pieces' texts in that order; the trailer lets it
// check them (CRC-32 and length).
class GzipBody {
 public:
  // The 10-byte member header: deflate, no name, no time, unknown OS.
  static std::string_view header();

  void add(const DeflatedPiece& piece);
  // The last, empty block and the trailer (CRC-32 and length of every piece's text added).
  std::string end() const;

 private:
  std::uint32_t crc32_ = 0;
  std::uint64_t size_ = 0;
};

}  // namespace attempts::codec
