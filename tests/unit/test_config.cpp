// Unit tests for configuration: flags, environment, defaults, validation, and redaction.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "attempts/config/config.hpp"

namespace attempts::config {
namespace {

using testing::HasSubstr;
using testing::Not;
using Action = ParseResult::Action;

EnvLookup env_of(std::map<std::string, std::string> variables) {
  return [variables = std::move(variables)](const std::string& name) -> std::optional<std::string> {
    const auto found = variables.find(name);
    if (found == variables.end()) return std::nullopt;
    return found->second;
  };
}

const EnvLookup kNoEnv = env_of({});

std::string listen_text(const Config& config) {
  return config.listen.host + ":" + std::to_string(config.listen.port);
}

// --- Defaults ---------------------------------------------------------------------------------

TEST(ConfigDefaultsTest, NoFlagsAndNoEnvironmentGiveTheDefaults) {
  const ParseResult result = parse_config({}, kNoEnv);
  ASSERT_EQ(result.action, Action::run) << result.message;
  const Config& config = result.config;
  EXPECT_EQ(config.listen.host, "0.0.0.0");
  EXPECT_EQ(config.listen.port, 8000);
  EXPECT_EQ(config.database_url, "postgresql:///attempts");
  EXPECT_EQ(config.pool_size, config.threads);  // one connection per event loop
  EXPECT_EQ(config.body_limit, 65536u);
  EXPECT_EQ(config.log_level, "info");
  EXPECT_EQ(config.max_batch, 256u);
  EXPECT_EQ(config.pipeline_depth, 1u);
  EXPECT_EQ(config.queue_capacity, 4096u);
  EXPECT_EQ(config.queue_bytes, 16u << 20);
  EXPECT_EQ(config.max_connections, 10000u);
  EXPECT_EQ(config.idle_timeout_seconds, 15u);
  EXPECT_EQ(config.request_timeout_seconds, 10u);
  EXPECT_EQ(config.shutdown_timeout_seconds, 10u);
  EXPECT_TRUE(result.message.empty());
}

TEST(ConfigDefaultsTest, ThreadsDefaultToTheHardwareConcurrency) {
  const ParseResult result = parse_config({}, kNoEnv);
  EXPECT_GE(result.config.threads, 1u);
  EXPECT_EQ(result.config.threads, std::max(1u, std::thread::hardware_concurrency()));
}

TEST(ConfigDefaultsTest, EveryEventLoopGetsAConnection) {
  const ParseResult threads_only = parse_config({"--threads=3"}, kNoEnv);
  ASSERT_EQ(threads_only.action, Action::run) << threads_only.message;
  EXPECT_EQ(threads_only.config.pool_size, 3u);
  // Without --threads, no more loops than connections.
  const ParseResult pool_only = parse_config({"--pool-size=1"}, kNoEnv);
  ASSERT_EQ(pool_only.action, Action::run) << pool_only.message;
  EXPECT_EQ(pool_only.config.threads, 1u);
  const ParseResult more = parse_config({"--threads=2", "--pool-size=6"}, kNoEnv);
  ASSERT_EQ(more.action, Action::run) << more.message;
  EXPECT_EQ(more.config.pool_size, 6u);
}

TEST(ConfigDefaultsTest, AuthenticationIsOnUnlessTurnedOff) {
  const ParseResult result = parse_config({}, kNoEnv);
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(result.config.auth, "jwt");
  EXPECT_EQ(result.config.durability, "unlogged");
  EXPECT_EQ(result.config.citus, "auto");
  EXPECT_EQ(result.config.citus_entry, "nodes");
  EXPECT_EQ(result.config.jwt_leeway_seconds, 30u);
  EXPECT_EQ(result.config.token_cache_size, 131072u);
  EXPECT_TRUE(result.config.jwt_issuer.empty());
  EXPECT_TRUE(result.config.jwt_audience.empty());
  EXPECT_EQ(result.config.jwt_student_claim, "sub");
}

TEST(ConfigTest, FewerConnectionsThanExplicitThreadsIsRefused) {
  const ParseResult result = parse_config({"--threads=4", "--pool-size=2"}, kNoEnv);
  EXPECT_EQ(result.action, Action::fail);
  EXPECT_THAT(result.message, HasSubstr("--pool-size 2 is below --threads 4"));
}

TEST(ConfigDefaultsTest, MissingEnvLookupMeansAnEmptyEnvironment) {
  const ParseResult result = parse_config({"--pool-size=3"}, EnvLookup{});
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(result.config.pool_size, 3u);
  EXPECT_EQ(result.config.database_url, "postgresql:///attempts");
}

TEST(ConfigDefaultsTest, ReadsOnlyTheDocumentedEnvironmentVariables) {
  std::set<std::string> asked;
  const EnvLookup recording = [&asked](const std::string& name) -> std::optional<std::string> {
    asked.insert(name);
    return std::nullopt;
  };
  parse_config({}, recording);
  const std::set<std::string> documented = {"LISTEN",
                                            "DATABASE_URL",
                                            "THREADS",
                                            "POOL_SIZE",
                                            "BODY_LIMIT",
                                            "LOG_LEVEL",
                                            "MAX_BATCH",
                                            "PIPELINE_DEPTH",
                                            "QUEUE_CAPACITY",
                                            "QUEUE_BYTES",
                                            "MAX_CONNECTIONS",
                                            "IDLE_TIMEOUT",
                                            "REQUEST_TIMEOUT",
                                            "SHUTDOWN_TIMEOUT",
                                            "CONFIG",
                                            "LOG_FORMAT",
                                            "ACCESS_LOG",
                                            "REUSE_PORT",
                                            "AUTH",
                                            "JWKS",
                                            "JWKS_URL",
                                            "OIDC_DISCOVERY",
                                            "JWKS_CA",
                                            "JWKS_REFRESH",
                                            "JWKS_MIN_REFRESH",
                                            "JWT_ISSUER",
                                            "JWT_AUDIENCE",
                                            "JWT_STUDENT_CLAIM",
                                            "JWT_LEEWAY",
                                            "TOKEN_CACHE_SIZE",
                                            "DURABILITY",
                                            "CITUS",
                                            "CITUS_ENTRY",
                                            "HISTORY",
                                            "HISTORY_RETENTION_DAYS",
                                            "STAFF_CLAIM",
                                            "STAFF_ROLE",
                                            "STAFF_ID_CLAIM",
                                            "STAFF_CONNECTIONS",
                                            "MAX_EXPORTS",
                                            "EXPORT_RATE",
                                            "STAFF_STATEMENT_TIMEOUT",
                                            "PROGRESS_INTERVAL",
                                            "PROGRESS_QUIET",
                                            "PROGRESS_HEARTBEAT",
                                            "MAX_PROGRESS_STREAMS",
                                            "PROGRESS_QUEUE_BYTES",
                                            "CORS_ORIGIN"};
  EXPECT_EQ(asked, documented);
}

// --- Every setting from a flag or from the environment ------------------------------------------

struct SettingCase {
  const char* flag;  // without "--"
  const char* env;
  const char* value;
  const char* other_value;  // also valid, different from `value`
  std::function<std::string(const Config&)> read;
};

void PrintTo(const SettingCase& setting, std::ostream* out) {
  *out << "--" << setting.flag;
}

class ConfigSettingTest : public testing::TestWithParam<SettingCase> {};

TEST_P(ConfigSettingTest, FlagWithEqualsSetsIt) {
  const auto& setting = GetParam();
  const ParseResult result =
      parse_config({std::string("--") + setting.flag + "=" + setting.value}, kNoEnv);
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(setting.read(result.config), setting.value);
}

TEST_P(ConfigSettingTest, FlagWithSeparateValueSetsIt) {
  const auto& setting = GetParam();
  const ParseResult result =
      parse_config({std::string("--") + setting.flag, setting.value}, kNoEnv);
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(setting.read(result.config), setting.value);
}

TEST_P(ConfigSettingTest, EnvironmentVariableSetsIt) {
  const auto& setting = GetParam();
  const ParseResult result = parse_config({}, env_of({{setting.env, setting.value}}));
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(setting.read(result.config), setting.value);
}

TEST_P(ConfigSettingTest, FlagBeatsEnvironmentVariable) {
  const auto& setting = GetParam();
  const ParseResult result = parse_config({std::string("--") + setting.flag + "=" + setting.value},
                                          env_of({{setting.env, setting.other_value}}));
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(setting.read(result.config), setting.value);
}

TEST_P(ConfigSettingTest, InvalidEnvironmentValueIsIgnoredWhenTheFlagIsGiven) {
  const auto& setting = GetParam();
  const ParseResult result = parse_config({std::string("--") + setting.flag + "=" + setting.value},
                                          env_of({{setting.env, "not valid: !"}}));
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(setting.read(result.config), setting.value);
}

TEST_P(ConfigSettingTest, HelpMentionsTheFlag) {
  const ParseResult result = parse_config({"--help"}, kNoEnv);
  EXPECT_THAT(result.message, HasSubstr(std::string("--") + GetParam().flag));
}

template <typename Number>
std::function<std::string(const Config&)> number_field(Number Config::*field) {
  return [field](const Config& config) { return std::to_string(config.*field); };
}

INSTANTIATE_TEST_SUITE_P(
    Settings, ConfigSettingTest,
    testing::Values(
        SettingCase{"listen", "LISTEN", "127.0.0.1:9000", "0.0.0.0:1234", listen_text},
        SettingCase{"database-url", "DATABASE_URL", "postgresql://app@db:5433/exams",
                    "host=elsewhere dbname=x",
                    [](const Config& config) { return config.database_url; }},
        SettingCase{"threads", "THREADS", "3", "5", number_field(&Config::threads)},
        SettingCase{"pool-size", "POOL_SIZE", "8", "2", number_field(&Config::pool_size)},
        SettingCase{"body-limit", "BODY_LIMIT", "1024", "2048", number_field(&Config::body_limit)},
        SettingCase{"log-level", "LOG_LEVEL", "debug", "warn",
                    [](const Config& config) { return config.log_level; }},
        SettingCase{"max-batch", "MAX_BATCH", "64", "32", number_field(&Config::max_batch)},
        SettingCase{"queue-capacity", "QUEUE_CAPACITY", "100", "200",
                    number_field(&Config::queue_capacity)},
        SettingCase{"queue-bytes", "QUEUE_BYTES", "65536", "131072",
                    number_field(&Config::queue_bytes)},
        SettingCase{"pipeline-depth", "PIPELINE_DEPTH", "3", "4",
                    number_field(&Config::pipeline_depth)},
        SettingCase{"request-timeout", "REQUEST_TIMEOUT", "3", "4",
                    number_field(&Config::request_timeout_seconds)},
        SettingCase{"auth", "AUTH", "none", "jwt",
                    [](const Config& config) { return config.auth; }},
        SettingCase{"jwks", "JWKS", "/etc/keys.json", "/run/jwks.json",
                    [](const Config& config) { return config.jwks_path; }},
        SettingCase{"jwt-issuer", "JWT_ISSUER", "https://id.example", "issuer-b",
                    [](const Config& config) { return config.jwt_issuer; }},
        SettingCase{"jwt-audience", "JWT_AUDIENCE", "attempts", "exams",
                    [](const Config& config) { return config.jwt_audience; }},
        SettingCase{"jwt-student-claim", "JWT_STUDENT_CLAIM", "student_id",
                    "https://exams.example/student",
                    [](const Config& config) { return config.jwt_student_claim; }},
        SettingCase{"jwt-leeway", "JWT_LEEWAY", "0", "120",
                    number_field(&Config::jwt_leeway_seconds)},
        SettingCase{"token-cache-size", "TOKEN_CACHE_SIZE", "100", "200",
                    number_field(&Config::token_cache_size)},
        SettingCase{"durability", "DURABILITY", "async", "sync",
                    [](const Config& config) { return config.durability; }},
        SettingCase{"citus", "CITUS", "on", "off",
                    [](const Config& config) { return config.citus; }},
        SettingCase{"citus-entry", "CITUS_ENTRY", "coordinator", "nodes",
                    [](const Config& config) { return config.citus_entry; }},
        SettingCase{
            "history", "HISTORY", "off", "on",
            [](const Config& config) { return std::string(config.history ? "on" : "off"); }},
        SettingCase{"history-retention-days", "HISTORY_RETENTION_DAYS", "30", "0",
                    number_field(&Config::history_retention_days)},
        SettingCase{"max-connections", "MAX_CONNECTIONS", "50", "60",
                    number_field(&Config::max_connections)},
        SettingCase{"idle-timeout", "IDLE_TIMEOUT", "30", "40",
                    number_field(&Config::idle_timeout_seconds)},
        SettingCase{"shutdown-timeout", "SHUTDOWN_TIMEOUT", "5", "6",
                    number_field(&Config::shutdown_timeout_seconds)}),
    [](const auto& test) { return std::string(test.param.env); });

TEST(ConfigTest, FlagsAndEnvironmentCombine) {
  const ParseResult result =
      parse_config({"--pool-size", "6"}, env_of({{"THREADS", "2"}, {"LISTEN", ":9001"}}));
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(result.config.pool_size, 6u);
  EXPECT_EQ(result.config.threads, 2u);
  EXPECT_EQ(listen_text(result.config), "0.0.0.0:9001");
}

TEST(ConfigTest, EveryLogLevelIsAccepted) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    const ParseResult result = parse_config({std::string("--log-level=") + level}, kNoEnv);
    EXPECT_EQ(result.action, Action::run) << level << ": " << result.message;
    EXPECT_EQ(result.config.log_level, level);
  }
}

