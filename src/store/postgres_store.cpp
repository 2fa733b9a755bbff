// PostgresStore: the Store contract on PostgreSQL through libpqxx. Two links
// (postgres_link.hpp), each one connection under its own mutex: the writer
// (commits, claims, leases) and the reader, so reads never wait on a commit.
//
// Isolation: writes run at READ COMMITTED with explicit row locks, not
// SERIALIZABLE. Every decision a write makes rests on rows it locks (the fence
// locks the batch's runs FOR NO KEY UPDATE, a claim locks what it takes FOR
// UPDATE SKIP LOCKED, event seqs come from one locked counter row), so the
// outcome is the same as a serial one, while claimers skip each other's rows
// instead of failing with serialization errors that SERIALIZABLE would raise
// whenever two executors read the same run listing. Reads run at REPEATABLE
// READ, read-only, so that a run and its steps come from one snapshot.
#include <loom/postgres_store.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

#include <fmt/format.h>
#include <libpq-fe.h>
#include <pqxx/pqxx>
#include <unistd.h>

#include "store/postgres_batch.hpp"
#include "store/postgres_link.hpp"
#include "store/postgres_schema.hpp"
#include "store/postgres_statements.hpp"
#include "store/run_listing.hpp"
#include "store/store_support.hpp"

namespace loom {
namespace {

using detail::pg::kRunColumns;
using detail::pg::prepare_reader;
using detail::pg::prepare_writer;

using Read = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;
using Write = pqxx::work;   // READ COMMITTED (see the file comment)

// A JSON array of strings: one prepared statement serves any number of ids
// (jsonb_array_elements_text), as SqliteStore's json_each does.
std::string id_list(const std::vector<std::string>& ids) { return Json(ids).dump(); }

// ---- reading columns -------------------------------------------------------------

std::string text_field(const pqxx::field& f) { return f.is_null() ? std::string() : f.as<std::string>(); }

Json json_field(const pqxx::field& f) { return f.is_null() ? Json() : Json::parse(f.c_str()); }

std::optional<TimePoint> time_field(const pqxx::field& f) {
    if (f.is_null()) return std::nullopt;
    return detail::from_millis(f.as<std::int64_t>());
}

// Reads the progress columns from `first`: status, attempts, output, error,
// started_at, finished_at, wake_at, attempt_base.
template <class Progress>
void read_progress(const pqxx::row& row, int first, Progress& p) {
    p.status = parse_step_status(row[first].c_str());
    p.attempts = row[first + 1].as<int>();
    p.output = json_field(row[first + 2]);
    p.error = text_field(row[first + 3]);
    p.started_at = time_field(row[first + 4]);
    p.finished_at = time_field(row[first + 5]);
    p.wake_at = time_field(row[first + 6]);
    p.attempt_base = row[first + 7].as<int>();
}

// Reads a row of kRunColumns.
RunInfo read_run(const pqxx::row& row) {
    RunInfo run;
    run.id = row[0].as<std::string>();
    run.workflow_name = row[1].as<std::string>();
    run.workflow_version = row[2].as<std::int64_t>();
    run.workflow_hash = row[3].as<std::string>();
    run.status = parse_run_status(row[4].c_str());
    run.cancel_requested = row[5].as<bool>();
    run.input = json_field(row[6]);
    run.output = json_field(row[7]);
    run.error = text_field(row[8]);
    run.created_at = detail::from_millis(row[9].as<std::int64_t>());
    run.updated_at = detail::from_millis(row[10].as<std::int64_t>());
    run.finished_at = time_field(row[11]);
    run.idempotency_key = text_field(row[12]);
    run.priority = row[13].as<int>();
    run.paused = row[14].as<bool>();
    run.owner = text_field(row[15]);
    run.lease_until = time_field(row[16]);
    return run;
}

WorkflowRecord read_workflow(const pqxx::row& row) {
    WorkflowRecord record;
    record.name = row[0].as<std::string>();
    record.version = row[1].as<std::int64_t>();
    record.hash = row[2].as<std::string>();
    record.definition = Json::parse(row[3].c_str());
    record.created_at = detail::from_millis(row[4].as<std::int64_t>());
    return record;
}

// ---- naming what failed ----------------------------------------------------------

// "PostgreSQL database loom on /tmp/x": the connection string without its
// password, for messages.
std::string describe_database(const std::string& conninfo) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
    if (!options) {
        std::string why = error ? error : "unreadable";
        PQfreemem(error);
        return "PostgreSQL (connection string: " + why + ")";
    }
    std::string db, host;
    for (PQconninfoOption* o = options; o->keyword; ++o) {
        if (!o->val) continue;
        if (std::string_view(o->keyword) == "dbname") db = o->val;
        if (std::string_view(o->keyword) == "host") host = o->val;
    }
    PQconninfoFree(options);
    std::string out = "PostgreSQL database " + (db.empty() ? std::string("(default)") : db);
    if (!host.empty()) out += " on " + host;
    return out;
}

// "3 new runs, 5 step writes and 9 events of runs a, b and 2 more": what a
// failed commit was writing, bounded as a batch may carry hundreds of changes.
std::string batch_summary(const Batch& batch) {
    std::vector<std::string> parts;
    auto count = [&](std::size_t n, const char* what) {
        if (n > 0) parts.push_back(fmt::format("{} {}", n, what));
    };
    count(batch.new_runs.size(), "new runs");
    count(batch.steps.size(), "step writes");
    count(batch.items.size(), "element writes");
    count(batch.runs.size(), "run writes");
    count(batch.controls.size(), "requests");
    count(batch.events.size(), "events");
    std::vector<const std::string*> runs;
    auto note = [&](const std::string& id) {
        if (std::none_of(runs.begin(), runs.end(), [&](const std::string* r) { return *r == id; }))
            runs.push_back(&id);
    };
    for (const auto& r : batch.new_runs) note(r.id);
    for (const auto& w : batch.steps) note(w.run_id);
    for (const auto& w : batch.runs) note(w.run_id);
    for (const auto& e : batch.events) note(e.run_id);
    std::string out = fmt::format("{}", fmt::join(parts, ", "));
    constexpr std::size_t kShown = 4;
    for (std::size_t i = 0; i < runs.size() && i < kShown; ++i) out += (i == 0 ? " of run " : ", ") + *runs[i];
    if (runs.size() > kShown) out += fmt::format(" and {} more runs", runs.size() - kShown);
    return out;
}

// A random name for this store's row in store_commits.
std::string new_writer_id() {
    std::random_device random;
    std::uniform_int_distribution<std::uint64_t> bits;
    return fmt::format("{}-{:016x}{:016x}", ::getpid(), bits(random), bits(random));
}

}  // namespace

