#include "model/simulated_database.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "attempts/db/shard_map.hpp"
#include "db/sql.hpp"

namespace attempts::db::model {
namespace {

// ---- parameters, as PostgreSQL's binary format has them ---------------------------------------

std::uint32_t be32(const std::string& bytes, std::size_t at) {
  if (at + 4 > bytes.size()) throw std::runtime_error("parameter too short");
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i)
    value = value << 8 | static_cast<unsigned char>(bytes[at + i]);
  return value;
}

std::int64_t be64(const std::string& bytes, std::size_t at) {
  return static_cast<std::int64_t>(std::uint64_t{be32(bytes, at)} << 32 | be32(bytes, at + 4));
}

std::int32_t int4_param(const std::optional<std::string>& param) {
  if (!param || param->size() != 4) throw std::runtime_error("int4 parameter not 4 bytes");
  return static_cast<std::int32_t>(be32(*param, 0));
}

std::optional<std::int64_t> int8_param(const std::optional<std::string>& param) {
  if (!param) return std::nullopt;
  if (param->size() != 8)
    throw std::runtime_error("int8 parameter of " + std::to_string(param->size()) + " bytes");
  return be64(*param, 0);
}

std::string jsonb_param(const std::string& param) {
  if (param.empty() || param[0] != '\1')
    throw std::runtime_error("jsonb parameter without version 1");
  return param.substr(1);
}

// A one-dimensional array's elements (nullopt: NULL).
std::vector<std::optional<std::string>> array_param(const std::optional<std::string>& param) {
  if (!param) throw std::runtime_error("NULL array parameter");
  const std::string& bytes = *param;
  if (be32(bytes, 0) != 1) throw std::runtime_error("array of other than one dimension");
  const std::uint32_t count = be32(bytes, 12);
  std::vector<std::optional<std::string>> elements;
  std::size_t at = 20;
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto length = static_cast<std::int32_t>(be32(bytes, at));
    at += 4;
    if (length < 0) {
      elements.emplace_back(std::nullopt);
      continue;
    }
    if (at + static_cast<std::size_t>(length) > bytes.size())
      throw std::runtime_error("array element too long");
    elements.emplace_back(bytes.substr(at, static_cast<std::size_t>(length)));
    at += static_cast<std::size_t>(length);
  }
  if (at != bytes.size()) throw std::runtime_error("array with trailing bytes");
  return elements;
}

// ---- results ----------------------------------------------------------------------------------

using Row = std::vector<std::optional<std::string>>;

// A result with `columns` columns (all text, or all binary) and these rows, built with libpq.
std::shared_ptr<PGresult> make_result(int columns, const std::vector<Row>& rows,
                                      bool binary = false) {
  PGresult* result = PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK);
  std::vector<PGresAttDesc> descriptions(static_cast<std::size_t>(columns));
  std::vector<std::string> names(static_cast<std::size_t>(columns));
  for (int c = 0; c < columns; ++c) {
    names[static_cast<std::size_t>(c)] = std::string("c").append(std::to_string(c));
    auto& description = descriptions[static_cast<std::size_t>(c)];
    description = {};
    description.name = names[static_cast<std::size_t>(c)].data();
    description.format = binary ? 1 : 0;
    description.typid = binary ? 20 : 25;
    description.typlen = binary ? 8 : -1;
    description.atttypmod = -1;
  }
  if (PQsetResultAttrs(result, columns, descriptions.data()) == 0) {
    PQclear(result);
    throw std::runtime_error("PQsetResultAttrs failed");
  }
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (int c = 0; c < columns; ++c) {
      const auto& value = rows[r][static_cast<std::size_t>(c)];
      std::string copy = value.value_or("");
      if (PQsetvalue(result, static_cast<int>(r), c, value ? copy.data() : nullptr,
                     value ? static_cast<int>(copy.size()) : -1) == 0) {
        PQclear(result);
        throw std::runtime_error("PQsetvalue failed");
      }
    }
  }
  return std::shared_ptr<PGresult>(result, PQclear);
}

std::string int8_bytes(std::int64_t value) {
  std::string bytes(8, '\0');
  for (int i = 7; i >= 0; --i) {
    bytes[static_cast<std::size_t>(i)] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  return bytes;
}

Reply rows_reply(int columns, const std::vector<Row>& rows, bool binary = false) {
  Reply reply;
  reply.results.push_back(make_result(columns, rows, binary));
  return reply;
}

Reply error_reply(std::string message, bool transient, bool fatal = false) {
  Reply reply;
  reply.error = StatementError{std::move(message), transient, fatal};
  return reply;
}

bool owns(const std::optional<std::int64_t>& student, const AttemptState& attempt) {
  return !student || *student == attempt.owner;
}

}  // namespace

