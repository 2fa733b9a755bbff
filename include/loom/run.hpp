// What a run is, as the executor reports it and a store records it. Shared by
// executor.hpp and store.hpp so that both speak of one RunInfo.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <loom/json.hpp>

namespace loom {

using RunId = std::string;
/// Wall-clock instants, recorded to the millisecond.
using TimePoint = std::chrono::system_clock::time_point;

enum class RunStatus { running, completed, failed, cancelled };

/// pending: waits for dependencies; ready: may start; running: an attempt is in
/// flight; waiting: an attempt failed and the next is due at StepInfo::wake_at
/// (or a sleep step sleeps until then); suspended: waits for an outside event —
/// a signal (the "wait" step) or Executor::complete() / fail() with the
/// attempt's completion token — until wake_at if it has a timeout;
/// completed / failed / skipped (its condition was false, or a dependency was
/// skipped): final for this run, unless the run compensates: then a completed
/// step with a compensation becomes compensating (its undo is due or in
/// flight) and compensated (undone), or failed if its undo failed for good;
/// cancelled: the run ended (failed, also after compensating or at its
/// deadline, or was cancelled) before this step finished: it never started, or
/// it was waiting for a retry, a sleep, a signal, a child run or an outside
/// completion. It will not run in this run. Set in the commit that makes the
/// run final, so that a final run has no step that looks as if it may still
/// start; Executor::retry() and rerun() run a cancelled step again, like a
/// pending one.
enum class StepStatus {
    pending, ready, running, waiting, suspended, completed, failed, skipped, compensating, compensated,
    cancelled
};

/// Lower-case names ("running", ...) used in JSON, stores and messages.
std::string_view to_string(RunStatus status) noexcept;
std::string_view to_string(StepStatus status) noexcept;
/// Writes to_string(status), so that test frameworks (Catch's CHECK) and logs
/// print "failed", not "2".
std::ostream& operator<<(std::ostream& out, RunStatus status);
std::ostream& operator<<(std::ostream& out, StepStatus status);
/// Throws InvalidArgument for an unknown name.
RunStatus parse_run_status(std::string_view name);
StepStatus parse_step_status(std::string_view name);

inline bool is_final(RunStatus s) noexcept { return s != RunStatus::running; }

/// One element of a for_each step: its own attempts and result, checkpointed
/// by index so that an element that completed never runs again.
struct ItemInfo {
    std::uint32_t index = 0;                // position in the for_each array
    /// As stored: running (its start was written), completed, failed,
    /// waiting, or pending (a crash interrupted it or a shutdown stopped it,
    /// with attempts left); cancelled once its step ended unfinished while it
    /// was waiting or pending (retry() of the run runs it again).
    StepStatus status = StepStatus::pending;
    int attempts = 0;
    Json output;                            // set when completed
    std::string error;                      // of its latest failed attempt
    std::optional<TimePoint> started_at;    // of the latest attempt
    std::optional<TimePoint> finished_at;
    std::optional<TimePoint> wake_at;       // waiting: when its next attempt is due
    /// Attempts that do not count against the retry policy: made before a
    /// retry() or rerun(), or cancelled by a shutdown. It may use
    /// max_attempts more than this.
    int attempt_base = 0;
};

/// One step of one run.
struct StepInfo {
    std::string step_id;
    StepStatus status = StepStatus::pending;
    /// This step's own attempts started so far, an attempt interrupted by the
    /// end of its process included. A for_each step's elements count theirs
    /// in items[i].attempts.
    int attempts = 0;
    Json output;                            // set when completed
    std::string error;                      // set when failed
    std::optional<TimePoint> started_at;    // of the latest attempt
    std::optional<TimePoint> finished_at;
    std::optional<TimePoint> wake_at;       // waiting: when the next attempt is due
    /// A for_each step's elements that reached the store (see
    /// ItemInfo::status), by index; empty for other steps.
    std::vector<ItemInfo> items;
    /// As ItemInfo::attempt_base: attempts - attempt_base count against
    /// the step's max_attempts.
    int attempt_base = 0;
};

/// One run of a workflow, pinned to the definition it started with.
struct RunInfo {
    RunId id;
    std::string workflow_name;
    std::int64_t workflow_version = 0;
    std::string workflow_hash;
    RunStatus status = RunStatus::running;
    bool cancel_requested = false;
    Json input;
    Json output;          // completed: {sink step id: output} for steps nothing depends on
    std::string error;    // failed: names the step and the exception text
    TimePoint created_at{};
    TimePoint updated_at{};
    std::optional<TimePoint> finished_at;
    std::string idempotency_key;   // empty: none; unique among a store's runs
    int priority = 0;              // higher runs first (StartOptions::priority)
    bool paused = false;           // Executor::pause(): nothing new starts until resume()
    /// The executor that runs it (ExecutorOptions::identity) while its lease
    /// lasts; empty when nobody does (released, or final).
    std::string owner{};
    std::optional<TimePoint> lease_until;
    std::vector<StepInfo> steps;   // definition order; empty in list results

    /// The step with this id, or nullptr.
    const StepInfo* step(std::string_view step_id) const;
};

/// One entry of a run's history, in commit order.
struct RunEvent {
    std::int64_t seq = 0;          // assigned by the store, increasing per store
    RunId run_id;
    std::string step_id;           // empty for run-level events
    std::string kind;              // "run.started", "step.completed", ...
    int attempt = 0;
    std::string detail;            // e.g. the error text
    TimePoint at{};
};

enum class LogLevel { debug, info, warn, error };
std::string_view to_string(LogLevel level) noexcept;
/// Throws InvalidArgument for an unknown name ("debug", "info", "warn", "error").
LogLevel parse_log_level(std::string_view name);

/// A line logged by a handler through StepContext::log, or by the executor.
/// Handler lines are also stored with their run (Store::load_logs), at most
/// kMaxStoredLogLines per attempt, each cut to kMaxStoredLogBytes.
struct LogRecord {
    LogLevel level = LogLevel::info;
    RunId run_id;          // empty for executor-wide messages
    std::string step_id;
    int attempt = 0;
    std::string message;
    std::optional<std::uint32_t> item;   // the element of a for_each step that logged
    TimePoint at{};                      // when it was logged (the executor's clock)
};
inline constexpr int kMaxStoredLogLines = 100;
inline constexpr std::size_t kMaxStoredLogBytes = 4096;

/// Where a page of list_runs starts: after this run, in newest-first order.
/// Take it from the last run of the page before (RunCursor::after); its text
/// form (to_string, parse) is what an HTTP client passes back.
struct RunCursor {
    TimePoint created_at{};
    RunId id;

    static RunCursor after(const RunInfo& run) { return RunCursor{run.created_at, run.id}; }
    /// "<created_at in ms>-<id>".
    std::string to_string() const;
    /// Throws InvalidArgument ("[loom.cursor.malformed]") for text that
    /// to_string() did not make.
    static RunCursor parse(std::string_view text);
};

/// Which runs list_runs returns, newest first (by created_at, then id).
struct RunFilter {
    std::optional<std::string> workflow_name;
    std::optional<RunStatus> status;
    /// Created at or after `since`, before `until`.
    std::optional<TimePoint> since;
    std::optional<TimePoint> until;
    /// Only final runs that finished before this (what retention purges).
    std::optional<TimePoint> finished_before;
    /// The page after this cursor (RunCursor::after of the previous page's
    /// last run); empty: the first page.
    std::optional<RunCursor> after;
    std::size_t limit = 100;
};

}  // namespace loom