TEST(ConfigTest, NumbersAtTheirLimitsAreAccepted) {
  const ParseResult result =
      parse_config({"--threads=256", "--pool-size=1024", "--body-limit=67108864",
                    "--max-batch=10000", "--idle-timeout=3600", "--shutdown-timeout=1",
                    "--pipeline-depth=64", "--request-timeout=3600"},
                   kNoEnv);
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(result.config.threads, 256u);
  EXPECT_EQ(result.config.pool_size, 1024u);
  EXPECT_EQ(result.config.pipeline_depth, 64u);
  EXPECT_EQ(result.config.request_timeout_seconds, 3600u);
  EXPECT_EQ(result.config.body_limit, 64u << 20);
  EXPECT_EQ(result.config.max_batch, 10000u);
  // Not given: the queue grows to hold a save of the largest body allowed.
  EXPECT_EQ(result.config.queue_bytes, 64u << 20);
}

// --- Help ---------------------------------------------------------------------------------------

TEST(ConfigHelpTest, LongHelpFlagShowsHelp) {
  const ParseResult result = parse_config({"--help"}, kNoEnv);
  EXPECT_EQ(result.action, Action::show_help);
  EXPECT_THAT(result.message, HasSubstr("Usage"));
  EXPECT_THAT(result.message, HasSubstr("--help"));
}

