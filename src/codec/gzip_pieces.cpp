#include "attempts/codec/gzip_pieces.hpp"

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace attempts::codec {
namespace {

void append_le32(std::string& out, std::uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>(value >> shift));
}

std::uint32_t crc32_of(std::string_view text) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (!text.empty()) {
    const auto length = static_cast<uInt>(std::min<std::size_t>(text.size(), 1U << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(text.data()), length);
    text.remove_prefix(length);
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace

DeflatedPiece deflate_piece(std::string_view text) {
  DeflatedPiece piece;
  piece.size = text.size();
  piece.crc32 = crc32_of(text);
  if (text.empty()) return piece;
  if (text.size() > std::numeric_limits<uInt>::max() / 2) {
    throw std::length_error("deflate_piece: text too long");
  }
  z_stream stream{};
  // Raw deflate (negative window bits): the gzip header and trailer are the body's.
  if (deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflate_piece: deflateInit2 failed");
  }
  // deflateBound covers Z_FINISH; a sync flush adds at most an empty stored block (5 bytes)
  // and the bits before it.
  piece.bytes.resize(deflateBound(&stream, static_cast<uLong>(text.size())) + 16);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(piece.bytes.data());
  stream.avail_out = static_cast<uInt>(piece.bytes.size());
  // Z_SYNC_FLUSH: every byte is out, aligned to a byte, and no block is marked last.
  const int result = deflate(&stream, Z_SYNC_FLUSH);
  const bool complete = result == Z_OK && stream.avail_in == 0 && stream.avail_out > 0;
  piece.bytes.resize(piece.bytes.size() - stream.avail_out);
  deflateEnd(&stream);
  if (!complete) throw std::runtime_error("deflate_piece: deflate did not complete");
  return piece;
}

std::string_view GzipBody::header() {
  static constexpr char kHeader[] = {'\x1f', '\x8b', '\x08', 0, 0, 0, 0, 0, 0, '\xff'};
  return {kHeader, sizeof kHeader};
}

void GzipBody::add(const DeflatedPiece& piece) {
  crc32_ = static_cast<std::uint32_t>(
      crc32_combine(crc32_, piece.crc32, static_cast<z_off_t>(piece.size)));
  size_ += piece.size;
}

std::string GzipBody::end() const {
  // A last block of fixed Huffman codes holding only its end code: bits 1 (last), 01 (fixed),
  // then seven zero bits.
  std::string out{'\x03', '\x00'};
  append_le32(out, crc32_);
  append_le32(out, static_cast<std::uint32_t>(size_));  // ISIZE: the length modulo 2^32
  return out;
}

}  // namespace attempts::codec