void SimulatedDatabase::distribute(int shards, std::vector<std::string> nodes) {
  shards_ = shards;
  nodes_ = std::move(nodes);
}

Backend& SimulatedDatabase::open_backend() {
  Backend& backend = backends_.emplace_back();
  backend.pid = next_pid_++;
  backend.started_us = std::int64_t{backend.pid} * 1000;
  return backend;
}

std::vector<Backend*> SimulatedDatabase::runnable() {
  std::vector<Backend*> found;
  for (auto& backend : backends_) {
    if (backend.alive && !backend.received.empty()) found.push_back(&backend);
  }
  return found;
}

std::size_t SimulatedDatabase::runnable_count() const {
  return static_cast<std::size_t>(std::count_if(
      backends_.begin(), backends_.end(),
      [](const Backend& backend) { return backend.alive && !backend.received.empty(); }));
}

void SimulatedDatabase::end_timed_out_orphans() {
  for (auto& backend : backends_) {
    if (backend.alive && backend.orphan && tick_ >= backend.orphan_until_tick) {
      backend.alive = false;
      backend.received.clear();
    }
  }
}

void SimulatedDatabase::run_next(Backend& backend) {
  ReceivedStatement statement = std::move(backend.received.front());
  backend.received.pop_front();
  Reply reply = run(backend, statement);
  if (!backend.orphan) backend.replies.push_back(std::move(reply));
}

bool SimulatedDatabase::rolls_back() {
  return std::bernoulli_distribution(faults_.rollback_chance)(random_);
}

bool SimulatedDatabase::deadline_passed(const AttemptState& attempt) const {
  return attempt.deadline_tick && tick_ >= *attempt.deadline_tick;
}

Reply SimulatedDatabase::run(Backend& backend, const ReceivedStatement& statement) {
  if (statement.name == "setup") return setup(statement, backend);
  if (!statement.query.empty()) {
    if (statement.query == kShardMapQuery) return shard_map();
    throw std::runtime_error("unexpected query: " + statement.query);
  }
  const std::string& name = statement.name;
  if (name == sql::kSaveOneName || name == sql::kSaveOneShardName || name == sql::kSaveBatchName ||
      name == sql::kSaveShardName || name == sql::kSaveOneKeptName ||
      name == sql::kSaveOneShardKeptName || name == sql::kSaveBatchKeptName ||
      name == sql::kSaveShardKeptName) {
    const bool shard = name == sql::kSaveOneShardName || name == sql::kSaveShardName ||
                       name == sql::kSaveOneShardKeptName || name == sql::kSaveShardKeptName;
    if (distributed() != shard) return error_reply(name + " does not fit the table", false);
    return save(statement, backend.orphan);
  }
  if (name == sql::kLoadHistoryName) return load_history(statement);
  if (name == sql::kWhyNotSavedName) return why_not_saved(statement);
  if (name == sql::kLoadAttemptName) return load_or_submit(statement, false, backend.orphan);
  if (name == sql::kSubmitAttemptName) return load_or_submit(statement, true, backend.orphan);
  if (name == sql::kPingName) return rows_reply(1, {{"u"}});
  throw std::runtime_error("unexpected statement " + name);
}

Reply SimulatedDatabase::setup(const ReceivedStatement& statement, const Backend& backend) {
  // $7: whether starts and submits go on the record (attempts.history).
  if (statement.params.size() >= 7 && statement.params[6]) history_ = *statement.params[6] == "on";
  // $4, $5: the backend of a lost session to see gone (ended if it still runs).
  std::optional<std::string> previous_gone;
  if (statement.params.size() >= 5 && statement.params[3]) {
    const int pid = std::stoi(*statement.params[3]);
    const std::int64_t started = std::stoll(statement.params[4].value());
    previous_gone = "t";
    for (auto& other : backends_) {
      if (other.pid != pid || other.started_us != started || !other.alive) continue;
      if (std::bernoulli_distribution(faults_.survives_terminate_chance)(random_)) {
        previous_gone = "f";
      } else {
        other.alive = false;
        other.received.clear();
      }
    }
  }
  Row row = {std::string("UTC"),
             std::string("5000"),
             std::string("on"),
             statement.params.size() >= 7 ? statement.params[6] : std::nullopt,
             std::string(distributed() ? "t" : "f"),
             std::to_string(backend.pid),
             std::to_string(backend.started_us),
             previous_gone,
             std::string("u")};
  return rows_reply(9, {row});
}