TEST(ConfigHelpTest, ShortHelpFlagShowsHelp) {
  EXPECT_EQ(parse_config({"-h"}, kNoEnv).action, Action::show_help);
}

TEST(ConfigHelpTest, HelpExplainsTheEnvironmentVariables) {
  EXPECT_THAT(parse_config({"--help"}, kNoEnv).message, HasSubstr("POOL_SIZE"));
}

TEST(ConfigHelpTest, HelpWinsOverOtherValidFlags) {
  EXPECT_EQ(parse_config({"--pool-size=3", "--help"}, kNoEnv).action, Action::show_help);
}

// --- Invalid values
// -------------------------------------------------------------------------------

struct InvalidCase {
  const char* name;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string message_part;  // the flag or variable at fault
};

void PrintTo(const InvalidCase& invalid, std::ostream* out) {
  *out << invalid.name;
}

class ConfigInvalidTest : public testing::TestWithParam<InvalidCase> {};

TEST_P(ConfigInvalidTest, FailsWithAMessageNamingTheSource) {
  const ParseResult result = parse_config(GetParam().args, env_of(GetParam().env));
  EXPECT_EQ(result.action, Action::fail);
  EXPECT_FALSE(result.message.empty());
  EXPECT_THAT(result.message, HasSubstr(GetParam().message_part));
}

