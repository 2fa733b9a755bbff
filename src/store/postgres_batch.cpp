#include "store/postgres_batch.hpp"

#include <algorithm>

#include <loom/error.hpp>
#include <loom/error_ids.hpp>

#include "store/store_support.hpp"

namespace loom::detail::pg {
namespace {

// PostgreSQL text cannot hold NUL (jsonb refuses even its escape): stored
// as U+FFFD, as invalid UTF-8 is.
Json text(const std::string& value) {
    if (value.find('\0') == std::string::npos) return value;
    std::string out;
    for (char c : value) {
        if (c == '\0') out += "\xEF\xBF\xBD";
        else out += c;
    }
    return out;
}

// A column that is NULL when empty.
Json nonempty(const std::string& value) { return value.empty() ? Json() : text(value); }

// Handler output and run input are stored as JSON text, byte for byte as
// the other stores keep them (postgres_schema.cpp says why not jsonb).
Json json_text(const Json& value) {
    if (value.is_null()) return Json();
    return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json millis(const std::optional<TimePoint>& at) { return at ? Json(to_millis(*at)) : Json(); }

template <class Progress>
void put_progress(Json& row, const Progress& p) {
    row["status"] = std::string(to_string(p.status));
    row["attempts"] = p.attempts;
    row["output"] = json_text(p.output);
    row["error"] = nonempty(p.error);
    row["started_at"] = millis(p.started_at);
    row["finished_at"] = millis(p.finished_at);
    row["wake_at"] = millis(p.wake_at);
    row["attempt_base"] = p.attempt_base;
}

Json item_row(const std::string& run_id, const std::string& step_id, const ItemInfo& item, std::size_t i) {
    Json row = {{"run_id", text(run_id)}, {"step_id", text(step_id)}, {"idx", item.index}, {"i", i}};
    put_progress(row, item);
    return row;
}

void put_new_runs(Json& doc, const std::vector<RunInfo>& new_runs) {
    Json runs = Json::array(), steps = Json::array(), items = Json::array();
    for (const RunInfo& run : new_runs) {
        runs.push_back({{"id", text(run.id)},
                        {"workflow_name", text(run.workflow_name)},
                        {"workflow_version", run.workflow_version},
                        {"workflow_hash", text(run.workflow_hash)},
                        {"status", std::string(to_string(run.status))},
                        {"cancel_requested", run.cancel_requested},
                        {"input", json_text(run.input)},
                        {"output", json_text(run.output)},
                        {"error", nonempty(run.error)},
                        {"created_at", to_millis(run.created_at)},
                        {"updated_at", to_millis(run.updated_at)},
                        {"finished_at", millis(run.finished_at)},
                        {"idempotency_key", nonempty(run.idempotency_key)},
                        {"priority", run.priority},
                        {"paused", run.paused},
                        {"owner", nonempty(run.owner)},
                        {"lease_until", run.owner.empty() ? Json() : millis(run.lease_until)},
                        {"i", runs.size()}});
        for (std::size_t position = 0; position < run.steps.size(); ++position) {
            const StepInfo& step = run.steps[position];
            Json row = {{"run_id", text(run.id)}, {"step_id", text(step.step_id)}, {"position", position},
                        {"i", steps.size()}};
            put_progress(row, step);
            steps.push_back(std::move(row));
            for (const ItemInfo& item : step.items) items.push_back(item_row(run.id, step.step_id, item, items.size()));
        }
    }
    doc["new_runs"] = std::move(runs);
    if (!steps.empty()) doc["new_steps"] = std::move(steps);
    if (!items.empty()) doc["new_items"] = std::move(items);
}

void put_writes(Json& doc, const Batch& batch) {
    Json leases = Json::array();
    for (const RunWrite& write : batch.runs)
        if (write.take_lease) leases.push_back({{"run_id", text(write.run_id)}, {"until", to_millis(*write.take_lease)}});
    if (!batch.owner.empty() && !leases.empty()) doc["leases"] = std::move(leases);
    if (!batch.steps.empty()) {
        Json& steps = doc["steps"] = Json::array();
        for (const StepWrite& write : batch.steps) {
            Json row = {{"run_id", text(write.run_id)}, {"step_id", text(write.step_id)},
                        {"reset_items", write.reset_items}, {"i", steps.size()}};
            put_progress(row, write);
            steps.push_back(std::move(row));
        }
    }
    if (!batch.items.empty()) {
        Json& items = doc["items"] = Json::array();
        for (const ItemWrite& write : batch.items)
            items.push_back(item_row(write.run_id, write.step_id, write.item, items.size()));
    }
    if (!batch.runs.empty()) {
        Json& runs = doc["runs"] = Json::array();
        for (const RunWrite& write : batch.runs) {
            runs.push_back({{"run_id", text(write.run_id)},
                            {"status", std::string(to_string(write.status))},
                            {"cancel_requested", write.cancel_requested},
                            {"output", json_text(write.output)},
                            {"error", nonempty(write.error)},
                            {"updated_at", to_millis(write.updated_at)},
                            {"finished_at", millis(write.finished_at)},
                            {"paused", write.paused},
                            {"i", runs.size()}});
        }
    }
}

void put_requests(Json& doc, const Batch& batch) {
    if (!batch.controls.empty()) {
        Json& controls = doc["controls"] = Json::array();
        for (const RunControl& c : batch.controls) {
            controls.push_back({{"run_id", text(c.run_id)},
                                {"cancel_requested", c.cancel_requested ? Json(*c.cancel_requested) : Json()},
                                {"paused", c.paused ? Json(*c.paused) : Json()}});
        }
    }
    if (!batch.events.empty()) {
        Json& events = doc["events"] = Json::array();
        for (const RunEvent& e : batch.events) {
            events.push_back({{"run_id", text(e.run_id)},
                              {"step_id", text(e.step_id)},
                              {"kind", text(e.kind)},
                              {"attempt", e.attempt},
                              {"detail", text(e.detail)},
                              {"at", to_millis(e.at)},
                              {"i", events.size()}});
        }
    }
    if (!batch.logs.empty()) {
        Json& logs = doc["logs"] = Json::array();
        for (const LogRecord& line : batch.logs) {
            logs.push_back({{"run_id", text(line.run_id)},
                            {"step_id", text(line.step_id)},
                            {"item", line.item ? Json(*line.item) : Json()},
                            {"attempt", line.attempt},
                            {"level", std::string(to_string(line.level))},
                            {"message", text(line.message)},
                            {"at", to_millis(line.at)},
                            {"i", logs.size()}});
        }
    }
}

const RunInfo& new_run(const Batch& batch, const std::string& id) {
    auto it = std::find_if(batch.new_runs.begin(), batch.new_runs.end(), [&](const RunInfo& r) { return r.id == id; });
    if (it == batch.new_runs.end()) {
        throw StoreError(error_id::store_io, "loom_commit() named run " + id + ", which the batch does not create");
    }
    return *it;
}

std::string field(const Json& error, const char* name) {
    const auto it = error.find(name);
    return it == error.end() || it->is_null() ? std::string() : it->get<std::string>();
}

}  // namespace

std::string batch_document(const Batch& batch) {
    Json doc = Json::object();
    if (!batch.owner.empty()) {
        doc["owner"] = text(batch.owner);
        std::vector<std::string> fenced(batch.fenced.begin(), batch.fenced.end());
        std::sort(fenced.begin(), fenced.end());
        fenced.erase(std::unique(fenced.begin(), fenced.end()), fenced.end());
        if (!fenced.empty()) {
            Json& ids = doc["fenced"] = Json::array();
            for (const std::string& id : fenced) ids.push_back(text(id));
        }
    }
    if (!batch.new_runs.empty()) put_new_runs(doc, batch.new_runs);
    put_writes(doc, batch);
    put_requests(doc, batch);
    return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void throw_commit_error(const Batch& batch, const std::string& message) {
    constexpr std::string_view kMarker = "loom_commit:";
    const auto at = message.find(kMarker);
    Json error;
    if (at != std::string::npos) {
        const auto start = at + kMarker.size();
        error = Json::parse(message.substr(start, message.find('\n', start) - start), nullptr, false);
    }
    if (!error.is_object()) throw StoreError(error_id::store_io, "loom_commit() failed: " + message);
    const std::string rule = field(error, "rule"), run = field(error, "run"), step = field(error, "step");
    if (rule == "duplicate_key") throw duplicate_key(new_run(batch, run), field(error, "holder"));
    if (rule == "unknown_workflow") throw unknown_workflow(new_run(batch, run));
    if (rule == "duplicate_run") throw duplicate_run(run);
    if (rule == "duplicate_step") throw duplicate_step(run, step);
    if (rule == "missing_row") throw missing_row(run, step);
    if (rule == "not_owner") throw not_owner(run, batch.owner, field(error, "owner"));
    if (rule == "duplicate_attempt") throw duplicate_attempt(run, step, error.value("attempt", 0));
    if (rule == "no_writer") {
        throw StoreError(error_id::store_corrupt, "the commit-tracking row of writer " + field(error, "writer") +
                                                      " is missing from store_commits");
    }
    throw StoreError(error_id::store_io, "loom_commit() failed: " + message);
}

}  // namespace loom::detail::pg
