// pool_conninfo(): the connection string of a pool connection, and of a connection to a Citus
// node, which keeps everything of --database-url but the host and port.

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "db/pqxx_connection.hpp"

namespace attempts::db {
namespace {

TEST(PoolConninfoTest, ANodeKeepsUserPasswordDatabaseAndOptionsButNotTheHost) {
  const std::string node = pool_conninfo(
      "postgresql://app:s3cret@coordinator.example:6000,backup.example:6001/attempts"
      "?sslmode=require&hostaddr=10.0.0.1,10.0.0.2&application_name=mine",
      "10.1.2.3:5433");
  EXPECT_NE(node.find("user='app'"), std::string::npos) << node;
  EXPECT_NE(node.find("password='s3cret'"), std::string::npos) << node;
  EXPECT_NE(node.find("dbname='attempts'"), std::string::npos) << node;
  EXPECT_NE(node.find("sslmode='require'"), std::string::npos) << node;
  EXPECT_NE(node.find("application_name='mine'"), std::string::npos) << node;
  EXPECT_NE(node.find("host='10.1.2.3'"), std::string::npos) << node;
  EXPECT_NE(node.find("port='5433'"), std::string::npos) << node;
  EXPECT_EQ(node.find("coordinator.example"), std::string::npos) << node;
  EXPECT_EQ(node.find("hostaddr"), std::string::npos) << node;
  EXPECT_EQ(node.find("6000"), std::string::npos) << node;
}

TEST(PoolConninfoTest, AnIpv6NodeLosesItsBrackets) {
  const std::string node = pool_conninfo("host=db user=app", "[::1]:5432");
  EXPECT_NE(node.find("host='::1'"), std::string::npos) << node;
  EXPECT_NE(node.find("port='5432'"), std::string::npos) << node;
}

TEST(PoolConninfoTest, WithoutANodeTheOperatorsHostStays) {
  const std::string pool = pool_conninfo("postgresql://app@coordinator.example:6000/attempts");
  EXPECT_NE(pool.find("host='coordinator.example'"), std::string::npos) << pool;
  EXPECT_NE(pool.find("port='6000'"), std::string::npos) << pool;
}

TEST(PoolConninfoTest, ANodeWithoutAPortIsRefused) {
  EXPECT_THROW(pool_conninfo("host=db", "10.1.2.3"), std::invalid_argument);
  EXPECT_THROW(pool_conninfo("host=db", "10.1.2.3:"), std::invalid_argument);
}

}  // namespace
}  // namespace attempts::db