INSTANTIATE_TEST_SUITE_P(
    Flags, ConfigInvalidTest,
    testing::Values(
        InvalidCase{"ThreadsZero", {"--threads=0"}, {}, "--threads: '0'"},
        InvalidCase{"ThreadsNegative", {"--threads=-1"}, {}, "--threads: '-1'"},
        InvalidCase{"ThreadsLetters", {"--threads=abc"}, {}, "--threads: 'abc'"},
        InvalidCase{"ThreadsSeparateNegative", {"--threads", "-1"}, {}, "--threads: '-1'"},
        InvalidCase{"ThreadsFraction", {"--threads=1.5"}, {}, "--threads: '1.5'"},
        InvalidCase{"ThreadsHuge", {"--threads=99999999999"}, {}, "--threads: '99999999999'"},
        InvalidCase{"ThreadsAboveLimit", {"--threads=257"}, {}, "--threads"},
        InvalidCase{"ThreadsPlusSign", {"--threads=+4"}, {}, "--threads"},
        InvalidCase{"ThreadsLeadingSpace", {"--threads= 4"}, {}, "--threads"},
        InvalidCase{"ThreadsTrailingSpace", {"--threads=4 "}, {}, "--threads"},
        InvalidCase{"ThreadsEmpty", {"--threads="}, {}, "--threads"},
        InvalidCase{"ThreadsMissingValue", {"--threads"}, {}, "threads"},
        InvalidCase{"ThreadsTwice", {"--threads=2", "--threads=3"}, {}, "threads"},
        InvalidCase{"PoolSizeZero", {"--pool-size=0"}, {}, "--pool-size: '0'"},
        InvalidCase{"PoolSizeSeparateZero", {"--pool-size", "0"}, {}, "--pool-size: '0'"},
        InvalidCase{"BodyLimitZero", {"--body-limit=0"}, {}, "--body-limit: '0'"},
        InvalidCase{"BodyLimitAboveLimit", {"--body-limit=67108865"}, {}, "--body-limit"},
        InvalidCase{"LogLevelLoud", {"--log-level=loud"}, {}, "--log-level: 'loud'"},
        InvalidCase{"LogLevelUpperCase", {"--log-level=INFO"}, {}, "--log-level"},
        InvalidCase{"MaxBatchZero", {"--max-batch=0"}, {}, "--max-batch"},
        InvalidCase{"QueueCapacityZero", {"--queue-capacity=0"}, {}, "--queue-capacity"},
        InvalidCase{"QueueBytesTiny", {"--queue-bytes=1023"}, {}, "--queue-bytes: '1023'"},
        // A body that passes --body-limit must fit the queue, or it is refused forever.
        InvalidCase{"QueueBytesBelowBodyLimit",
                    {"--queue-bytes=4096", "--body-limit=4097"},
                    {},
                    "--queue-bytes 4096 is below --body-limit 4097"},
        InvalidCase{"QueueBytesBelowTheDefaultBodyLimit",
                    {"--queue-bytes=65535"},
                    {},
                    "--queue-bytes 65535 is below --body-limit 65536"},
        InvalidCase{"QueueBytesFromTheEnvironmentBelowBodyLimit",
                    {"--body-limit=2000000"},
                    {{"QUEUE_BYTES", "1000000"}},
                    "--queue-bytes 1000000 is below --body-limit 2000000"},
        InvalidCase{"PipelineDepthZero", {"--pipeline-depth=0"}, {}, "--pipeline-depth: '0'"},
        InvalidCase{"PipelineDepthAboveLimit", {"--pipeline-depth=65"}, {}, "--pipeline-depth"},
        InvalidCase{"RequestTimeoutZero", {"--request-timeout=0"}, {}, "--request-timeout"},
        InvalidCase{"AuthUnknown", {"--auth=basic"}, {}, "--auth: 'basic' is not jwt or none"},
        InvalidCase{"DurabilityUnknown",
                    {"--durability=fsync"},
                    {},
                    "--durability: 'fsync' is not unlogged, async or sync"},
        InvalidCase{"CitusUnknown", {"--citus=yes"}, {}, "--citus: 'yes' is not auto, on or off"},
        InvalidCase{"CitusEntryUnknown",
                    {"--citus-entry=workers"},
                    {},
                    "--citus-entry: 'workers' is not nodes or coordinator"},
        InvalidCase{"HistoryUnknown", {"--history=yes"}, {}, "--history: 'yes' is not on or off"},
        InvalidCase{"HistoryRetentionAboveLimit",
                    {"--history-retention-days=36501"},
                    {},
                    "--history-retention-days"},
        InvalidCase{"JwtLeewayAboveLimit", {"--jwt-leeway=601"}, {}, "--jwt-leeway"},
        InvalidCase{"TokenCacheSizeZero", {"--token-cache-size=0"}, {}, "--token-cache-size"},
        InvalidCase{"StudentClaimEmpty", {"--jwt-student-claim="}, {}, "--jwt-student-claim"},
        InvalidCase{
            "StudentClaimWithSpace", {"--jwt-student-claim=student id"}, {}, "--jwt-student-claim"},
        InvalidCase{"StudentClaimTooLong",
                    {"--jwt-student-claim=" + std::string(129, 'c')},
                    {},
                    "--jwt-student-claim"},
        InvalidCase{"MaxConnectionsZero", {"--max-connections=0"}, {}, "--max-connections"},
        InvalidCase{"IdleTimeoutZero", {"--idle-timeout=0"}, {}, "--idle-timeout"},
        InvalidCase{"ShutdownTimeoutZero", {"--shutdown-timeout=0"}, {}, "--shutdown-timeout"},
        InvalidCase{"DatabaseUrlEmpty", {"--database-url="}, {}, "--database-url"},
        InvalidCase{"ListenNoPort", {"--listen=nohost"}, {}, "--listen: 'nohost'"},
        InvalidCase{"ListenPortTooLarge", {"--listen=1.2.3.4:70000"}, {}, "--listen"},
        InvalidCase{"ListenV6WithoutBrackets", {"--listen=::1:80"}, {}, "--listen: '::1:80'"},
        InvalidCase{"ListenHostName", {"--listen=example.com:80"}, {}, "--listen"},
        InvalidCase{"UnknownFlag", {"--bogus"}, {}, "bogus"},
        InvalidCase{"UnknownFlagWithValue", {"--bogus=1"}, {}, "bogus"}),
    [](const auto& test) { return std::string(test.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Environment, ConfigInvalidTest,
    testing::Values(
        InvalidCase{"ThreadsZero", {}, {{"THREADS", "0"}}, "THREADS: '0'"},
        InvalidCase{"ThreadsNegative", {}, {{"THREADS", "-1"}}, "THREADS: '-1'"},
        InvalidCase{"ThreadsLetters", {}, {{"THREADS", "abc"}}, "THREADS: 'abc'"},
        InvalidCase{"ThreadsFraction", {}, {{"THREADS", "1.5"}}, "THREADS: '1.5'"},
        InvalidCase{"ThreadsHuge", {}, {{"THREADS", "99999999999"}}, "THREADS"},
        InvalidCase{"PoolSizeZero", {}, {{"POOL_SIZE", "0"}}, "POOL_SIZE: '0'"},
        InvalidCase{"BodyLimitZero", {}, {{"BODY_LIMIT", "0"}}, "BODY_LIMIT: '0'"},
        InvalidCase{"LogLevelLoud", {}, {{"LOG_LEVEL", "loud"}}, "LOG_LEVEL: 'loud'"},
        InvalidCase{"MaxBatchLetters", {}, {{"MAX_BATCH", "x"}}, "MAX_BATCH"},
        InvalidCase{"QueueCapacityZero", {}, {{"QUEUE_CAPACITY", "0"}}, "QUEUE_CAPACITY"},
        InvalidCase{"MaxConnectionsZero", {}, {{"MAX_CONNECTIONS", "0"}}, "MAX_CONNECTIONS"},
        InvalidCase{"IdleTimeoutZero", {}, {{"IDLE_TIMEOUT", "0"}}, "IDLE_TIMEOUT"},
        InvalidCase{"ShutdownTimeoutZero", {}, {{"SHUTDOWN_TIMEOUT", "0"}}, "SHUTDOWN_TIMEOUT"},
        InvalidCase{"DatabaseUrlEmpty", {}, {{"DATABASE_URL", ""}}, "DATABASE_URL"},
        InvalidCase{
            "StudentClaimControl", {}, {{"JWT_STUDENT_CLAIM", "student\x01"}}, "JWT_STUDENT_CLAIM"},
        InvalidCase{"ListenNoPort", {}, {{"LISTEN", "nohost"}}, "LISTEN: 'nohost'"},
        InvalidCase{"ListenPortTooLarge", {}, {{"LISTEN", "1.2.3.4:70000"}}, "LISTEN"},
        InvalidCase{"ListenV6WithoutBrackets", {}, {{"LISTEN", "::1:80"}}, "LISTEN"}),
    [](const auto& test) { return std::string(test.param.name); });

TEST(ConfigInvalidTest, StrayPositionalArgumentFails) {
  const ParseResult result = parse_config({"extra"}, kNoEnv);
  EXPECT_EQ(result.action, Action::fail);
  EXPECT_FALSE(result.message.empty());
}

TEST(ConfigInvalidTest, StrayPositionalArgumentAfterFlagsFails) {
  const ParseResult result = parse_config({"--pool-size", "2", "3"}, kNoEnv);
  EXPECT_EQ(result.action, Action::fail);
  EXPECT_FALSE(result.message.empty());
}

TEST(ConfigInvalidTest, NumberMessageGivesTheAllowedRange) {
  EXPECT_THAT(parse_config({"--threads=0"}, kNoEnv).message, HasSubstr("from 1 to 256"));
}

TEST(ConfigInvalidTest, HostileArgumentsNeverThrow) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--"}, {"-"}, {"---"}, {"--="}, {"-x"}, {"--threads=\xff"}, {std::string("\0", 1)}}) {
    EXPECT_NO_THROW(parse_config(args, kNoEnv)) << args.front();
  }
}