struct PostgresStore::Impl {
    const std::string where;       // the database, for messages
    const std::string writer_id;   // the writer link's row in store_commits
    detail::PgLink writer;
    detail::PgLink reader;

    Impl(const std::string& conninfo, const PostgresOptions& options)
        : where(describe_database(conninfo)),
          writer_id(new_writer_id()),
          writer(conninfo, options.retry_budget, prepare_writer),
          reader(conninfo, options.retry_budget, prepare_reader) {
        // Statements are prepared per connection and need the tables, so the
        // schema is set up on a connection of its own first.
        detail::PgLink setup(conninfo, options.retry_budget, nullptr);
        auto migrating = [&] { return where + ": migrating the schema"; };
        while (setup.transact<Write>(migrating, [&](Write& tx) { return detail::pg::migrate_step(tx, where); })) {
        }
        const std::string& id = writer_id;
        setup.transact<Write>([&] { return where + ": registering writer " + id + " in store_commits"; },
                              [&](Write& tx) {
                                  tx.exec_params("INSERT INTO store_commits (writer, commits, opened_at) "
                                                 "VALUES ($1, 0, $2) ON CONFLICT (writer) DO NOTHING",
                                                 id, detail::to_millis(std::chrono::system_clock::now()));
                              });
        writer.track_commits(id);
    }

