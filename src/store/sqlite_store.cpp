// SqliteStore: the Store contract on one SQLite file in WAL mode. One writer
// connection (serialized by write_mutex, every write in BEGIN IMMEDIATE) and one
// reader connection, so reads never wait on a commit's fsync. commit() is the hot
// path: its statements are prepared once and reused, one transaction per batch.
#include <loom/sqlite_store.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include "store/run_listing.hpp"
#include "store/sqlite_schema.hpp"
#include "store/store_support.hpp"

namespace loom {
namespace {

constexpr const char* kRunColumns =
    "id, workflow_name, workflow_version, workflow_hash, status, cancel_requested, input, "
    "output, error, created_at, updated_at, finished_at, idempotency_key, priority, paused, owner, "
    "lease_until";

// ---- binding and reading columns -------------------------------------------------

// Invalid UTF-8 in a handler's output must not fail the commit that records it:
// it is stored with U+FFFD in its place.
std::string dump(const Json& value) {
    return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void bind_json(SQLite::Statement& s, int index, const Json& value) {
    if (value.is_null()) s.bind(index);
    else s.bind(index, dump(value));
}

void bind_text(SQLite::Statement& s, int index, const std::string& text) {
    if (text.empty()) s.bind(index);
    else s.bindNoCopy(index, text);
}

void bind_time(SQLite::Statement& s, int index, const std::optional<TimePoint>& at) {
    if (at) s.bind(index, detail::to_millis(*at));
    else s.bind(index);
}

void bind_status(SQLite::Statement& s, int index, std::string_view name) {
    s.bind(index, std::string(name));
}

std::string text_column(const SQLite::Column& c) {
    return c.isNull() ? std::string() : c.getString();
}

Json json_column(const SQLite::Column& c) { return c.isNull() ? Json() : Json::parse(c.getText()); }

std::optional<TimePoint> time_column(const SQLite::Column& c) {
    if (c.isNull()) return std::nullopt;
    return detail::from_millis(c.getInt64());
}

// Reads the row of a statement that selects kRunColumns.
// The columns a step and a for_each element share, in this order from
// `first`: status, attempts, output, error, started_at, finished_at, wake_at,
// attempt_base.
template <class Progress>
void bind_progress(SQLite::Statement& s, int first, const Progress& p) {
    bind_status(s, first, to_string(p.status));
    s.bind(first + 1, p.attempts);
    bind_json(s, first + 2, p.output);
    bind_text(s, first + 3, p.error);
    bind_time(s, first + 4, p.started_at);
    bind_time(s, first + 5, p.finished_at);
    bind_time(s, first + 6, p.wake_at);
    s.bind(first + 7, p.attempt_base);
}

// bind_progress's columns, read back.
template <class Progress>
void read_progress(SQLite::Statement& s, int first, Progress& p) {
    p.status = parse_step_status(s.getColumn(first).getText());
    p.attempts = s.getColumn(first + 1).getInt();
    p.output = json_column(s.getColumn(first + 2));
    p.error = text_column(s.getColumn(first + 3));
    p.started_at = time_column(s.getColumn(first + 4));
    p.finished_at = time_column(s.getColumn(first + 5));
    p.wake_at = time_column(s.getColumn(first + 6));
    p.attempt_base = s.getColumn(first + 7).getInt();
}

RunInfo read_run(SQLite::Statement& s) {
    RunInfo run;
    run.id = s.getColumn(0).getString();
    run.workflow_name = s.getColumn(1).getString();
    run.workflow_version = s.getColumn(2).getInt64();
    run.workflow_hash = s.getColumn(3).getString();
    run.status = parse_run_status(s.getColumn(4).getText());
    run.cancel_requested = s.getColumn(5).getInt() != 0;
    run.input = json_column(s.getColumn(6));
    run.output = json_column(s.getColumn(7));
    run.error = text_column(s.getColumn(8));
    run.created_at = detail::from_millis(s.getColumn(9).getInt64());
    run.updated_at = detail::from_millis(s.getColumn(10).getInt64());
    run.finished_at = time_column(s.getColumn(11));
    run.priority = s.getColumn(13).getInt();
    run.paused = s.getColumn(14).getInt() != 0;
    run.idempotency_key = text_column(s.getColumn(12));
    run.owner = text_column(s.getColumn(15));
    run.lease_until = time_column(s.getColumn(16));
    return run;
}

WorkflowRecord read_workflow(SQLite::Statement& s) {
    WorkflowRecord record;
    record.name = s.getColumn(0).getString();
    record.version = s.getColumn(1).getInt64();
    record.hash = s.getColumn(2).getString();
    record.definition = Json::parse(s.getColumn(3).getText());
    record.created_at = detail::from_millis(s.getColumn(4).getInt64());
    return record;
}

// Borrows a cached statement for one use and resets it afterwards, also after an
// error: a half-read result would keep its read open, pin an old WAL snapshot and
// stall checkpoints.
class Use {
public:
    explicit Use(SQLite::Statement& statement) : statement_(statement) {}
    ~Use() { statement_.tryReset(); }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

    SQLite::Statement& operator*() const { return statement_; }
    SQLite::Statement* operator->() const { return &statement_; }

private:
    SQLite::Statement& statement_;
};

// Runs an INSERT. translate(extended code) throws the contract's error for the
// constraint violations it names; any other failure stays a SQLite::Exception.
template <class Translate>
void exec_insert(SQLite::Statement& s, Translate&& translate) {
    try {
        s.exec();
    } catch (const SQLite::Exception& e) {
        translate(e.getExtendedErrorCode());
        throw;
    }
}

// Every SQLite failure leaves as the StoreError the Store contract promises; a
// lock that outlived the busy timeout gets its own id, as hosts may retry it.
StoreError store_error(const SQLite::Exception& e, const std::string& doing) {
    const int primary = e.getErrorCode() & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
        return StoreError(error_id::store_busy,
                          fmt::format("{}: the database stayed locked by another connection "
                                      "beyond the busy timeout: {}",
                                      doing, e.what()));
    }
    // The extended code tells a failed fsync (1034) from a failed write (778),
    // which the text ("disk I/O error") does not.
    return StoreError(error_id::store_io, fmt::format("{}: {} (SQLite code {})", doing, e.what(),
                                                   e.getExtendedErrorCode()));
}

SQLite::Database open_connection(const std::string& path, int flags, const SqliteOptions& options) {
    SQLite::Database db(path, flags, static_cast<int>(options.busy_timeout.count()), options.vfs);
    const bool full = options.synchronous == SqliteOptions::Synchronous::full;
    db.exec(full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA foreign_keys = ON");
    return db;
}

// Switching a new file to WAL takes the file's exclusive lock while holding a
// read lock, and SQLite answers a competing opener (another process creating
// the same file) with SQLITE_BUSY at once instead of calling the busy handler,
// as waiting could deadlock. So retry, for as long as busy_timeout allows.
void use_wal(SQLite::Database& db, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        try {
            db.exec("PRAGMA journal_mode = WAL");
            return;
        } catch (const SQLite::Exception& e) {
            if ((e.getErrorCode() & 0xff) != SQLITE_BUSY ||
                std::chrono::steady_clock::now() >= deadline) {
                throw;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

// Names the runs and steps a batch writes, for the error of a transaction that
// failed as a whole (BEGIN or COMMIT): "run X (steps a, b), run Y (new)".
// Bounded, as a batch may carry hundreds of changes.
std::string batch_contents(const Batch& batch) {
    constexpr std::size_t kMaxRuns = 8, kMaxSteps = 8;
    std::vector<std::pair<const std::string*, std::vector<const std::string*>>> runs;
    std::size_t more_runs = 0;
    auto entry = [&](const std::string& run) -> std::vector<const std::string*>* {
        for (auto& r : runs)
            if (*r.first == run) return &r.second;
        if (runs.size() == kMaxRuns) {
            ++more_runs;
            return nullptr;
        }
        return &runs.emplace_back(&run, std::vector<const std::string*>{}).second;
    };
    auto add_step = [&](const std::string& run, const std::string& step) {
        auto* steps = entry(run);
        if (!steps || step.empty()) return;
        for (auto* s : *steps)
            if (*s == step) return;
        steps->push_back(&step);
    };
    std::vector<const std::string*> fresh;
    for (const auto& r : batch.new_runs) {
        if (entry(r.id)) fresh.push_back(&r.id);
    }
    for (const auto& w : batch.steps) add_step(w.run_id, w.step_id);
    for (const auto& w : batch.runs) entry(w.run_id);
    for (const auto& e : batch.events) add_step(e.run_id, e.step_id);

    std::string out;
    for (const auto& [run, steps] : runs) {
        out += out.empty() ? "run " : ", run ";
        out += *run;
        std::string inner;
        if (std::find(fresh.begin(), fresh.end(), run) != fresh.end()) inner = "new";
        for (std::size_t i = 0; i < steps.size() && i < kMaxSteps; ++i)
            inner += (inner.empty() ? (steps.size() > 1 ? "steps " : "step ") : ", ") + *steps[i];
        if (steps.size() > kMaxSteps) inner += fmt::format(" and {} more", steps.size() - kMaxSteps);
        if (!inner.empty()) out += " (" + inner + ")";
    }
    if (more_runs > 0) out += fmt::format(" and {} more runs", more_runs);
    return out;
}

// What a write was doing when it failed, kept as pointers so that the hot path
// formats nothing unless there is an error to report. A statement names its
// row, and a commit's batch is named too: all of it is rolled back.
struct Doing {
    const char* action = "starting the transaction for";
    const std::string* run = nullptr;
    const std::string* step = nullptr;
    const std::string* workflow = nullptr;
    const std::string* executor = nullptr;
    const Batch* batch = nullptr;

    /// Now at a statement on one row, in the same transaction.
    void at(const char* what, const std::string* run_id, const std::string* step_id = nullptr) {
        action = what;
        run = run_id;
        step = step_id;
    }

    std::string describe(const std::string& path) const {
        std::string out = path + ": " + action;
        if (step) out += " step " + *step + " of";
        if (run) out += " run " + *run;
        if (workflow) out += " workflow " + *workflow;
        if (executor) out += " executor " + *executor;
        if (batch) out += (run ? ", in the transaction for " : " ") + batch_contents(*batch);
        return out;
    }
};

}  // namespace

struct SqliteStore::Impl {
    std::string path;

    std::mutex write_mutex;
    // The writer and its statements are guarded by write_mutex (statements are
    // declared after the connection so that they are finalized before it closes).
    SQLite::Database writer;
    SQLite::Statement find_definition_hash;
    SQLite::Statement insert_definition;
    SQLite::Statement insert_run;
    SQLite::Statement find_key_holder;
    SQLite::Statement insert_step;
    SQLite::Statement update_step;
    SQLite::Statement update_run;
    SQLite::Statement insert_event;
    SQLite::Statement insert_log;
    SQLite::Statement upsert_item;
    SQLite::Statement delete_items;
    SQLite::Statement find_owner;
    SQLite::Statement take_lease;
    SQLite::Statement claim;
    SQLite::Statement renew;
    SQLite::Statement release;
    SQLite::Statement control;

    std::mutex read_mutex;
    // The reader and its statements are guarded by read_mutex.
    SQLite::Database reader;
    SQLite::Statement select_latest_definition;
    SQLite::Statement select_definition;
    SQLite::Statement select_definitions;
    SQLite::Statement select_run;
    SQLite::Statement select_run_by_key;
    SQLite::Statement select_steps;
    SQLite::Statement select_items;
    SQLite::Statement select_unfinished;
    SQLite::Statement select_events;
    SQLite::Statement select_logs;
    SQLite::Statement select_owners;
    SQLite::Statement select_controlled;
    SQLite::Statement select_last_seq;

    Impl(const std::string& file, const SqliteOptions& options)
        : path(file),
          writer(prepare_file(file, options)),
          find_definition_hash(writer,
              "SELECT hash FROM workflow_definitions WHERE name = ? AND version = ?"),
          insert_definition(writer,
              "INSERT INTO workflow_definitions (name, version, hash, definition, created_at) "
              "VALUES (?, ?, ?, ?, ?)"),
          insert_run(writer,
              "INSERT INTO workflow_runs (id, workflow_name, workflow_version, workflow_hash, "
              "status, cancel_requested, input, output, error, created_at, updated_at, "
              "finished_at, idempotency_key, priority, paused, owner, lease_until) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
          find_key_holder(writer, "SELECT id FROM workflow_runs WHERE idempotency_key = ?"),
          insert_step(writer,
              "INSERT INTO step_runs (run_id, step_id, position, status, attempts, output, "
              "error, started_at, finished_at, wake_at, attempt_base) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
          update_step(writer,
              "UPDATE step_runs SET status = ?, attempts = ?, output = ?, error = ?, "
              "started_at = ?, finished_at = ?, wake_at = ?, attempt_base = ? WHERE run_id = ? AND step_id = ?"),
          update_run(writer,
              "UPDATE workflow_runs SET status = ?, cancel_requested = ?, output = ?, error = ?, "
              "updated_at = ?, finished_at = ?, paused = ?, "
              "owner = CASE WHEN ?1 = 'running' THEN owner END, "
              "lease_until = CASE WHEN ?1 = 'running' THEN lease_until END WHERE id = ?"),
          insert_event(writer,
              "INSERT INTO run_events (run_id, step_id, kind, attempt, detail, at) "
              "VALUES (?, ?, ?, ?, ?, ?)"),
          insert_log(writer,
              "INSERT INTO run_logs (run_id, step_id, item, attempt, level, message, at) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)"),
          upsert_item(writer,
              "INSERT INTO step_items (run_id, step_id, idx, status, attempts, output, error, "
              "started_at, finished_at, wake_at, attempt_base) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
              "ON CONFLICT (run_id, step_id, idx) DO UPDATE SET status = excluded.status, "
              "attempts = excluded.attempts, output = excluded.output, error = excluded.error, "
              "started_at = excluded.started_at, finished_at = excluded.finished_at, "
              "wake_at = excluded.wake_at, attempt_base = excluded.attempt_base"),
          delete_items(writer, "DELETE FROM step_items WHERE run_id = ? AND step_id = ?"),
          find_owner(writer, "SELECT owner FROM workflow_runs WHERE id = ?"),
          take_lease(writer,
              "UPDATE workflow_runs SET owner = ?, lease_until = ? WHERE id = ? AND status != 'running'"),
          // The lists are JSON arrays so that one prepared statement serves
          // every claim. Oldest first, as the index on (status, created_at) reads.
          claim(writer,
              "UPDATE workflow_runs SET owner = :owner, lease_until = :until WHERE id IN ("
              "SELECT id FROM workflow_runs WHERE status = 'running' AND "
              "(owner IS NULL OR lease_until IS NULL OR lease_until <= :now "
              "OR owner IN (SELECT value FROM json_each(:dead))) AND "
              "(:enqueued OR owner IS NOT NULL OR lease_until IS NOT NULL) AND "
              "(:any OR EXISTS (SELECT 1 FROM json_each(:workflows) w WHERE "
              "w.value ->> 0 = workflow_name AND w.value ->> 1 = workflow_version)) "
              "ORDER BY created_at, rowid LIMIT :limit) RETURNING id"),
          renew(writer,
              "UPDATE workflow_runs SET lease_until = :until WHERE id IN (SELECT value FROM json_each(:ids)) "
              "AND owner = :owner AND status = 'running' RETURNING id"),
          release(writer,
              "UPDATE workflow_runs SET owner = NULL, lease_until = :now "
              "WHERE id IN (SELECT value FROM json_each(:ids)) AND owner = :owner"),
          // The seq after which the request comes: its own events get a higher one.
          control(writer,
              "UPDATE workflow_runs SET cancel_requested = coalesce(?1, cancel_requested), "
              "paused = coalesce(?2, paused), "
              "control_seq = (SELECT coalesce(max(seq), 0) + 1 FROM run_events) "
              "WHERE id = ?3 AND status = 'running'"),
          reader(open_connection(file, SQLite::OPEN_READWRITE, options)),
          select_latest_definition(reader,
              "SELECT name, version, hash, definition, created_at FROM workflow_definitions "
              "WHERE name = ? ORDER BY version DESC LIMIT 1"),
          select_definition(reader,
              "SELECT name, version, hash, definition, created_at FROM workflow_definitions "
              "WHERE name = ? AND version = ?"),
          select_definitions(reader,
              "SELECT name, version, hash, definition, created_at FROM workflow_definitions "
              "ORDER BY name, version"),
          select_run(reader, fmt::format("SELECT {} FROM workflow_runs WHERE id = ?", kRunColumns)),
          // Answered by the partial index workflow_runs_by_idempotency_key (schema 4).
          select_run_by_key(reader, "SELECT id FROM workflow_runs WHERE idempotency_key = ?"),
          select_steps(reader,
              "SELECT step_id, status, attempts, output, error, started_at, finished_at, wake_at, attempt_base "
              "FROM step_runs WHERE run_id = ? ORDER BY position"),
          select_items(reader,
              "SELECT step_id, idx, status, attempts, output, error, started_at, finished_at, "
              "wake_at, attempt_base FROM step_items WHERE run_id = ? ORDER BY step_id, idx"),
          // rowid breaks ties between runs created in the same millisecond.
          select_unfinished(reader,
              "SELECT id FROM workflow_runs WHERE status = 'running' ORDER BY created_at, rowid"),
          select_events(reader,
              "SELECT seq, run_id, step_id, kind, attempt, detail, at FROM run_events "
              "WHERE run_id = ? ORDER BY seq"),
          select_logs(reader,
              "SELECT run_id, step_id, item, attempt, level, message, at FROM run_logs "
              "WHERE run_id = ?1 AND (?2 = '' OR step_id = ?2) ORDER BY rowid"),
          select_owners(reader,
              "SELECT DISTINCT owner FROM workflow_runs WHERE status = 'running' AND owner IS NOT NULL"),
          select_controlled(reader,
              "SELECT id FROM workflow_runs WHERE owner = ? AND status = 'running' AND control_seq > ?"),
          select_last_seq(reader, "SELECT coalesce(max(seq), 0) FROM run_events") {
        reader.exec("PRAGMA query_only = ON");
    }

    // Opens the writer, refuses a newer schema before anything touches the file,
    // then switches to WAL (persistent, so every later connection uses it) and migrates.
    static SQLite::Database prepare_file(const std::string& file, const SqliteOptions& options) {
        SQLite::Database db =
            open_connection(file, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, options);
        detail::check_schema_version(db, file);
        use_wal(db, options.busy_timeout);
        detail::migrate(db, file);
        return db;
    }

    // Runs one write transaction under write_mutex; f(doing) does the work and
    // keeps `doing` current for the error message. `context` is what BEGIN and
    // COMMIT failures name.
    template <class F>
    auto write(const Doing& context, F&& f) {
        std::lock_guard lock(write_mutex);
        Doing doing = context;
        try {
            // A failed ROLLBACK may have left a transaction open; never build on it.
            if (sqlite3_get_autocommit(writer.getHandle()) == 0) {
                writer.exec("ROLLBACK");
            }
            SQLite::Transaction transaction(writer, SQLite::TransactionBehavior::IMMEDIATE);
            auto result = f(doing);
            doing = context;
            doing.action = "committing the transaction for";
            transaction.commit();
            return result;
        } catch (const SQLite::Exception& e) {
            throw store_error(e, doing.describe(path));
        }
    }

    // save_workflow, or with `replace` replace_workflow.
    bool save_definition(const WorkflowRecord& workflow, bool replace) {
        Doing context;
        context.workflow = &workflow.name;
        return write(context, [&](Doing& doing) {
            doing = Doing{replace ? "replacing the definition of" : "saving the definition of", nullptr,
                          nullptr, &workflow.name};
            Use find(find_definition_hash);
            find->bindNoCopy(1, workflow.name);
            find->bind(2, workflow.version);
            const bool stored = find->executeStep();
            if (stored) {
                std::string hash = find->getColumn(0).getString();
                if (hash == workflow.hash) return false;
                if (!replace) throw detail::definition_conflict(workflow.name, workflow.version, hash, workflow.hash);
                // Development only: the statements are prepared per call, not kept.
                SQLite::Statement user(writer,
                                       "SELECT id FROM workflow_runs WHERE workflow_name = ? AND "
                                       "workflow_version = ? AND status = 'running' LIMIT 1");
                user.bindNoCopy(1, workflow.name);
                user.bind(2, workflow.version);
                if (user.executeStep())
                    throw detail::definition_in_use(workflow.name, workflow.version, user.getColumn(0).getString());
                // Updated in place: finished runs still reference the row.
                SQLite::Statement update(writer,
                                         "UPDATE workflow_definitions SET hash = ?, definition = ?, "
                                         "created_at = ? WHERE name = ? AND version = ?");
                update.bindNoCopy(1, workflow.hash);
                update.bind(2, dump(workflow.definition));
                update.bind(3, detail::to_millis(workflow.created_at));
                update.bindNoCopy(4, workflow.name);
                update.bind(5, workflow.version);
                update.exec();
                return true;
            }
            Use insert(insert_definition);
            insert->bindNoCopy(1, workflow.name);
            insert->bind(2, workflow.version);
            insert->bindNoCopy(3, workflow.hash);
            insert->bind(4, dump(workflow.definition));
            insert->bind(5, detail::to_millis(workflow.created_at));
            insert->exec();
            return true;
        });
    }

    // Runs f under read_mutex, in one read transaction so that what it reads
    // comes from one snapshot.
    template <class F>
    auto read(const std::string& doing, F&& f) {
        std::lock_guard lock(read_mutex);
        try {
            SQLite::Transaction transaction(reader);
            auto result = f();
            transaction.commit();
            return result;
        } catch (const SQLite::Exception& e) {
            throw store_error(e, path + ": " + doing);
        } catch (const Json::exception& e) {
            throw StoreError(error_id::store_corrupt,
                             fmt::format("{}: {}: stored JSON is unreadable: {}", path, doing,
                                         e.what()));
        }
    }

    void add_run(const RunInfo& run, Doing& doing) {
        doing.at("inserting", &run.id);
        Use s(insert_run);
        s->bindNoCopy(1, run.id);
        s->bindNoCopy(2, run.workflow_name);
        s->bind(3, run.workflow_version);
        s->bindNoCopy(4, run.workflow_hash);
        bind_status(*s, 5, to_string(run.status));
        s->bind(6, run.cancel_requested ? 1 : 0);
        bind_json(*s, 7, run.input);
        bind_json(*s, 8, run.output);
        bind_text(*s, 9, run.error);
        s->bind(10, detail::to_millis(run.created_at));
        s->bind(11, detail::to_millis(run.updated_at));
        bind_time(*s, 12, run.finished_at);
        bind_text(*s, 13, run.idempotency_key);
        s->bind(14, run.priority);
        s->bind(15, run.paused ? 1 : 0);
        bind_text(*s, 16, run.owner);
        bind_time(*s, 17, run.owner.empty() ? std::nullopt : run.lease_until);
        exec_insert(*s, [&](int code) {
            if (code == SQLITE_CONSTRAINT_PRIMARYKEY) throw detail::duplicate_run(run.id);
            if (code == SQLITE_CONSTRAINT_FOREIGNKEY) throw detail::unknown_workflow(run);
            if (code == SQLITE_CONSTRAINT_UNIQUE) {   // workflow_runs_by_idempotency_key
                throw detail::duplicate_key(run, key_holder(run.idempotency_key));
            }
        });
        for (std::size_t i = 0; i < run.steps.size(); ++i) add_step(run.id, run.steps[i], i, doing);
        for (const StepInfo& step : run.steps)
            for (const ItemInfo& item : step.items) write_item(ItemWrite{run.id, step.step_id, item}, doing);
    }

    // The run holding a key, as this transaction sees it (a run inserted earlier
    // in the same batch included).
    RunId key_holder(const std::string& key) {
        Use s(find_key_holder);
        s->bindNoCopy(1, key);
        return s->executeStep() ? s->getColumn(0).getString() : RunId();
    }

    void add_step(const RunId& run_id, const StepInfo& step, std::size_t position, Doing& doing) {
        doing.at("inserting", &run_id, &step.step_id);
        Use s(insert_step);
        s->bindNoCopy(1, run_id);
        s->bindNoCopy(2, step.step_id);
        s->bind(3, static_cast<std::int64_t>(position));
        bind_progress(*s, 4, step);
        exec_insert(*s, [&](int code) {
            if (code == SQLITE_CONSTRAINT_PRIMARYKEY) {
                throw detail::duplicate_step(run_id, step.step_id);
            }
        });
    }

    void write_step(const StepWrite& write, Doing& doing) {
        doing.at("updating", &write.run_id, &write.step_id);
        Use s(update_step);
        bind_progress(*s, 1, write);
        s->bindNoCopy(9, write.run_id);
        s->bindNoCopy(10, write.step_id);
        if (s->exec() != 1) throw detail::missing_row(write.run_id, write.step_id);
        if (write.reset_items) {
            Use d(delete_items);
            d->bindNoCopy(1, write.run_id);
            d->bindNoCopy(2, write.step_id);
            d->exec();
        }
    }

    void write_item(const ItemWrite& write, Doing& doing) {
        doing.at("updating an element of", &write.run_id, &write.step_id);
        const ItemInfo& item = write.item;
        Use s(upsert_item);
        s->bindNoCopy(1, write.run_id);
        s->bindNoCopy(2, write.step_id);
        s->bind(3, static_cast<std::int64_t>(item.index));
        bind_progress(*s, 4, item);
        exec_insert(*s, [&](int code) {
            if (code == SQLITE_CONSTRAINT_FOREIGNKEY) throw detail::missing_row(write.run_id, write.step_id);
        });
    }

    void write_run(const RunWrite& write, Doing& doing) {
        doing.at("updating", &write.run_id);
        Use s(update_run);
        bind_status(*s, 1, to_string(write.status));
        s->bind(2, write.cancel_requested ? 1 : 0);
        bind_json(*s, 3, write.output);
        bind_text(*s, 4, write.error);
        s->bind(5, detail::to_millis(write.updated_at));
        bind_time(*s, 6, write.finished_at);
        s->bind(7, write.paused ? 1 : 0);
        s->bindNoCopy(8, write.run_id);
        if (s->exec() != 1) throw detail::missing_row(write.run_id);
    }

    void write_control(const RunControl& request, Doing& doing) {
        doing.at("recording a request for", &request.run_id);
        Use s(control);
        s->clearBindings();   // an unset field binds NULL, not the last request's value
        if (request.cancel_requested) s->bind(1, *request.cancel_requested ? 1 : 0);
        if (request.paused) s->bind(2, *request.paused ? 1 : 0);
        s->bindNoCopy(3, request.run_id);
        if (s->exec() == 1) return;
        Use find(find_owner);   // final (nothing to do), or missing
        find->bindNoCopy(1, request.run_id);
        if (!find->executeStep()) throw detail::missing_row(request.run_id);
    }

    // A write that reopens a final run hands it to the batch's owner.
    void take_over(const Batch& batch, const RunWrite& write, Doing& doing) {
        doing.at("taking over", &write.run_id);
        Use s(take_lease);
        bind_text(*s, 1, batch.owner);
        bind_time(*s, 2, *write.take_lease);
        s->bindNoCopy(3, write.run_id);
        s->exec();   // a running run is left to the fence
    }

    // Fencing: each run the batch names in `fenced` is the batch owner's.
    void check_fence(const Batch& batch, Doing& doing) {
        std::vector<const RunId*> ids;
        ids.reserve(batch.fenced.size());
        for (const auto& id : batch.fenced) ids.push_back(&id);
        std::sort(ids.begin(), ids.end(), [](const RunId* a, const RunId* b) { return *a < *b; });
        ids.erase(std::unique(ids.begin(), ids.end(), [](const RunId* a, const RunId* b) { return *a == *b; }),
                  ids.end());
        for (const RunId* id : ids) {
            doing.at("checking the owner of", id);
            Use s(find_owner);
            s->bindNoCopy(1, *id);
            if (!s->executeStep()) throw detail::missing_row(*id);
            const std::string owner = text_column(s->getColumn(0));
            if (owner != batch.owner) throw detail::not_owner(*id, batch.owner, owner);
        }
    }

    void add_event(const RunEvent& event, Doing& doing) {
        doing.at("recording an event of", &event.run_id,
                 event.step_id.empty() ? nullptr : &event.step_id);
        Use s(insert_event);
        s->bindNoCopy(1, event.run_id);
        s->bindNoCopy(2, event.step_id);
        s->bindNoCopy(3, event.kind);
        s->bind(4, event.attempt);
        s->bindNoCopy(5, event.detail);
        s->bind(6, detail::to_millis(event.at));
        exec_insert(*s, [&](int code) {
            if (code == SQLITE_CONSTRAINT_FOREIGNKEY) throw detail::missing_row(event.run_id);
            if (code == SQLITE_CONSTRAINT_UNIQUE) {   // run_events_step_started (schema 3)
                throw detail::duplicate_attempt(event.run_id, event.step_id, event.attempt);
            }
        });
    }

    void add_log(const LogRecord& line, Doing& doing) {
        doing.at("storing a log line of", &line.run_id, line.step_id.empty() ? nullptr : &line.step_id);
        Use s(insert_log);
        s->bindNoCopy(1, line.run_id);
        s->bindNoCopy(2, line.step_id);
        if (line.item) s->bind(3, static_cast<std::int64_t>(*line.item));
        else s->bind(3);
        s->bind(4, line.attempt);
        bind_status(*s, 5, to_string(line.level));
        s->bindNoCopy(6, line.message);
        s->bind(7, detail::to_millis(line.at));
        s->exec();
    }
};

SqliteStore::SqliteStore(const std::string& path, SqliteOptions options) {
    try {
        impl_ = std::make_unique<Impl>(path, options);
    } catch (const SQLite::Exception& e) {
        throw store_error(e, path + ": opening the database");
    }
}

SqliteStore::~SqliteStore() = default;

int SqliteStore::latest_schema_version() noexcept { return detail::latest_schema_version(); }

bool SqliteStore::save_workflow(const WorkflowRecord& workflow) { return impl_->save_definition(workflow, false); }

bool SqliteStore::replace_workflow(const WorkflowRecord& workflow) { return impl_->save_definition(workflow, true); }

std::optional<WorkflowRecord> SqliteStore::load_workflow(std::string_view name,
                                                         std::optional<std::int64_t> version) {
    const std::string key(name);
    return impl_->read("loading workflow " + key, [&]() -> std::optional<WorkflowRecord> {
        Use s(version ? impl_->select_definition : impl_->select_latest_definition);
        s->bindNoCopy(1, key);
        if (version) s->bind(2, *version);
        if (!s->executeStep()) return std::nullopt;
        return read_workflow(*s);
    });
}

std::vector<WorkflowRecord> SqliteStore::list_workflows() {
    return impl_->read("listing workflows", [&] {
        std::vector<WorkflowRecord> out;
        Use s(impl_->select_definitions);
        while (s->executeStep()) out.push_back(read_workflow(*s));
        return out;
    });
}

void SqliteStore::commit(const Batch& batch) {
    if (batch.empty()) return;
    Doing context;
    context.batch = &batch;
    impl_->write(context, [&](Doing& doing) {
        for (const RunInfo& run : batch.new_runs) impl_->add_run(run, doing);
        if (!batch.owner.empty()) {
            for (const RunWrite& write : batch.runs)
                if (write.take_lease) impl_->take_over(batch, write, doing);
            impl_->check_fence(batch, doing);
        }
        for (const StepWrite& write : batch.steps) impl_->write_step(write, doing);
        for (const ItemWrite& write : batch.items) impl_->write_item(write, doing);
        for (const RunWrite& write : batch.runs) impl_->write_run(write, doing);
        for (const RunControl& control : batch.controls) impl_->write_control(control, doing);
        for (const RunEvent& event : batch.events) impl_->add_event(event, doing);
        for (const LogRecord& line : batch.logs) impl_->add_log(line, doing);
        return true;
    });
}

std::optional<RunInfo> SqliteStore::load_run(const RunId& id) {
    return impl_->read("loading run " + id, [&]() -> std::optional<RunInfo> {
        Use run_query(impl_->select_run);
        run_query->bindNoCopy(1, id);
        if (!run_query->executeStep()) return std::nullopt;
        RunInfo run = read_run(*run_query);
        Use s(impl_->select_steps);
        s->bindNoCopy(1, id);
        while (s->executeStep()) {
            StepInfo& step = run.steps.emplace_back();
            step.step_id = s->getColumn(0).getString();
            read_progress(*s, 1, step);
        }
        Use items(impl_->select_items);
        items->bindNoCopy(1, id);
        StepInfo* step = nullptr;
        while (items->executeStep()) {
            const std::string step_id = items->getColumn(0).getString();
            if (!step || step->step_id != step_id) {
                auto it = std::find_if(run.steps.begin(), run.steps.end(),
                                       [&](const StepInfo& s) { return s.step_id == step_id; });
                step = &*it;   // the foreign key guarantees the step
            }
            ItemInfo& item = step->items.emplace_back();
            item.index = static_cast<std::uint32_t>(items->getColumn(1).getInt64());
            read_progress(*items, 2, item);
        }
        return run;
    });
}

std::optional<RunId> SqliteStore::find_run_by_key(std::string_view idempotency_key) {
    if (idempotency_key.empty()) return std::nullopt;
    const std::string key(idempotency_key);
    return impl_->read("finding the run of idempotency key " + key,
                       [&]() -> std::optional<RunId> {
                           Use s(impl_->select_run_by_key);
                           s->bindNoCopy(1, key);
                           if (!s->executeStep()) return std::nullopt;
                           return s->getColumn(0).getString();
                       });
}

std::vector<RunInfo> SqliteStore::list_runs(const RunFilter& filter) {
    return impl_->read("listing runs", [&] {
        // Built per filter, not cached: each shape lets SQLite use its own index.
        const auto listing = detail::run_listing(filter, '?', "id");
        SQLite::Statement s(impl_->reader, fmt::format("SELECT {} FROM workflow_runs{}", kRunColumns, listing.clauses));
        for (std::size_t i = 0; i < listing.params.size(); ++i) {
            const int index = static_cast<int>(i + 1);
            if (auto* number = std::get_if<std::int64_t>(&listing.params[i])) s.bind(index, *number);
            else s.bind(index, std::get<std::string>(listing.params[i]));
        }
        std::vector<RunInfo> out;
        while (s.executeStep()) out.push_back(read_run(s));
        return out;
    });
}

std::vector<RunId> SqliteStore::unfinished_runs() {
    return impl_->read("listing unfinished runs", [&] {
        std::vector<RunId> out;
        Use s(impl_->select_unfinished);
        while (s->executeStep()) out.push_back(s->getColumn(0).getString());
        return out;
    });
}

std::vector<RunEvent> SqliteStore::load_events(const RunId& id) {
    return impl_->read("loading the events of run " + id, [&] {
        std::vector<RunEvent> out;
        Use s(impl_->select_events);
        s->bindNoCopy(1, id);
        while (s->executeStep()) {
            RunEvent& event = out.emplace_back();
            event.seq = s->getColumn(0).getInt64();
            event.run_id = s->getColumn(1).getString();
            event.step_id = s->getColumn(2).getString();
            event.kind = s->getColumn(3).getString();
            event.attempt = s->getColumn(4).getInt();
            event.detail = s->getColumn(5).getString();
            event.at = detail::from_millis(s->getColumn(6).getInt64());
        }
        return out;
    });
}

namespace {

Json id_array(const std::vector<RunId>& ids) {
    Json out = Json::array();
    for (const auto& id : ids) out.push_back(id);
    return out;
}

}  // namespace

std::vector<RunId> SqliteStore::claim_runs(const ClaimRequest& request) {
    Doing context;
    context.action = "claiming runs for";
    context.executor = &request.owner;
    return impl_->write(context, [&](Doing&) {
        Use s(impl_->claim);
        s->bind(":owner", request.owner);
        s->bind(":until", detail::to_millis(request.until));
        s->bind(":now", detail::to_millis(request.now));
        s->bind(":dead", Json(request.dead_owners).dump());
        s->bind(":any", request.workflows ? 0 : 1);
        s->bind(":enqueued", request.enqueued ? 1 : 0);
        Json workflows = Json::array();
        if (request.workflows)
            for (const auto& [name, version] : *request.workflows) workflows.push_back(Json::array({name, version}));
        s->bind(":workflows", workflows.dump());
        s->bind(":limit", static_cast<std::int64_t>(std::min<std::size_t>(request.limit, INT64_MAX)));
        std::vector<RunId> out;
        while (s->executeStep()) out.push_back(s->getColumn(0).getString());
        return out;
    });
}

std::vector<RunId> SqliteStore::renew_leases(const std::string& owner, const std::vector<RunId>& ids,
                                             TimePoint until) {
    if (ids.empty()) return {};
    Doing context;
    context.action = "renewing the leases of";
    context.executor = &owner;
    return impl_->write(context, [&](Doing&) {
        Use s(impl_->renew);
        s->bind(":until", detail::to_millis(until));
        s->bind(":ids", id_array(ids).dump());
        s->bind(":owner", owner);
        std::vector<RunId> renewed;
        while (s->executeStep()) renewed.push_back(s->getColumn(0).getString());
        std::sort(renewed.begin(), renewed.end());
        std::vector<RunId> lost;
        for (const auto& id : ids)
            if (!std::binary_search(renewed.begin(), renewed.end(), id)) lost.push_back(id);
        return lost;
    });
}

void SqliteStore::release_runs(const std::string& owner, const std::vector<RunId>& ids) {
    if (ids.empty()) return;
    Doing context;
    context.action = "releasing the runs of";
    context.executor = &owner;
    impl_->write(context, [&](Doing&) {
        Use s(impl_->release);
        s->bind(":ids", id_array(ids).dump());
        s->bind(":owner", owner);
        s->bind(":now", detail::to_millis(detail::now_stored()));
        s->exec();
        return true;
    });
}

std::vector<RunId> SqliteStore::controlled_runs(const std::string& owner, std::int64_t& mark) {
    return impl_->read("listing the runs of executor " + owner + " that requests reached", [&] {
        Use last(impl_->select_last_seq);
        last->executeStep();
        const std::int64_t next_mark = last->getColumn(0).getInt64();
        std::vector<RunId> out;
        Use s(impl_->select_controlled);
        s->bindNoCopy(1, owner);
        s->bind(2, mark);
        while (s->executeStep()) out.push_back(s->getColumn(0).getString());
        mark = next_mark;
        return out;
    });
}

std::vector<std::string> SqliteStore::run_owners() {
    return impl_->read("listing the owners of unfinished runs", [&] {
        std::vector<std::string> out;
        Use s(impl_->select_owners);
        while (s->executeStep()) out.push_back(s->getColumn(0).getString());
        return out;
    });
}

SqliteSettings SqliteStore::settings() {
    std::lock_guard lock(impl_->write_mutex);
    try {
        auto pragma = [&](const char* name) { return impl_->writer.execAndGet(std::string("PRAGMA ") + name); };
        SqliteSettings settings;
        settings.journal_mode = pragma("journal_mode").getString();
        settings.synchronous = pragma("synchronous").getInt();
        settings.foreign_keys = pragma("foreign_keys").getInt() != 0;
        settings.busy_timeout = std::chrono::milliseconds(pragma("busy_timeout").getInt());
        return settings;
    } catch (const SQLite::Exception& e) {
        throw store_error(e, fmt::format("reading the settings of {}", impl_->path));
    }
}

std::vector<LogRecord> SqliteStore::load_logs(const RunId& id, std::string_view step_id) {
    return impl_->read("loading the log lines of run " + id, [&] {
        std::vector<LogRecord> out;
        Use s(impl_->select_logs);
        s->bindNoCopy(1, id);
        s->bind(2, std::string(step_id));
        while (s->executeStep()) {
            LogRecord& line = out.emplace_back();
            line.run_id = s->getColumn(0).getString();
            line.step_id = s->getColumn(1).getString();
            if (!s->getColumn(2).isNull()) line.item = static_cast<std::uint32_t>(s->getColumn(2).getInt64());
            line.attempt = s->getColumn(3).getInt();
            line.level = parse_log_level(s->getColumn(4).getText());
            line.message = s->getColumn(5).getString();
            line.at = detail::from_millis(s->getColumn(6).getInt64());
        }
        return out;
    });
}

std::size_t SqliteStore::delete_runs(const std::vector<RunId>& ids) {
    if (ids.empty()) return 0;
    Doing context;
    context.action = "deleting finished runs";
    return impl_->write(context, [&](Doing& doing) {
        doing.action = "deleting finished runs";
        // Children first (foreign keys); prepared per call: retention is not a hot path.
        auto& db = impl_->writer;
        SQLite::Statement final_runs(db,
            "SELECT value FROM json_each(?) WHERE value IN (SELECT id FROM workflow_runs WHERE status != 'running')");
        final_runs.bind(1, id_array(ids).dump());
        std::vector<std::string> doomed;
        while (final_runs.executeStep()) doomed.push_back(final_runs.getColumn(0).getString());
        const std::string list = id_array(doomed).dump();
        for (const char* table : {"run_logs", "run_events", "step_items", "step_runs"}) {
            SQLite::Statement erase(db, fmt::format("DELETE FROM {} WHERE run_id IN (SELECT value FROM json_each(?))", table));
            erase.bind(1, list);
            erase.exec();
        }
        SQLite::Statement erase(db, "DELETE FROM workflow_runs WHERE id IN (SELECT value FROM json_each(?))");
        erase.bind(1, list);
        return static_cast<std::size_t>(erase.exec());
    });
}

}  // namespace loom
