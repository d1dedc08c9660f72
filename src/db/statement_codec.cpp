#include "statement_codec.hpp"

#include <charconv>
#include <stdexcept>

#include "attempts/db/pg_binary.hpp"
#include "sql.hpp"

namespace attempts::db {
namespace {

std::string trimmed(std::string message) {
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

std::int64_t integer_at(const PGresult& result, int row, int column) {
  const char* text = PQgetvalue(&result, row, column);
  std::int64_t value = 0;
  std::from_chars(text, text + PQgetlength(&result, row, column), value);
  return value;
}

std::optional<std::string> text_at(const PGresult& result, int row, int column) {
  if (PQgetisnull(&result, row, column)) return std::nullopt;
  return std::string(PQgetvalue(&result, row, column),
                     static_cast<std::size_t>(PQgetlength(&result, row, column)));
}

// The columns of sql.hpp's ATTEMPTS_RECORD_COLUMNS, starting at `first`.
void read_record(const PGresult& result, int row, int first, AttemptRecord& record) {
  record.id = integer_at(result, row, first);
  record.exam_id = integer_at(result, row, first + 1);
  record.student_id = integer_at(result, row, first + 2);
  record.answers_json.assign(PQgetvalue(&result, row, first + 3),
                             static_cast<std::size_t>(PQgetlength(&result, row, first + 3)));
  record.revision = integer_at(result, row, first + 4);
  record.started_at = text_at(result, row, first + 5).value_or("");
  record.deadline = text_at(result, row, first + 6);
  record.updated_at = text_at(result, row, first + 7);
  record.submitted_at = text_at(result, row, first + 8);
}

}  // namespace

std::string error_message(const PGconn* pg) {
  std::string message = trimmed(pg ? PQerrorMessage(pg) : "no connection");
  return message.empty() ? "connection failed" : message;
}

std::string error_message(const PGresult& result) {
  std::string message = trimmed(PQresultErrorMessage(&result));
  return message.empty() ? PQresStatus(PQresultStatus(&result)) : message;
}

std::string_view first_line(std::string_view text) {
  return text.substr(0, text.find('\n'));
}

void StatementCodec::begin(const char* name) {
  buffer_.clear();
  statement_ = {};
  statement_.name = name;
  nulls_ = {};
}

// The parameter just appended to the buffer, from `start` to its end.
void StatementCodec::mark(std::size_t start, bool null, int format) {
  const auto i = static_cast<std::size_t>(statement_.count++);
  offsets_[i] = start;
  nulls_[i] = null;
  statement_.lengths[i] = static_cast<int>(buffer_.size() - start);
  statement_.formats[i] = format;
}

const EncodedStatement& StatementCodec::save(const SaveBatch& batch, bool citus, bool history) {
  const auto rows = batch.rows();
  if (rows.size() == 1) {
    // $1 id, $2 student (NULL: any), $3 revision (NULL: none), $4 answers; kept: $5 writes;
    // last: answered.
    const auto& row = rows.front();
    begin(history ? (citus ? sql::kSaveOneShardKeptName : sql::kSaveOneKeptName)
                  : (citus ? sql::kSaveOneShardName : sql::kSaveOneName));
    append_int8(buffer_, row.id);
    mark(0);
    std::size_t start = buffer_.size();
    if (row.student) append_int8(buffer_, *row.student);
    mark(start, !row.student);
    start = buffer_.size();
    if (row.revision) append_int8(buffer_, *row.revision);
    mark(start, !row.revision);
    start = buffer_.size();
    append_jsonb(buffer_, row.answers);
    mark(start);
    if (history) {
      start = buffer_.size();
      append_int4(buffer_, row.writes);
      mark(start);
    }
    start = buffer_.size();
    append_int4(buffer_, row.answered);
    mark(start);
  } else {
    // The same as arrays, one element per row. On Citus the rows are all in one shard, and the
    // statement says which ids, so it is routed to one worker.
    begin(history ? (citus ? sql::kSaveShardKeptName : sql::kSaveBatchKeptName)
                  : (citus ? sql::kSaveShardName : sql::kSaveBatchName));
    ids_.clear();
    students_.clear();
    revisions_.clear();
    answers_.clear();
    writes_.clear();
    answered_.clear();
    for (const auto& row : rows) {
      ids_.push_back(row.id);
      students_.push_back(row.student);
      revisions_.push_back(row.revision);
      answers_.push_back(row.answers);
      writes_.push_back(row.writes);
      answered_.push_back(row.answered);
    }
    append_int8_array(buffer_, ids_);
    mark(0);
    std::size_t start = buffer_.size();
    append_int8_array(buffer_, students_);
    mark(start);
    start = buffer_.size();
    append_int8_array(buffer_, revisions_);
    mark(start);
    start = buffer_.size();
    append_jsonb_array(buffer_, answers_);
    mark(start);
    if (history) {
      start = buffer_.size();
      append_int4_array(buffer_, writes_);
      mark(start);
    }
    start = buffer_.size();
    append_int4_array(buffer_, answered_);
    mark(start);
  }
  for (std::size_t i = 0; i < static_cast<std::size_t>(statement_.count); ++i) {
    statement_.values[i] = nulls_[i] ? nullptr : buffer_.data() + offsets_[i];
  }
  statement_.result_format = 1;  // int8 columns: eight bytes each, nothing to parse
  return statement_;
}

const EncodedStatement& StatementCodec::why_not_saved(const SaveBatch& batch) {
  begin(sql::kWhyNotSavedName);
  append_int8_array(buffer_, batch.unsaved_ids());
  mark(0);
  statement_.values[0] = buffer_.data();
  return statement_;
}

const EncodedStatement& StatementCodec::call(const StoreCall& call) {
  // Binary int8 parameters: the id (attempt or exam), then the student (NULL: any).
  const auto id_and_student = [&](const char* name, std::int64_t id) {
    begin(name);
    append_int8(buffer_, id);
    mark(0);
    if (call.student) append_int8(buffer_, *call.student);
    mark(8, !call.student);
  };
  switch (call.kind) {
    case StoreCall::Kind::load_attempt:
      id_and_student(sql::kLoadAttemptName, call.attempt_id);
      break;
    case StoreCall::Kind::submit_attempt:
      id_and_student(sql::kSubmitAttemptName, call.attempt_id);
      break;
    case StoreCall::Kind::start_attempt: {
      id_and_student(sql::kStartAttemptName, call.exam_id);
      const std::size_t start = buffer_.size();
      buffer_.append(call.idempotency_key);
      buffer_.push_back('\0');  // text format: a C string
      mark(start, call.idempotency_key.empty(), 0);
      break;
    }
    case StoreCall::Kind::load_history: {
      // $3 before (NULL: from the newest), $4 at (text, NULL: any time), $5 how many.
      const HistoryQuery& query = call.history_query;
      id_and_student(sql::kLoadHistoryName, call.attempt_id);
      std::size_t start = buffer_.size();
      if (query.before) append_int8(buffer_, *query.before);
      mark(start, !query.before);
      start = buffer_.size();
      if (query.at) {
        buffer_.append(query.at_utc);
        buffer_.push_back('\0');  // text format: PostgreSQL parses the RFC 3339 time
      }
      mark(start, !query.at, 0);
      start = buffer_.size();
      append_int4(buffer_, query.limit);
      mark(start);
      break;
    }
    case StoreCall::Kind::ping:
    case StoreCall::Kind::save_answers:  // never on its own: see save()
      begin(sql::kPingName);
      break;
  }
  for (std::size_t i = 0; i < static_cast<std::size_t>(statement_.count); ++i) {
    statement_.values[i] = nulls_[i] ? nullptr : buffer_.data() + offsets_[i];
  }
  return statement_;
}

StatementError StatementCodec::read_error(const PGresult& result) {
  StatementError error;
  error.message = error_message(result);
  // A stale shard map makes no statement fail: the service writes through the coordinator,
  // which routes by its own metadata, so a batch grouped with an old map at worst spans two
  // shards (a two-phase commit) until the map is read again.
  const char* code = PQresultErrorField(&result, PG_DIAG_SQLSTATE);
  const std::string_view sqlstate = code != nullptr ? code : "";
  error.transient = sqlstate == "40001" || sqlstate == "40P01";
  const char* severity = PQresultErrorField(&result, PG_DIAG_SEVERITY_NONLOCALIZED);
  const std::string_view level = severity != nullptr ? severity : "";
  error.fatal = level == "FATAL" || level == "PANIC";
  return error;
}

void StatementCodec::read_updated(const PGresult& result, SaveBatch& batch) {
  const auto int8_at = [&](int row, int column) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(PQgetvalue(&result, row, column));
    std::uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value = value << 8 | bytes[i];  // network byte order
    return static_cast<std::int64_t>(value);
  };
  // (id) from the one-row statement, (id, owner) from the batched ones.
  const bool with_owner = PQnfields(&result) == 2;
  for (int row = 0; row < PQntuples(&result); ++row) {
    if (PQgetlength(&result, row, 0) != 8 || (with_owner && PQgetlength(&result, row, 1) != 8)) {
      continue;  // not int8: never from these statements
    }
    batch.saw_updated(int8_at(row, 0),
                      with_owner ? std::optional<StudentId>(int8_at(row, 1)) : std::nullopt);
  }
}

void StatementCodec::read_stored(const PGresult& result, SaveBatch& batch) {
  // id, student_id, revision, submitted_at, deadline, deadline passed (sql.hpp kWhyNotSaved).
  for (int row = 0; row < PQntuples(&result); ++row) {
    StoredAttempt stored;
    stored.id = integer_at(result, row, 0);
    stored.owner = integer_at(result, row, 1);
    stored.revision = integer_at(result, row, 2);
    stored.submitted_at = text_at(result, row, 3);
    stored.deadline = text_at(result, row, 4);
    stored.deadline_passed = *PQgetvalue(&result, row, 5) == 't';
    batch.saw_stored(stored);
  }
}

StoreOutcome StatementCodec::read_call(const PGresult& result, StoreCall& call) {
  switch (call.kind) {
    case StoreCall::Kind::load_attempt:
    case StoreCall::Kind::submit_attempt:
      if (PQntuples(&result) == 0) return StoreOutcome::not_found;
      read_record(result, 0, 0, call.record);
      return StoreOutcome::done;
    case StoreCall::Kind::start_attempt: {
      // The first column says what happened (sql/schema.sql, start_attempt).
      const std::string_view what = PQntuples(&result) == 0 ? "" : PQgetvalue(&result, 0, 0);
      if (what == "created" || what == "replayed") {
        read_record(result, 0, 1, call.record);
        return what == "created" ? StoreOutcome::done : StoreOutcome::replayed;
      }
      return what == "key_reused" ? StoreOutcome::key_reused : StoreOutcome::not_found;
    }
    case StoreCall::Kind::load_history:
      return read_history(result, call);
    case StoreCall::Kind::ping:
    case StoreCall::Kind::save_answers:
      break;
  }
  return StoreOutcome::done;
}

StoreOutcome StatementCodec::read_history(const PGresult& result, StoreCall& call) {
  // saves, seq, kind, written_at, revision, writes, answers (sql.hpp kLoadHistory).
  const int rows = PQntuples(&result);
  if (rows == 0) return StoreOutcome::not_found;
  call.record.id = call.attempt_id;
  call.saves = integer_at(result, 0, 0);
  call.history.clear();
  for (int row = 0; row < rows; ++row) {
    if (PQgetisnull(&result, row, 1)) continue;  // the attempt, with no entry on this page
    HistoryEntry& entry = call.history.emplace_back();
    entry.seq = integer_at(result, row, 1);
    const char kind = *PQgetvalue(&result, row, 2);
    entry.kind = kind == 'b'   ? HistoryEntry::Kind::start
                 : kind == 'f' ? HistoryEntry::Kind::submit
                               : HistoryEntry::Kind::save;
    entry.written_at = text_at(result, row, 3).value_or("");
    if (!PQgetisnull(&result, row, 4)) entry.revision = integer_at(result, row, 4);
    entry.writes = static_cast<std::int32_t>(integer_at(result, row, 5));
    entry.answers_json = text_at(result, row, 6).value_or("{}");
  }
  return StoreOutcome::done;
}

std::optional<char> StatementCodec::read_persistence(const PGresult& result) {
  if (PQresultStatus(&result) != PGRES_TUPLES_OK || PQntuples(&result) != 1) return std::nullopt;
  const int last = PQnfields(&result) - 1;
  if (PQgetisnull(&result, 0, last)) return '\0';
  return *PQgetvalue(&result, 0, last);
}

std::optional<bool> StatementCodec::read_citus(const PGresult& result) {
  if (PQntuples(&result) != 1 || PQgetisnull(&result, 0, sql::kSessionSetupCitusColumn)) {
    return std::nullopt;
  }
  return *PQgetvalue(&result, 0, sql::kSessionSetupCitusColumn) == 't';
}

std::optional<BackendIdentity> StatementCodec::read_backend(const PGresult& result) {
  if (PQntuples(&result) != 1 || PQgetisnull(&result, 0, sql::kSessionSetupBackendPidColumn) ||
      PQgetisnull(&result, 0, sql::kSessionSetupBackendStartColumn)) {
    return std::nullopt;
  }
  return BackendIdentity{
      static_cast<int>(integer_at(result, 0, sql::kSessionSetupBackendPidColumn)),
      integer_at(result, 0, sql::kSessionSetupBackendStartColumn)};
}

std::optional<bool> StatementCodec::read_previous_gone(const PGresult& result) {
  if (PQntuples(&result) != 1 || PQgetisnull(&result, 0, sql::kSessionSetupPreviousGoneColumn)) {
    return std::nullopt;
  }
  return *PQgetvalue(&result, 0, sql::kSessionSetupPreviousGoneColumn) == 't';
}

ShardMap StatementCodec::read_shard_map(const PGresult& result) {
  if (PQnfields(&result) != static_cast<int>(kShardMapColumns)) {
    throw std::invalid_argument("the shard map query returned " +
                                std::to_string(PQnfields(&result)) + " columns");
  }
  const int rows = PQntuples(&result);
  std::vector<ShardMapRow> values(static_cast<std::size_t>(rows));
  for (int row = 0; row < rows; ++row) {
    for (int column = 0; column < static_cast<int>(kShardMapColumns); ++column) {
      if (PQgetisnull(&result, row, column)) continue;
      values[static_cast<std::size_t>(row)][static_cast<std::size_t>(column)] =
          std::string_view(PQgetvalue(&result, row, column),
                           static_cast<std::size_t>(PQgetlength(&result, row, column)));
    }
  }
  return parse_shard_map(values);
}

}  // namespace attempts::db