    template <class F>
    auto read(const std::string& doing, F&& f) {
        return reader.transact<Read>([&] { return where + ": " + doing; }, std::forward<F>(f));
    }

    template <class F>
    auto write(const char* action, const std::string& subject, F&& f) {
        return writer.transact<Write>([&] { return where + ": " + action + " " + subject; }, std::forward<F>(f));
    }

    bool save_definition(const WorkflowRecord& workflow, bool replace) {
        return write(replace ? "replacing the definition of workflow" : "saving the definition of workflow",
                     workflow.name, [&](Write& tx) {
                         const std::string definition = workflow.definition.dump(-1, ' ', false,
                                                                                 Json::error_handler_t::replace);
                         const auto created = detail::to_millis(workflow.created_at);
                         if (tx.exec_prepared("insert_definition", workflow.name, workflow.version, workflow.hash,
                                              definition, created)
                                 .affected_rows() == 1)
                             return true;
                         // Stored (maybe just now, by another executor): lock it and compare.
                         tx.exec_prepared("lock_definition", workflow.name, workflow.version);
                         const std::string hash = tx.exec_prepared1("find_definition_hash", workflow.name,
                                                                    workflow.version)[0]
                                                      .as<std::string>();
                         if (hash == workflow.hash) return false;
                         if (!replace)
                             throw detail::definition_conflict(workflow.name, workflow.version, hash, workflow.hash);
                         const pqxx::result user = tx.exec_prepared("definition_user", workflow.name, workflow.version);
                         if (!user.empty())
                             throw detail::definition_in_use(workflow.name, workflow.version,
                                                             user[0][0].as<std::string>());
                         // Updated in place: finished runs still reference the row.
                         tx.exec_prepared("update_definition", workflow.name, workflow.version, workflow.hash,
                                          definition, created);
                         return true;
                     });
    }
};

PostgresStore::PostgresStore(std::string connection_string, PostgresOptions options)
    : impl_(std::make_unique<Impl>(connection_string, options)) {}

PostgresStore::~PostgresStore() = default;

int PostgresStore::latest_schema_version() noexcept { return detail::pg::latest_schema_version(); }

bool PostgresStore::save_workflow(const WorkflowRecord& workflow) { return impl_->save_definition(workflow, false); }

bool PostgresStore::replace_workflow(const WorkflowRecord& workflow) { return impl_->save_definition(workflow, true); }

std::optional<WorkflowRecord> PostgresStore::load_workflow(std::string_view name,
                                                           std::optional<std::int64_t> version) {
    const std::string key(name);
    return impl_->read("loading workflow " + key, [&](Read& tx) -> std::optional<WorkflowRecord> {
        const pqxx::result r =
            version ? tx.exec_prepared("definition", key, *version) : tx.exec_prepared("latest_definition", key);
        if (r.empty()) return std::nullopt;
        return read_workflow(r[0]);
    });
}

std::vector<WorkflowRecord> PostgresStore::list_workflows() {
    return impl_->read("listing workflows", [&](Read& tx) {
        std::vector<WorkflowRecord> out;
        for (const auto& row : tx.exec_prepared("definitions")) out.push_back(read_workflow(row));
        return out;
    });
}

void PostgresStore::commit(const Batch& batch) {
    if (batch.empty()) return;
    const std::string document = detail::pg::batch_document(batch);
    auto describe = [&] { return impl_->where + ": committing " + batch_summary(batch); };
    impl_->writer.call(describe, [&](pqxx::nontransaction& tx, std::int64_t commit_no) {
        try {
            tx.exec_prepared("commit", impl_->writer_id, commit_no, document);
        } catch (const pqxx::sql_error& e) {
            if (e.sqlstate() == "LM001") detail::pg::throw_commit_error(batch, e.what());
            throw;
        }
    });
}

