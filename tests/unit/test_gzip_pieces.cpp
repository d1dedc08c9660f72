// Pieces deflated once and shared by many gzip bodies (codec/gzip_pieces.hpp), checked with
// zlib's own inflate: generated texts in generated orders make valid gzip bodies whose trailer
// zlib verifies, each piece decodes as soon as it arrives (a stream's event is readable before
// the next one), and a wrong trailer is caught.

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <string>
#include <vector>

#include "attempts/codec/gzip_pieces.hpp"

namespace attempts::codec {
namespace {

// Inflates a gzip body fed in parts: what came out after each part, and whether the member
// ended with a trailer zlib accepted.
struct Inflated {
  std::vector<std::string> after_each_part;
  bool complete = false;
  bool error = false;
};

Inflated gunzip_in_parts(const std::vector<std::string>& parts) {
  Inflated result;
  z_stream stream{};
  EXPECT_EQ(inflateInit2(&stream, 16 + 15), Z_OK);
  for (const auto& part : parts) {
    std::string out;
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(part.data()));
    stream.avail_in = static_cast<uInt>(part.size());
    char buffer[4096];
    for (;;) {
      stream.next_out = reinterpret_cast<Bytef*>(buffer);
      stream.avail_out = sizeof buffer;
      const int code = inflate(&stream, Z_SYNC_FLUSH);
      out.append(buffer, sizeof buffer - stream.avail_out);
      if (code == Z_STREAM_END) {
        result.complete = true;
        break;
      }
      if (code != Z_OK && code != Z_BUF_ERROR) {
        result.error = true;
        break;
      }
      if (stream.avail_in == 0 && stream.avail_out > 0) break;
    }
    result.after_each_part.push_back(std::move(out));
    if (result.error || result.complete) break;
  }
  inflateEnd(&stream);
  return result;
}

std::string generated_text(std::mt19937& random) {
  // JSON-like lines, sometimes empty, sometimes past deflate's 32 KiB window and 64 KiB blocks.
  const std::size_t rows = random() % 8 == 0 ? 0 : random() % 3000;
  std::string text = "event: changes\ndata: {\"attempts\":[";
  for (std::size_t i = 0; i < rows; ++i) {
    text += "{\"id\":" + std::to_string(random() % 100000) +
            ",\"answered\":" + std::to_string(random() % 41) + "},";
  }
  text += "]}\n\n";
  if (random() % 6 == 0) text.clear();
  return text;
}

TEST(GzipPiecesTest, GeneratedPiecesInGeneratedOrdersInflateToTheirTextsOneByOne) {
  const auto seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 random(seed);
  std::vector<std::string> texts;
  std::vector<DeflatedPiece> pieces;
  for (int i = 0; i < 12; ++i) {
    texts.push_back(generated_text(random));
    pieces.push_back(deflate_piece(texts.back()));
    EXPECT_EQ(pieces.back().size, texts.back().size());
    EXPECT_EQ(pieces.back().crc32, crc32(0, reinterpret_cast<const Bytef*>(texts.back().data()),
                                         static_cast<uInt>(texts.back().size())));
  }
  // Bodies that share the pieces, each a different sequence (repeats allowed), as streams that
  // joined at different times and skipped to snapshots would.
  for (int body_number = 0; body_number < 20; ++body_number) {
    GzipBody body;
    std::vector<std::string> parts{std::string(GzipBody::header())};
    std::vector<std::string> expected{""};
    const int count = static_cast<int>(random() % 10);
    for (int i = 0; i < count; ++i) {
      const auto which = random() % pieces.size();
      body.add(pieces[which]);
      parts.push_back(pieces[which].bytes);
      expected.push_back(texts[which]);
    }
    parts.push_back(body.end());
    expected.push_back("");
    const auto inflated = gunzip_in_parts(parts);
    ASSERT_FALSE(inflated.error) << "body " << body_number;
    EXPECT_TRUE(inflated.complete) << "body " << body_number;
    // Each piece's text is out as soon as its bytes are in, before the next piece arrives.
    EXPECT_EQ(inflated.after_each_part, expected) << "body " << body_number;
  }
}

TEST(GzipPiecesTest, AnEmptyBodyIsAValidGzipOfNothing) {
  const GzipBody body;
  const auto inflated = gunzip_in_parts({std::string(GzipBody::header()) + body.end()});
  EXPECT_FALSE(inflated.error);
  EXPECT_TRUE(inflated.complete);
  ASSERT_EQ(inflated.after_each_part.size(), 1u);
  EXPECT_EQ(inflated.after_each_part[0], "");
}

TEST(GzipPiecesTest, ATrailerThatDoesNotMatchThePiecesIsRejected) {
  const auto a = deflate_piece("id: w-1\nevent: snapshot\ndata: {}\n\n");
  const auto b = deflate_piece(": keep-alive\n\n");
  GzipBody counted_twice;
  counted_twice.add(a);
  counted_twice.add(b);
  counted_twice.add(b);  // b is counted but only sent once: the CRC and length disagree
  const auto inflated =
      gunzip_in_parts({std::string(GzipBody::header()) + a.bytes + b.bytes + counted_twice.end()});
  EXPECT_TRUE(inflated.error);
  EXPECT_FALSE(inflated.complete);
}

TEST(GzipPiecesTest, ALongRepetitiveEventShrinksSeveralTimes) {
  std::string event = "event: changes\ndata: {\"attempts\":[";
  for (int i = 0; i < 20000; ++i) {
    event += "{\"id\":" + std::to_string(1000000 + i) +
             ",\"answered\":12,\"updated_at\":\"2026-12-07T10:03:00.123456Z\"},";
  }
  const auto piece = deflate_piece(event);
  EXPECT_LT(piece.bytes.size() * 4, event.size());
}

}  // namespace
}  // namespace attempts::codec