Reply SimulatedDatabase::shard_map() {
  std::vector<Row> rows;
  const std::int64_t span = (std::int64_t{1} << 32) / shards_;
  for (int s = 0; s < shards_; ++s) {
    const std::int64_t low = std::int64_t{INT32_MIN} + s * span;
    const std::int64_t high = s + 1 == shards_ ? std::int64_t{INT32_MAX} : low + span - 1;
    const std::string& node = nodes_[static_cast<std::size_t>(s) % nodes_.size()];
    const auto colon = node.find(':');
    rows.push_back({std::to_string(102008 + s), std::to_string(low), std::to_string(high),
                    node.substr(0, colon), node.substr(colon + 1), std::string("t")});
  }
  return rows_reply(6, rows);
}

Reply SimulatedDatabase::save(const ReceivedStatement& statement, bool orphan) {
  struct WriteRow {
    std::int64_t id;
    std::optional<std::int64_t> student;
    std::optional<std::int64_t> revision;
    std::string answers;
    std::int32_t writes;
  };
  std::vector<WriteRow> rows;
  const std::string& name = statement.name;
  const bool one = name == sql::kSaveOneName || name == sql::kSaveOneShardName ||
                   name == sql::kSaveOneKeptName || name == sql::kSaveOneShardKeptName;
  const bool kept = name == sql::kSaveOneKeptName || name == sql::kSaveOneShardKeptName ||
                    name == sql::kSaveBatchKeptName || name == sql::kSaveShardKeptName;
  // The last parameter is the answered count (attempts.answered), which the model does not keep.
  if (statement.params.size() != (kept ? 6u : 5u)) {
    throw std::runtime_error(name + " with " + std::to_string(statement.params.size()) +
                             " parameters");
  }
  if (one) {
    rows.push_back({int8_param(statement.params.at(0)).value(), int8_param(statement.params.at(1)),
                    int8_param(statement.params.at(2)), jsonb_param(statement.params.at(3).value()),
                    kept ? int4_param(statement.params.at(4)) : 1});
  } else {
    const auto ids = array_param(statement.params.at(0));
    const auto students = array_param(statement.params.at(1));
    const auto revisions = array_param(statement.params.at(2));
    const auto answers = array_param(statement.params.at(3));
    const auto writes = kept ? array_param(statement.params.at(4))
                             : std::vector<std::optional<std::string>>(ids.size());
    if (students.size() != ids.size() || revisions.size() != ids.size() ||
        answers.size() != ids.size() || writes.size() != ids.size()) {
      throw std::runtime_error("save arrays of different lengths");
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
      rows.push_back({int8_param(ids[i]).value(), int8_param(students[i]), int8_param(revisions[i]),
                      jsonb_param(answers[i].value()), kept ? int4_param(writes[i]) : 1});
    }
    if (!std::is_sorted(rows.begin(), rows.end(),
                        [](const WriteRow& a, const WriteRow& b) { return a.id < b.id; })) {
      throw std::runtime_error("batch rows not sorted by id: two batches could deadlock");
    }
  }
  if (rolls_back()) return error_reply("could not serialize access due to concurrent update", true);
  // The statement sees the table as it was when it started: a row is updated at most once.
  Table after = table_;
  std::vector<Change> changes;
  std::vector<LedgerRow> records;
  std::vector<Row> returned;
  std::set<std::int64_t> updated;
  for (const auto& row : rows) {
    // A row vanished (a split race) is sent again; every other row was judged here.
    if (distributed() && std::bernoulli_distribution(faults_.vanish_chance)(random_)) continue;
    received_answers_.insert(row.answers);
    const auto found = after.find(row.id);
    if (found == after.end() || updated.count(row.id) != 0) continue;
    AttemptState& attempt = found->second;
    if (!owns(row.student, attempt) || attempt.submitted_at || deadline_passed(attempt)) continue;
    if (row.revision && *row.revision <= attempt.revision) continue;
    attempt.answers = row.answers;
    if (row.revision) attempt.revision = *row.revision;
    updated.insert(row.id);
    changes.push_back({step_, tick_, row.id, false, attempt.answers, attempt.revision, orphan});
    if (kept) {
      // In the same statement: it commits with the save or not at all.
      if (row.writes < 1) throw std::runtime_error("a record that stands for no write");
      records.push_back(
          {row.id, ++attempt.saves, 's', row.revision, row.writes, row.answers, step_});
    }
    if (one) {
      returned.push_back({int8_bytes(row.id)});
    } else {
      returned.push_back({int8_bytes(row.id), int8_bytes(attempt.owner)});
    }
  }
  table_ = std::move(after);
  changes_.insert(changes_.end(), changes.begin(), changes.end());
  ledger_.insert(ledger_.end(), records.begin(), records.end());
  return rows_reply(one ? 1 : 2, returned, true);
}