std::optional<RunInfo> PostgresStore::load_run(const RunId& id) {
    return impl_->read("loading run " + id, [&](Read& tx) -> std::optional<RunInfo> {
        const pqxx::result runs = tx.exec_prepared("run", id);
        if (runs.empty()) return std::nullopt;
        RunInfo run = read_run(runs[0]);
        for (const auto& row : tx.exec_prepared("steps", id)) {
            StepInfo& step = run.steps.emplace_back();
            step.step_id = row[0].as<std::string>();
            read_progress(row, 1, step);
        }
        StepInfo* step = nullptr;
        for (const auto& row : tx.exec_prepared("items", id)) {
            const std::string step_id = row[0].as<std::string>();
            if (!step || step->step_id != step_id) {
                auto it = std::find_if(run.steps.begin(), run.steps.end(),
                                       [&](const StepInfo& s) { return s.step_id == step_id; });
                step = &*it;   // the foreign key guarantees the step
            }
            ItemInfo& item = step->items.emplace_back();
            item.index = static_cast<std::uint32_t>(row[1].as<std::int64_t>());
            read_progress(row, 2, item);
        }
        return run;
    });
}

std::optional<RunId> PostgresStore::find_run_by_key(std::string_view idempotency_key) {
    if (idempotency_key.empty()) return std::nullopt;
    const std::string key(idempotency_key);
    return impl_->read("finding the run of idempotency key " + key, [&](Read& tx) -> std::optional<RunId> {
        const pqxx::result r = tx.exec_prepared("run_by_key", key);
        if (r.empty()) return std::nullopt;
        return r[0][0].as<std::string>();
    });
}

std::vector<RunInfo> PostgresStore::list_runs(const RunFilter& filter) {
    return impl_->read("listing runs", [&](Read& tx) {
        const auto listing = detail::run_listing(filter, '$', "id COLLATE \"C\"");
        std::vector<std::string> params;   // as text: PostgreSQL casts each to its column's type
        for (const auto& p : listing.params) {
            if (auto* number = std::get_if<std::int64_t>(&p)) params.push_back(std::to_string(*number));
            else params.push_back(std::get<std::string>(p));
        }
        std::vector<RunInfo> out;
        const std::string sql = fmt::format("SELECT {} FROM workflow_runs{}", kRunColumns, listing.clauses);
        for (const auto& row : tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params)))
            out.push_back(read_run(row));
        return out;
    });
}

std::vector<RunId> PostgresStore::unfinished_runs() {
    return impl_->read("listing unfinished runs", [&](Read& tx) {
        std::vector<RunId> out;
        for (const auto& row : tx.exec_prepared("unfinished")) out.push_back(row[0].as<std::string>());
        return out;
    });
}

std::vector<RunEvent> PostgresStore::load_events(const RunId& id) {
    return impl_->read("loading the events of run " + id, [&](Read& tx) {
        std::vector<RunEvent> out;
        for (const auto& row : tx.exec_prepared("events", id)) {
            RunEvent& event = out.emplace_back();
            event.seq = row[0].as<std::int64_t>();
            event.run_id = row[1].as<std::string>();
            event.step_id = row[2].as<std::string>();
            event.kind = row[3].as<std::string>();
            event.attempt = row[4].as<int>();
            event.detail = row[5].as<std::string>();
            event.at = detail::from_millis(row[6].as<std::int64_t>());
        }
        return out;
    });
}

std::vector<LogRecord> PostgresStore::load_logs(const RunId& id, std::string_view step_id) {
    return impl_->read("loading the log lines of run " + id, [&](Read& tx) {
        std::vector<LogRecord> out;
        for (const auto& row : tx.exec_prepared("logs", id, std::string(step_id))) {
            LogRecord& line = out.emplace_back();
            line.run_id = row[0].as<std::string>();
            line.step_id = row[1].as<std::string>();
            if (!row[2].is_null()) line.item = static_cast<std::uint32_t>(row[2].as<std::int64_t>());
            line.attempt = row[3].as<int>();
            line.level = parse_log_level(row[4].as<std::string>());
            line.message = row[5].as<std::string>();
            line.at = detail::from_millis(row[6].as<std::int64_t>());
        }
        return out;
    });
}

