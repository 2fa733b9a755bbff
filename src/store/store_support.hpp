// What every Store backend shares: the millisecond time representation and the
// errors of the Store contract, so that each id and message is written once and
// MemoryStore and SqliteStore fail alike (the conformance suite checks that).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <loom/error.hpp>
#include <loom/run.hpp>

namespace loom::detail {

/// Stores record instants to the millisecond; floor so that a time before the
/// epoch does not round towards it.
inline std::int64_t to_millis(TimePoint at) noexcept {
    return std::chrono::floor<std::chrono::milliseconds>(at).time_since_epoch().count();
}

inline TimePoint from_millis(std::int64_t ms) noexcept {
    using std::chrono::duration_cast;
    return TimePoint(duration_cast<TimePoint::duration>(std::chrono::milliseconds(ms)));
}

/// The instant as a store gives it back.
inline TimePoint to_stored(TimePoint at) noexcept { return from_millis(to_millis(at)); }

/// Now, as a store records it: the lease_until of a released run (see
/// Store::release_runs).
inline TimePoint now_stored() noexcept { return to_stored(std::chrono::system_clock::now()); }

inline Conflict duplicate_run(const RunId& run_id) {
    return Conflict(error_id::store_duplicate_run, "run " + run_id + " already exists");
}

/// A new run whose idempotency key already belongs to run `holder`.
inline Conflict duplicate_key(const RunInfo& run, const RunId& holder) {
    return Conflict(error_id::run_duplicate_key, "run " + run.id + ": idempotency key '" +
                                                  run.idempotency_key +
                                                  "' already belongs to run " + holder);
}

inline Conflict definition_conflict(const std::string& name, std::int64_t version,
                                    const std::string& stored_hash, const std::string& new_hash) {
    return Conflict(error_id::store_definition_conflict,
                    "workflow " + name + " version " + std::to_string(version) +
                        " is stored with hash " + stored_hash + ", not " + new_hash +
                        "; give changed content a new version");
}

/// replace_workflow() while unfinished run `run` uses (name, version).
inline Conflict definition_in_use(const std::string& name, std::int64_t version, const RunId& run) {
    return Conflict(error_id::workflow_in_use,
                    "workflow " + name + " version " + std::to_string(version) +
                        " cannot be replaced: unfinished run " + run +
                        " uses it (let it finish or cancel it, or give changed content a new version)");
}

inline StoreError unknown_workflow(const RunInfo& run) {
    return StoreError(error_id::store_unknown_workflow,
                      "run " + run.id + ": workflow " + run.workflow_name + " version " +
                          std::to_string(run.workflow_version) + " is not stored");
}

inline StoreError duplicate_step(const RunId& run_id, const std::string& step_id) {
    return StoreError(error_id::store_duplicate_step,
                      "run " + run_id + " lists step " + step_id + " twice");
}

/// A second "step.started" event for one (run, step, attempt): a claim made twice.
inline Conflict duplicate_attempt(const RunId& run_id, const std::string& step_id, int attempt) {
    return Conflict(error_id::store_duplicate_attempt,
                    "attempt " + std::to_string(attempt) + " of step " + step_id + " of run " +
                        run_id + " has already started");
}

/// A fenced write to a run that another executor owns now (or nobody does).
inline Conflict not_owner(const RunId& run_id, const std::string& writer, const std::string& owner) {
    return Conflict(error_id::store_not_owner,
                    "run " + run_id + " is not owned by executor " + writer + " any more (" +
                        (owner.empty() ? std::string("nobody owns it") : "executor " + owner + " does") +
                        "): its lease was lost, and its writes are refused");
}

/// A write to a run (step_id empty) or a step that does not exist.
inline StoreError missing_row(const RunId& run_id, const std::string& step_id = {}) {
    const std::string row =
        step_id.empty() ? "run " + run_id : "step " + step_id + " of run " + run_id;
    return StoreError(error_id::store_missing_row, row + " does not exist");
}

}  // namespace loom::detail
