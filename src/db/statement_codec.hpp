#pragma once

#include <libpq-fe.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attempts/db/save_batch.hpp"
#include "attempts/db/shard_map.hpp"
#include "attempts/domain/attempt_store.hpp"
#include "lost_statements.hpp"

namespace attempts::db {

// A prepared statement and its parameters, ready for PQsendQueryPrepared. The values point
// into the codec's buffer: valid until the codec encodes the next statement.
struct EncodedStatement {
  static constexpr std::size_t kMaxParameters = 6;

  const char* name = nullptr;
  int count = 0;
  std::array<const char*, kMaxParameters> values{};
  std::array<int, kMaxParameters> lengths{};
  std::array<int, kMaxParameters> formats{};
  int result_format = 0;  // 0 text, 1 binary
};

// libpq's message for the connection's last error, trimmed; "connection failed" if empty.
std::string error_message(const PGconn* pg);
// A result's error message, trimmed; its status if it has none.
std::string error_message(const PGresult& result);
std::string_view first_line(std::string_view text);

// Why a statement failed: it, or its commit, rolled back.
struct StatementError {
  std::string message;
  // A serialization failure or a deadlock (Citus's distributed deadlock detection cancels one
  // transaction this way): the statement may simply be sent again.
  bool transient = false;
  // FATAL (or PANIC): the backend ends here, and nothing sent after the statement ever ran.
  bool fatal = false;
};

// The bytes of the service's statements (src/db/sql.hpp): parameters in PostgreSQL's binary
// format in, result rows out, into the types the rest of the db layer uses. Owns the buffers,
// reused, so encoding allocates nothing once warm.
class StatementCodec {
 public:
  // The UPDATE of a sealed batch: the one-row statement for one row, else the batched one
  // (on Citus the variant that names the shard's ids, so it is routed to one worker); with
  // `history`, the variant that also writes each applied row's record.
  const EncodedStatement& save(const SaveBatch& batch, bool citus, bool history);
  // The why-not-saved query for the batch's rows that were not applied.
  const EncodedStatement& why_not_saved(const SaveBatch& batch);
  // A call on its own: load, submit, start or ping.
  const EncodedStatement& call(const StoreCall& call);

  static StatementError read_error(const PGresult& result);
  // The UPDATE's rows, in binary: (id) from the one-row statement, (id, owner) from the batched
  // ones.
  static void read_updated(const PGresult& result, SaveBatch& batch);
  // The why-not-saved query's rows.
  static void read_stored(const PGresult& result, SaveBatch& batch);
  // A load, submit or start: the outcome, with the record filled when there is one; a
  // load_history: its entries.
  static StoreOutcome read_call(const PGresult& result, StoreCall& call);
  // The table's persistence ('u' or 'p'), the last column of the ping's and the session
  // setup's one row; nullopt if the result has no such row.
  static std::optional<char> read_persistence(const PGresult& result);
  // The session setup's answer to whether attempts is a Citus distributed table (nullopt: not
  // asked).
  static std::optional<bool> read_citus(const PGresult& result);
  // The session setup's backend (nullopt if the server did not say), and whether the backend it
  // was asked to end is gone (nullopt: none was asked).
  static std::optional<BackendIdentity> read_backend(const PGresult& result);
  static std::optional<bool> read_previous_gone(const PGresult& result);
  // kShardMapQuery's rows as a ShardMap; throws std::invalid_argument saying what is wrong.
  static ShardMap read_shard_map(const PGresult& result);

 private:
  static StoreOutcome read_history(const PGresult& result, StoreCall& call);
  void begin(const char* name);
  void mark(std::size_t start, bool null = false, int format = 1);

  EncodedStatement statement_;
  std::string buffer_;
  std::array<std::size_t, EncodedStatement::kMaxParameters> offsets_{};
  std::array<bool, EncodedStatement::kMaxParameters> nulls_{};
  std::vector<AttemptId> ids_;
  std::vector<std::optional<std::int64_t>> students_;
  std::vector<std::optional<std::int64_t>> revisions_;
  std::vector<std::string_view> answers_;
  std::vector<std::int32_t> writes_;
  std::vector<std::int32_t> answered_;
};

}  // namespace attempts::db
