// The export's timestamps: PostgreSQL's ISO text of a timestamptz in UTC, made RFC 3339 as the
// rest of the API prints them (to_jsonb's form).

#include <gtest/gtest.h>

#include <array>

#include "db/export_rows.hpp"

namespace attempts::db {
namespace {

std::string converted(std::string_view iso) {
  std::array<char, 64> out{};
  return std::string(rfc3339_from_iso(iso, out.data()));
}

TEST(ExportTimestampTest, IsoTextInUtcBecomesRfc3339) {
  EXPECT_EQ(converted("2026-12-07 04:16:09.467741+00"), "2026-12-07T04:16:09.467741+00:00");
  EXPECT_EQ(converted("2026-12-07 04:16:09+00"), "2026-12-07T04:16:09+00:00");
  EXPECT_EQ(converted("2026-12-07 04:16:09.5+00"), "2026-12-07T04:16:09.5+00:00");
  // An offset with minutes (a session not in UTC) keeps them; a negative one too.
  EXPECT_EQ(converted("2026-12-07 09:46:09+05:30"), "2026-12-07T09:46:09+05:30");
  EXPECT_EQ(converted("2026-12-06 23:16:09-05"), "2026-12-06T23:16:09-05:00");
}

TEST(ExportTimestampTest, OtherTextIsLeftAsItIs) {
  EXPECT_EQ(converted("infinity"), "infinity");
  EXPECT_EQ(converted("-infinity"), "-infinity");
  EXPECT_EQ(converted(""), "");
}

}  // namespace
}  // namespace attempts::db