std::size_t PostgresStore::delete_runs(const std::vector<RunId>& ids) {
    if (ids.empty()) return 0;
    return impl_->write("deleting finished runs", fmt::format("({} asked)", ids.size()), [&](Write& tx) {
        // Locked first, so that a retry() making one running again waits;
        // children before parents (foreign keys).
        const auto doomed = tx.exec_params(
            "SELECT coalesce(jsonb_agg(id), '[]') FROM (SELECT id FROM workflow_runs WHERE id IN "
            "(SELECT jsonb_array_elements_text($1::jsonb)) AND status != 'running' FOR UPDATE) d",
            id_list(ids))[0][0].as<std::string>();
        for (const char* table : {"run_logs", "run_events", "step_items", "step_runs"})
            tx.exec_params(fmt::format("DELETE FROM {} WHERE run_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
                                       table),
                           doomed);
        return static_cast<std::size_t>(
            tx.exec_params("DELETE FROM workflow_runs WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb))",
                           doomed).affected_rows());
    });
}

std::vector<RunId> PostgresStore::claim_runs(const ClaimRequest& request) {
    return impl_->write("claiming runs for executor", request.owner, [&](Write& tx) {
        Json workflows = Json::array();
        if (request.workflows)
            for (const auto& [name, version] : *request.workflows) workflows.push_back(Json::array({name, version}));
        const auto limit = static_cast<std::int64_t>(std::min<std::size_t>(request.limit, INT64_MAX));
        std::vector<RunId> out;
        for (const auto& row : tx.exec_prepared("claim", request.owner, detail::to_millis(request.until),
                                                detail::to_millis(request.now), id_list(request.dead_owners),
                                                !request.workflows, workflows.dump(), limit, request.enqueued))
            out.push_back(row[0].as<std::string>());
        return out;
    });
}

std::vector<RunId> PostgresStore::renew_leases(const std::string& owner, const std::vector<RunId>& ids,
                                               TimePoint until) {
    if (ids.empty()) return {};
    return impl_->write("renewing the leases of executor", owner, [&](Write& tx) {
        std::vector<RunId> renewed;
        for (const auto& row : tx.exec_prepared("renew", owner, id_list(ids), detail::to_millis(until)))
            renewed.push_back(row[0].as<std::string>());
        std::sort(renewed.begin(), renewed.end());
        std::vector<RunId> lost;
        for (const auto& id : ids)
            if (!std::binary_search(renewed.begin(), renewed.end(), id)) lost.push_back(id);
        return lost;
    });
}

void PostgresStore::release_runs(const std::string& owner, const std::vector<RunId>& ids) {
    if (ids.empty()) return;
    impl_->write("releasing the runs of executor", owner,
                 [&](Write& tx) {
                     // The release time in lease_until tells a released run from
                     // one never claimed (Store::release_runs).
                     tx.exec_prepared("release", owner, id_list(ids), detail::to_millis(detail::now_stored()));
                 });
}

std::vector<std::string> PostgresStore::run_owners() {
    return impl_->read("listing the owners of unfinished runs", [&](Read& tx) {
        std::vector<std::string> out;
        for (const auto& row : tx.exec_prepared("owners")) out.push_back(row[0].as<std::string>());
        return out;
    });
}

std::vector<RunId> PostgresStore::controlled_runs(const std::string& owner, std::int64_t& mark) {
    return impl_->read("listing the runs of executor " + owner + " that requests reached", [&](Read& tx) {
        // One snapshot: every request numbered up to next_mark is in it (see loom_commit() in postgres_schema.cpp).
        const std::int64_t next_mark = tx.exec_prepared1("last_seq")[0].as<std::int64_t>();
        std::vector<RunId> out;
        for (const auto& row : tx.exec_prepared("controlled", owner, mark)) out.push_back(row[0].as<std::string>());
        mark = next_mark;
        return out;
    });
}

}  // namespace loom