Reply SimulatedDatabase::load_history(const ReceivedStatement& statement) {
  // saves, seq, kind, written_at, revision, writes, answers; newest first, from $3 down, $5 rows.
  const std::int64_t id = int8_param(statement.params.at(0)).value();
  const auto student = int8_param(statement.params.at(1));
  const auto before = int8_param(statement.params.at(2));
  const std::int32_t limit = int4_param(statement.params.at(4));
  const auto found = table_.find(id);
  if (found == table_.end() || !owns(student, found->second)) return rows_reply(7, {});
  std::vector<Row> rows;
  for (auto entry = ledger_.rbegin(); entry != ledger_.rend(); ++entry) {
    if (entry->attempt != id || (before && entry->seq >= *before)) continue;
    if (static_cast<std::int32_t>(rows.size()) == limit) break;
    rows.push_back({std::to_string(found->second.saves), std::to_string(entry->seq),
                    std::string(1, entry->kind),
                    std::string("step ").append(std::to_string(entry->step)),
                    entry->revision ? std::optional<std::string>(std::to_string(*entry->revision))
                                    : std::nullopt,
                    std::to_string(entry->writes), entry->answers});
  }
  if (rows.empty()) {
    rows.push_back({std::to_string(found->second.saves), std::nullopt, std::nullopt, std::nullopt,
                    std::nullopt, std::nullopt, std::nullopt});
  }
  return rows_reply(7, rows);
}

Reply SimulatedDatabase::why_not_saved(const ReceivedStatement& statement) {
  std::vector<Row> rows;
  for (const auto& element : array_param(statement.params.at(0))) {
    const std::int64_t id = int8_param(element).value();
    const auto found = table_.find(id);
    if (found == table_.end()) continue;
    const AttemptState& attempt = found->second;
    rows.push_back({std::to_string(id), std::to_string(attempt.owner),
                    std::to_string(attempt.revision), attempt.submitted_at,
                    attempt.deadline_tick
                        ? std::optional<std::string>(deadline_text(*attempt.deadline_tick))
                        : std::nullopt,
                    std::string(deadline_passed(attempt) ? "t" : "f")});
  }
  return rows_reply(6, rows);
}

Reply SimulatedDatabase::load_or_submit(const ReceivedStatement& statement, bool submit,
                                        bool orphan) {
  const std::int64_t id = int8_param(statement.params.at(0)).value();
  const auto student = int8_param(statement.params.at(1));
  const auto found = table_.find(id);
  if (found == table_.end() || !owns(student, found->second)) return rows_reply(9, {});
  AttemptState& attempt = found->second;
  if (submit) {
    if (rolls_back())
      return error_reply("could not serialize access due to concurrent update", true);
    if (!attempt.submitted_at) {
      attempt.submitted_at = submitted_text(tick_);
      changes_.push_back({step_, tick_, id, true, attempt.answers, attempt.revision, orphan});
      if (history_) {
        ledger_.push_back(
            {id, attempt.saves + 1, 'f', attempt.revision, 1, attempt.answers, step_});
      }
    }
  }
  const auto optional_text = [](const std::optional<std::string>& text) { return text; };
  Row row = {std::to_string(id),
             std::string("1"),
             std::to_string(attempt.owner),
             attempt.answers,
             std::to_string(attempt.revision),
             std::string("started"),
             attempt.deadline_tick
                 ? std::optional<std::string>(deadline_text(*attempt.deadline_tick))
                 : std::nullopt,
             std::nullopt,
             optional_text(attempt.submitted_at)};
  return rows_reply(9, {row});
}

}  // namespace attempts::db::model