// --- Listen addresses
// -----------------------------------------------------------------------------

struct ListenCase {
  const char* text;
  const char* host;
  std::uint16_t port;
};

void PrintTo(const ListenCase& listen, std::ostream* out) {
  *out << listen.text;
}

class ListenAddressTest : public testing::TestWithParam<ListenCase> {};

TEST_P(ListenAddressTest, Parses) {
  const auto address = parse_listen_address(GetParam().text);
  ASSERT_TRUE(address.has_value()) << GetParam().text;
  EXPECT_EQ(address->host, GetParam().host);
  EXPECT_EQ(address->port, GetParam().port);
}

INSTANTIATE_TEST_SUITE_P(Valid, ListenAddressTest,
                         testing::Values(ListenCase{"127.0.0.1:0", "127.0.0.1", 0},
                                         ListenCase{":9000", "0.0.0.0", 9000},
                                         ListenCase{"[::1]:8000", "::1", 8000},
                                         ListenCase{"[::]:1", "::", 1},
                                         ListenCase{"localhost:80", "127.0.0.1", 80},
                                         ListenCase{"0.0.0.0:65535", "0.0.0.0", 65535},
                                         ListenCase{"10.1.2.3:8080", "10.1.2.3", 8080}));

class InvalidListenAddressTest : public testing::TestWithParam<const char*> {};

TEST_P(InvalidListenAddressTest, IsRejected) {
  EXPECT_FALSE(parse_listen_address(GetParam()).has_value()) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Invalid, InvalidListenAddressTest,
                         testing::Values("", "nohost", ":", "127.0.0.1",
                                         "127.0.0.1:", "1.2.3.4:70000", "1.2.3.4:65536",
                                         "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:80x",
                                         "127.0.0.1: 80", "::1:80", "[::1]", "[::1]:", "[::1:80",
                                         "example.com:80", "256.0.0.1:80", "1.2.3.4.5:80"));

// --- Redaction ----------------------------------------------------------------------------------

TEST(RedactTest, UriPasswordIsReplaced) {
  const std::string redacted = redact_database_url("postgresql://user:secret@host/db");
  EXPECT_THAT(redacted, Not(HasSubstr("secret")));
  EXPECT_THAT(redacted, HasSubstr("***"));
  EXPECT_EQ(redacted, "postgresql://user:***@host/db");
}

TEST(RedactTest, UriWithPortAndQueryKeepsEverythingButThePassword) {
  EXPECT_EQ(redact_database_url("postgres://app:secret@db.local:5433/exams?sslmode=disable"),
            "postgres://app:***@db.local:5433/exams?sslmode=disable");
}

