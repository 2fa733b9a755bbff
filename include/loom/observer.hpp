// Observers are told what the executor does, after it is durable. What an
// observer throws is caught and dropped: an observer never breaks a run.
#pragma once

#include <chrono>
#include <iosfwd>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <loom/json.hpp>
#include <loom/run.hpp>

namespace loom {

/// A change of a step, or of one element of a for_each step, as committed.
/// Each is recorded in the run's history too: `kind` and `detail` are those
/// of its RunEvent.
struct StepEvent {
    RunId run_id;
    std::string workflow_name;
    std::string step_id;
    /// The step itself: completed, failed, skipped, waiting (a retry or a
    /// sleep is due at wake_at), suspended (waits for a signal, a child run or
    /// an outside completion, until wake_at if it has a timeout), compensating
    /// (its undo is due; or due again at wake_at, after a failed try),
    /// compensated, cancelled (the run ended first), or ready (a shutdown
    /// stopped its attempt: "step.stopped"). An element: completed, failed or
    /// waiting (its retry is due at wake_at). Starts (ready -> running) are
    /// not told: most are written lazily, with the attempt's end.
    StepStatus status = StepStatus::completed;
    int attempt = 0;                             // attempts so far (an element's own)
    const Json* output = nullptr;                // completed: valid during the call only
    std::string error;                           // the step's (or element's) error, as stored
    std::optional<std::uint32_t> item;           // the element; empty for the step itself
    std::optional<TimePoint> started_at;         // of the latest attempt
    std::optional<TimePoint> finished_at;        // of the latest attempt, once it ended
    std::optional<TimePoint> wake_at;            // when a wait ends
    std::string_view kind;                       // "step.completed", "element.retrying", ...
    std::string detail;                          // the history entry's: an error, why it was skipped
};

/// Receives the executor's events, each once it is durable. Every method has
/// a default; what a method throws is caught and dropped.
///
/// Thread safety: methods are called from the executor's threads, possibly
/// concurrently (one run's step changes in commit order), never with the
/// executor's locks held; an implementation synchronizes itself.
class Observer {
public:
    virtual ~Observer() = default;
    virtual void on_run_started(const RunId& /*run*/, const std::string& /*workflow*/) {}
    /// Every committed change of a step or of a for_each element (see
    /// StepEvent). The default calls on_step_finished() for the step itself
    /// (not an element) when it completed or failed.
    virtual void on_step_changed(const StepEvent& event);
    /// The step (not an element) completed or failed, from the default
    /// on_step_changed() only: an observer that overrides on_step_changed()
    /// and still wants this calls Observer::on_step_changed().
    virtual void on_step_finished(const StepEvent& /*event*/) {}
    virtual void on_run_finished(const RunId& /*run*/, RunStatus /*status*/,
                                 const std::string& /*error*/) {}
    virtual void on_log(const LogRecord& /*record*/) {}
};

/// Writes one line per event to a stream.
///
/// Thread safety: safe; lines are written whole under a mutex.
class LogObserver : public Observer {
public:
    explicit LogObserver(std::ostream& out, LogLevel min_level = LogLevel::info);
    void on_run_started(const RunId& run, const std::string& workflow) override;
    void on_step_changed(const StepEvent& event) override;
    void on_run_finished(const RunId& run, RunStatus status, const std::string& error) override;
    void on_log(const LogRecord& record) override;

private:
    void write(const std::string& line);

    std::ostream& out_;   // guarded by mutex_
    LogLevel min_level_;
    std::mutex mutex_;
};

}  // namespace loom
