#include "attempts/db/shard_map.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <stdexcept>
#include <unordered_set>
#include <utility>

namespace attempts::db {
namespace {

constexpr std::uint32_t rotate_left(std::uint32_t x, int k) {
  return (x << k) | (x >> (32 - k));
}

// Bob Jenkins' lookup3 hash of one 32-bit word, as PostgreSQL 15 computes it in
// hash_bytes_uint32() (src/common/hashfn.c, REL_15_STABLE): the three state words start at the
// golden ratio plus the key length (4) plus 3923095, the key is added to the first, and the
// "final" mix of lookup3 leaves the result in the third.
constexpr std::uint32_t hash_bytes_uint32(std::uint32_t k) {
  std::uint32_t a = 0x9e3779b9u + 4u + 3923095u;
  std::uint32_t b = a;
  std::uint32_t c = a;
  a += k;
  // lookup3's final(a, b, c).
  c ^= b;
  c -= rotate_left(b, 14);
  a ^= c;
  a -= rotate_left(c, 11);
  b ^= a;
  b -= rotate_left(a, 25);
  c ^= b;
  c -= rotate_left(b, 16);
  a ^= c;
  a -= rotate_left(c, 4);
  b ^= a;
  b -= rotate_left(a, 14);
  c ^= b;
  c -= rotate_left(b, 24);
  return c;
}

std::string describe(const ShardRange& shard) {
  return "shard " + std::to_string(shard.shard_id) + " [" + std::to_string(shard.min_hash) + ", " +
         std::to_string(shard.max_hash) + "]";
}

template <typename Integer>
Integer parse_integer(const std::optional<std::string_view>& field, std::size_t row,
                      const char* column) {
  const auto where = [&] { return "shard map row " + std::to_string(row) + ", column " + column; };
  if (!field) throw std::invalid_argument(where() + ": NULL");
  Integer value{};
  const char* first = field->data();
  const char* last = first + field->size();
  const auto [end, error] = std::from_chars(first, last, value);
  if (error != std::errc{} || end != last || field->empty()) {
    throw std::invalid_argument(where() + ": not an integer in range: '" + std::string(*field) +
                                "'");
  }
  return value;
}

}  // namespace

// hashint8() in PostgreSQL 15 (src/backend/access/hash/hashfunc.c, REL_15_STABLE): the 64-bit
// value is folded into 32 bits, the low half XOR the high half (or XOR its complement when the
// value is negative, so that an int8 hashes like the int4 of the same value), and the result is
// hashed with hash_uint32(), i.e. hash_bytes_uint32(). Citus reads the uint32 as an int32.
std::int32_t citus_hash_int8(std::int64_t value) {
  const auto bits = static_cast<std::uint64_t>(value);
  const auto low = static_cast<std::uint32_t>(bits);
  const auto high = static_cast<std::uint32_t>(bits >> 32);
  const std::uint32_t folded = low ^ (value >= 0 ? high : ~high);
  return static_cast<std::int32_t>(hash_bytes_uint32(folded));
}

ShardMap::ShardMap(std::vector<ShardRange> shards) : shards_(std::move(shards)) {
  if (shards_.empty()) throw std::invalid_argument("shard map: no shards");
  std::unordered_set<std::int64_t> ids;
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    const auto& shard = shards_[i];
    if (shard.min_hash > shard.max_hash) {
      throw std::invalid_argument("shard map: " + describe(shard) + " has min > max");
    }
    if (!ids.insert(shard.shard_id).second) {
      throw std::invalid_argument("shard map: shard id " + std::to_string(shard.shard_id) +
                                  " appears twice (more than one placement?)");
    }
    if (i == 0) {
      if (shard.min_hash != std::numeric_limits<std::int32_t>::min()) {
        throw std::invalid_argument("shard map: the first range, " + describe(shard) +
                                    ", does not start at INT32_MIN");
      }
      continue;
    }
    const auto& previous = shards_[i - 1];
    if (shard.min_hash <= previous.min_hash) {
      throw std::invalid_argument("shard map: not sorted by min hash: " + describe(shard) +
                                  " comes after " + describe(previous));
    }
    // From here on previous.max_hash < shard.min_hash <= INT32_MAX, so the + 1 cannot overflow.
    if (shard.min_hash <= previous.max_hash) {
      throw std::invalid_argument("shard map: " + describe(shard) + " overlaps " +
                                  describe(previous));
    }
    if (shard.min_hash != previous.max_hash + 1) {
      throw std::invalid_argument("shard map: gap between " + describe(previous) + " and " +
                                  describe(shard));
    }
  }
  if (shards_.back().max_hash != std::numeric_limits<std::int32_t>::max()) {
    throw std::invalid_argument("shard map: the last range, " + describe(shards_.back()) +
                                ", does not end at INT32_MAX");
  }
}

std::size_t ShardMap::index_of_hash(std::int32_t hash) const {
  // The first shard whose range ends at or after the hash; the ranges cover every int32, so it
  // exists and starts at or before it.
  const auto it = std::partition_point(shards_.begin(), shards_.end(),
                                       [hash](const ShardRange& s) { return s.max_hash < hash; });
  return static_cast<std::size_t>(it - shards_.begin());
}

ShardMap parse_shard_map(std::span<const ShardMapRow> rows) {
  std::vector<ShardRange> shards;
  shards.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    ShardRange shard;
    shard.shard_id = parse_integer<std::int64_t>(row[0], i, "shardid");
    shard.min_hash = parse_integer<std::int32_t>(row[1], i, "shardminvalue");
    shard.max_hash = parse_integer<std::int32_t>(row[2], i, "shardmaxvalue");
    if (!row[3] || row[3]->empty()) {
      throw std::invalid_argument("shard map row " + std::to_string(i) +
                                  ", column nodename: NULL or empty");
    }
    const auto port = parse_integer<std::uint16_t>(row[4], i, "nodeport");
    const std::string_view host = *row[3];
    // An IPv6 address is bracketed, so that the port stays unambiguous.
    const bool ipv6 = host.find(':') != std::string_view::npos;
    if (ipv6) shard.node.push_back('[');
    shard.node.append(host);
    if (ipv6) shard.node.push_back(']');
    shard.node.push_back(':');
    shard.node.append(std::to_string(port));
    shard.routable = row[5] && *row[5] == "t";
    shards.push_back(std::move(shard));
  }
  return ShardMap(std::move(shards));
}

}  // namespace attempts::db