TEST(RedactTest, UriPasswordContainingAtSignIsReplacedWhole) {
  const std::string redacted = redact_database_url("postgresql://user:p@ss@host/db");
  EXPECT_THAT(redacted, Not(HasSubstr("p@ss")));
  EXPECT_THAT(redacted, HasSubstr("@host/db"));
}

TEST(RedactTest, UriPasswordContainingQuestionMarkIsReplaced) {
  // libpq reads the userinfo up to the '@' (it only stops early at '/'), so "pa?ss" is the
  // password here and must not reach the log.
  const std::string redacted = redact_database_url("postgresql://user:pa?ss@host/db");
  EXPECT_THAT(redacted, Not(HasSubstr("pa?ss")));
  EXPECT_THAT(redacted, HasSubstr("***"));
}

TEST(RedactTest, UriWithEmptyUserNameStillHidesThePassword) {
  EXPECT_EQ(redact_database_url("postgresql://:secret@host/db"), "postgresql://:***@host/db");
}

TEST(RedactTest, UriWithoutPasswordIsUnchanged) {
  EXPECT_EQ(redact_database_url("postgres://user@host"), "postgres://user@host");
  EXPECT_EQ(redact_database_url("postgresql://user@host:5432/db"),
            "postgresql://user@host:5432/db");
  EXPECT_EQ(redact_database_url("postgresql://host:5432/db"), "postgresql://host:5432/db");
  EXPECT_EQ(redact_database_url("postgresql:///attempts"), "postgresql:///attempts");
}

TEST(RedactTest, UriQueryPasswordIsReplaced) {
  const std::string redacted =
      redact_database_url("postgresql://host/db?password=secret&sslmode=disable");
  EXPECT_EQ(redacted, "postgresql://host/db?password=***&sslmode=disable");
}

TEST(RedactTest, UriQueryPasswordAsLastParameterIsReplaced) {
  EXPECT_EQ(redact_database_url("postgresql://host/db?sslmode=disable&password=secret"),
            "postgresql://host/db?sslmode=disable&password=***");
}

TEST(RedactTest, KeywordPasswordWithAnEscapedSpaceIsReplacedWhole) {
  // libpq reads `s3cr\ et` as the password "s3cr et": the backslash escapes the space.
  EXPECT_EQ(redact_database_url(R"(host=x password=s3cr\ et dbname=y)"),
            "host=x password=*** dbname=y");
  EXPECT_EQ(redact_database_url(R"(password=a\\ b)"), "password=*** b");
  EXPECT_EQ(redact_database_url(R"(password='it\'s' user=u)"), "password=*** user=u");
}

TEST(RedactTest, AnUnparsableKeywordStringHidesTheRest) {
  const std::string redacted = redact_database_url("host=x password");
  EXPECT_EQ(redacted, "host=x password");
  EXPECT_EQ(redact_database_url("host=x secret password=y"), "host=x secret ***");
}

TEST(RedactTest, UriQueryPasswordWithAnEncodedKeyIsReplaced) {
  EXPECT_EQ(redact_database_url("postgresql://host/db?pass%77ord=secret&sslmode=disable"),
            "postgresql://host/db?pass%77ord=***&sslmode=disable");
  EXPECT_EQ(redact_database_url("postgresql://u:p%40w@host/db?password=x"),
            "postgresql://u:***@host/db?password=***");
}

TEST(RedactTest, KeywordPasswordIsReplaced) {
  EXPECT_EQ(redact_database_url("host=x password=secret dbname=y"), "host=x password=*** dbname=y");
}

TEST(RedactTest, KeywordPasswordWithSpacesAroundEqualsIsReplaced) {
  const std::string redacted = redact_database_url("host=x password = secret dbname=y");
  EXPECT_THAT(redacted, Not(HasSubstr("secret")));
  EXPECT_THAT(redacted, HasSubstr("dbname=y"));
}

TEST(RedactTest, QuotedKeywordPasswordIsReplacedWhole) {
  const std::string redacted = redact_database_url("host=x password='se cret' dbname=y");
  EXPECT_THAT(redacted, Not(HasSubstr("se cret")));
  EXPECT_THAT(redacted, Not(HasSubstr("cret")));
  EXPECT_THAT(redacted, HasSubstr("***"));
  EXPECT_THAT(redacted, HasSubstr("dbname=y"));
}

TEST(RedactTest, QuotedKeywordPasswordWithEscapedQuoteIsReplacedWhole) {
  const std::string redacted = redact_database_url(R"(password='a\'secret' dbname=y)");
  EXPECT_THAT(redacted, Not(HasSubstr("secret")));
  EXPECT_THAT(redacted, HasSubstr("dbname=y"));
}

TEST(RedactTest, KeywordPasswordContainingAmpersandIsReplacedWhole) {
  // In key=value form only whitespace ends an unquoted value: '&' is part of the password.
  const std::string redacted = redact_database_url("host=x password=se&cret dbname=y");
  EXPECT_THAT(redacted, Not(HasSubstr("cret")));
  EXPECT_THAT(redacted, HasSubstr("dbname=y"));
}

TEST(RedactTest, KeywordWithoutPasswordIsUnchanged) {
  EXPECT_EQ(redact_database_url("host=x user=password dbname=y"), "host=x user=password dbname=y");
  EXPECT_EQ(redact_database_url("host=x dbname=y"), "host=x dbname=y");
}

TEST(RedactTest, DescribeNeverContainsThePassword) {
  for (const char* url :
       {"postgresql://user:secret@host/db", "postgresql://host/db?password=secret",
        "host=x password=secret dbname=y", "host=x password='secret' dbname=y"}) {
    Config config;
    config.database_url = url;
    const std::string line = describe(config);
    EXPECT_THAT(line, Not(HasSubstr("secret"))) << url;
    EXPECT_THAT(line, HasSubstr("***")) << url;
  }
}

TEST(DescribeTest, MentionsEverySetting) {
  // A named Config: of the temporary, GCC 12 thinks a string member may be destroyed
  // uninitialized (-Wmaybe-uninitialized, a false positive).
  const Config defaults;
  const std::string line = describe(defaults);
  for (const char* part :
       {"listen=0.0.0.0:8000", "database-url=postgresql:///attempts", "threads=1", "pool-size=1",
        "body-limit=65536", "log-level=info", "max-batch=256", "pipeline-depth=1",
        "queue-capacity=4096", "queue-bytes=16777216", "max-connections=10000", "idle-timeout=15s",
        "request-timeout=10s", "shutdown-timeout=10s"}) {
    EXPECT_THAT(line, HasSubstr(part));
  }
}

TEST(DescribeTest, BracketsAnIpv6ListenAddress) {
  Config config;
  config.listen = {"::1", 8000};
  EXPECT_THAT(describe(config), HasSubstr("listen=[::1]:8000"));
}

// --- config file, switches, log format, --print-config -------------------------------------

namespace file_tests {

class ConfigFileTest : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    path_ = ::testing::TempDir() + "attempts-config-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".toml";
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override {
    if (!path_.empty()) std::remove(path_.c_str());
  }
  static std::optional<std::string> no_env(const std::string&) { return std::nullopt; }
  std::string path_;
};

TEST_F(ConfigFileTest, FileSetsValuesWithTheFlagsNames) {
  const auto path = write(
      "pool-size = 3\nlisten = \"127.0.0.1:9000\"\naccess-log = true\nlog-format = \"json\"\n");
  const ParseResult result = parse_config({"--config", path}, no_env);
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(result.config.pool_size, 3u);
  EXPECT_EQ(result.config.listen.port, 9000);
  EXPECT_TRUE(result.config.access_log);
  EXPECT_EQ(result.config.log_format, "json");
}

TEST_F(ConfigFileTest, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  const auto path = write("pool-size = 3\nmax-batch = 7\nbody-limit = 999\n");
  const auto env = [&](const std::string& name) -> std::optional<std::string> {
    if (name == "MAX_BATCH") return "8";
    if (name == "POOL_SIZE") return "5";
    return std::nullopt;
  };
  const ParseResult result = parse_config({"--config=" + path, "--pool-size=6"}, env);
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(result.config.pool_size, 6u);          // flag
  EXPECT_EQ(result.config.max_batch, 8u);          // environment
  EXPECT_EQ(result.config.body_limit, 999u);       // file
  EXPECT_EQ(result.config.queue_capacity, 4096u);  // default
}

TEST_F(ConfigFileTest, ConfigEnvironmentVariableNamesTheFile) {
  const auto path = write("pool-size = 9\n");
  const ParseResult result = parse_config({}, [&](const std::string& name) {
    return name == "CONFIG" ? std::optional<std::string>(path) : std::nullopt;
  });
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(result.config.pool_size, 9u);
}

TEST_F(ConfigFileTest, UnknownKeyIsAnErrorNamingIt) {
  const auto path = write("pool_size = 3\n");
  const ParseResult result = parse_config({"--config", path}, no_env);
  EXPECT_EQ(result.action, Action::fail);
  EXPECT_THAT(result.message, HasSubstr("pool_size"));
}

TEST_F(ConfigFileTest, InvalidValueNamesTheFileAndKey) {
  const auto path = write("pool-size = 0\n");
  const ParseResult result = parse_config({"--config", path}, no_env);
  EXPECT_EQ(result.action, Action::fail);
  EXPECT_THAT(result.message, HasSubstr(path));
  EXPECT_THAT(result.message, HasSubstr("pool-size"));
}

TEST_F(ConfigFileTest, MalformedOrMissingFileFails) {
  EXPECT_EQ(parse_config({"--config", write("pool-size = = 3\n")}, no_env).action, Action::fail);
  EXPECT_EQ(parse_config({"--config", "/nonexistent/attempts.toml"}, no_env).action, Action::fail);
  EXPECT_EQ(parse_config({"--config", write("pool-size = [1, 2]\n")}, no_env).action, Action::fail);
}

TEST_F(ConfigFileTest, PrintConfigIsTomlThatReadsBackToTheSameSettings) {
  const ParseResult printed =
      parse_config({"--print-config", "--pool-size=3", "--reuse-port", "--log-format=json",
                    "--database-url=postgresql://u:secret@db/attempts"},
                   no_env);
  ASSERT_EQ(printed.action, Action::print_config) << printed.message;
  EXPECT_THAT(printed.message, Not(HasSubstr("secret")));
  EXPECT_THAT(printed.message, HasSubstr("pool-size = 3"));
  const ParseResult reread = parse_config({"--config", write(printed.message)}, no_env);
  ASSERT_EQ(reread.action, Action::run) << reread.message;
  EXPECT_EQ(reread.config.pool_size, 3u);
  EXPECT_TRUE(reread.config.reuse_port);
  EXPECT_EQ(reread.config.log_format, "json");
  EXPECT_EQ(reread.config.database_url, "postgresql://u:***@db/attempts");
}

TEST(ConfigSwitchTest, SwitchesTakeNoValueOrABoolean) {
  const auto none = [](const std::string&) { return std::optional<std::string>(); };
  EXPECT_TRUE(parse_config({"--reuse-port"}, none).config.reuse_port);
  EXPECT_FALSE(parse_config({"--reuse-port=false"}, none).config.reuse_port);
  EXPECT_TRUE(parse_config({"--access-log=yes"}, none).config.access_log);
  EXPECT_FALSE(parse_config({}, none).config.access_log);
  EXPECT_EQ(parse_config({"--access-log=maybe"}, none).action, Action::fail);
  const auto env = [](const std::string& name) {
    return name == "REUSE_PORT" ? std::optional<std::string>("1") : std::nullopt;
  };
  EXPECT_TRUE(parse_config({}, env).config.reuse_port);
}

TEST(ConfigLogFormatTest, OnlyTextOrJson) {
  const auto none = [](const std::string&) { return std::optional<std::string>(); };
  EXPECT_EQ(parse_config({}, none).config.log_format, "text");
  EXPECT_EQ(parse_config({"--log-format=json"}, none).config.log_format, "json");
  const ParseResult bad = parse_config({"--log-format=xml"}, none);
  EXPECT_EQ(bad.action, Action::fail);
  EXPECT_THAT(bad.message, HasSubstr("--log-format"));
}

}  // namespace file_tests

// --- --cors-origin: a list ---------------------------------------------------------------------

TEST(ConfigCorsTest, OffByDefault) {
  const ParseResult result = parse_config({}, kNoEnv);
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_TRUE(result.config.cors_origins.empty());
  EXPECT_THAT(describe(result.config), HasSubstr("cors-origin=-"));
}

TEST(ConfigCorsTest, TheFlagIsRepeatableAndKeepsEachOriginOnce) {
  const ParseResult result =
      parse_config({"--cors-origin", "http://127.0.0.1:18700", "--cors-origin=https://a.example",
                    "--cors-origin", "http://127.0.0.1:18700"},
                   kNoEnv);
  ASSERT_EQ(result.action, Action::run) << result.message;
  EXPECT_EQ(result.config.cors_origins,
            (std::vector<std::string>{"http://127.0.0.1:18700", "https://a.example"}));
  EXPECT_THAT(describe(result.config),
              HasSubstr("cors-origin=http://127.0.0.1:18700,https://a.example"));
}

TEST(ConfigCorsTest, TheEnvironmentSeparatesOriginsByCommasOrSpacesAndTheFlagReplacesIt) {
  const auto env = env_of({{"CORS_ORIGIN", " http://a.example, https://b.example:8443  http://c"}});
  const ParseResult from_env = parse_config({}, env);
  ASSERT_EQ(from_env.action, Action::run) << from_env.message;
  EXPECT_EQ(from_env.config.cors_origins,
            (std::vector<std::string>{"http://a.example", "https://b.example:8443", "http://c"}));
  const ParseResult flag = parse_config({"--cors-origin=http://d.example"}, env);
  EXPECT_EQ(flag.config.cors_origins, std::vector<std::string>{"http://d.example"});
  // Set but empty: CORS off.
  EXPECT_TRUE(parse_config({}, env_of({{"CORS_ORIGIN", ""}})).config.cors_origins.empty());
}

TEST(ConfigCorsTest, WhatIsNotAnOriginFailsNamingTheSourceAndTheReason) {
  const ParseResult wildcard = parse_config({"--cors-origin=*"}, kNoEnv);
  EXPECT_EQ(wildcard.action, Action::fail);
  EXPECT_THAT(wildcard.message, HasSubstr("--cors-origin"));
  EXPECT_THAT(wildcard.message, HasSubstr("name each origin"));
  const ParseResult slash =
      parse_config({}, env_of({{"CORS_ORIGIN", "http://a.example http://b.example/"}}));
  EXPECT_EQ(slash.action, Action::fail);
  EXPECT_THAT(slash.message, HasSubstr("CORS_ORIGIN"));
  EXPECT_THAT(slash.message, HasSubstr("no path"));
  const ParseResult empty = parse_config({"--cors-origin="}, kNoEnv);
  EXPECT_EQ(empty.action, Action::fail);
}

namespace file_tests {

TEST_F(ConfigFileTest, CorsOriginIsAStringOrAnArrayOfStrings) {
  const ParseResult array = parse_config(
      {"--config", write("cors-origin = [\"http://a.example\", \"http://b.example:81\"]\n")},
      no_env);
  ASSERT_EQ(array.action, Action::run) << array.message;
  EXPECT_EQ(array.config.cors_origins,
            (std::vector<std::string>{"http://a.example", "http://b.example:81"}));
  const ParseResult one =
      parse_config({"--config", write("cors-origin = \"http://a.example\"\n")}, no_env);
  EXPECT_EQ(one.config.cors_origins, std::vector<std::string>{"http://a.example"});
  const ParseResult numbers = parse_config({"--config", write("cors-origin = [1, 2]\n")}, no_env);
  EXPECT_EQ(numbers.action, Action::fail);
  EXPECT_THAT(numbers.message, HasSubstr("array of strings"));
  const ParseResult bad =
      parse_config({"--config", write("cors-origin = [\"http://a.example:80\"]\n")}, no_env);
  EXPECT_EQ(bad.action, Action::fail);
  EXPECT_THAT(bad.message, HasSubstr("cors-origin"));
  EXPECT_THAT(bad.message, HasSubstr("default port"));
}

TEST_F(ConfigFileTest, PrintConfigWritesTheOriginsAsAnArrayThatReadsBack) {
  const ParseResult printed = parse_config(
      {"--print-config", "--cors-origin=http://a.example", "--cors-origin=http://[::1]:9"}, no_env);
  ASSERT_EQ(printed.action, Action::print_config) << printed.message;
  EXPECT_THAT(printed.message,
              HasSubstr("cors-origin = [\"http://a.example\", \"http://[::1]:9\"]"));
  const ParseResult reread = parse_config({"--config", write(printed.message)}, no_env);
  ASSERT_EQ(reread.action, Action::run) << reread.message;
  EXPECT_EQ(reread.config.cors_origins,
            (std::vector<std::string>{"http://a.example", "http://[::1]:9"}));
  const ParseResult none = parse_config({"--print-config"}, no_env);
  EXPECT_THAT(none.message, HasSubstr("cors-origin = []"));
  EXPECT_EQ(parse_config({"--config", write(none.message)}, no_env).action, Action::run);
}

}  // namespace file_tests

}  // namespace
}  // namespace attempts::config
