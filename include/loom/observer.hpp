// Observers are told what the executor does, after it is durable. What an
// observer throws is caught and dropped: an observer never breaks a run.
#pragma once

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <iosfwd>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
    /// When the latest attempt could start: its step's dependencies settled,
    /// its element was dispatched, or its retry came due. started_at minus
    /// this is how long it waited for a commit, a worker or a concurrency
    /// slot. Empty for steps that are not dispatched to a worker (a for_each
    /// step itself, wait and sub-workflow steps) and before a first attempt.
    std::optional<TimePoint> ready_at;
};

/// A run began or stopped running in this executor, once durable.
struct RunChange {
    RunId run_id;
    std::string workflow_name;
    /// True: the run runs here from now on; `kind` says how it came
    /// ("run.started", "run.recovered", "run.claimed", "run.retried",
    /// "run.rerun"). False: it runs here no more: it ended (`status` is
    /// final, `kind` "run.completed", ...), or this executor gave it up
    /// unfinished (`status` running, `kind` empty, `error` why: a failed
    /// commit or a lost lease), for recover() or another executor to resume.
    bool live = true;
    RunStatus status = RunStatus::running;
    std::string error;       // a failed run's, or why it was given up
    std::string_view kind;   // the history entry's, as above
};

/// One group commit, once durable: what one Store::commit() wrote, and how
/// long it took.
struct CommitStats {
    std::chrono::nanoseconds duration{0};   // Store::commit(), on the steady clock
    std::size_t runs = 0;     // run rows: new runs, run updates, recorded requests
    std::size_t steps = 0;    // step rows
    std::size_t items = 0;    // for_each element rows
    std::size_t events = 0;   // history entries
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
    /// A run began or stopped running here (see RunChange). The default calls
    /// on_run_started() for a run this executor started ("run.started") and
    /// on_run_finished() for a run that ended; an observer that overrides
    /// this and still wants those calls Observer::on_run_changed().
    virtual void on_run_changed(const RunChange& change);
    /// A run started by this executor, from the default on_run_changed() only.
    virtual void on_run_started(const RunId& /*run*/, const std::string& /*workflow*/) {}
    /// Every committed change of a step or of a for_each element (see
    /// StepEvent). The default calls on_step_finished() for the step itself
    /// (not an element) when it completed or failed.
    virtual void on_step_changed(const StepEvent& event);
    /// The step (not an element) completed or failed, from the default
    /// on_step_changed() only: an observer that overrides on_step_changed()
    /// and still wants this calls Observer::on_step_changed().
    virtual void on_step_finished(const StepEvent& /*event*/) {}
    /// The run ended, from the default on_run_changed() only.
    virtual void on_run_finished(const RunId& /*run*/, RunStatus /*status*/,
                                 const std::string& /*error*/) {}
    virtual void on_log(const LogRecord& /*record*/) {}
    /// A group commit is durable (see CommitStats); called by the thread that
    /// committed it, before the changes it carries are told.
    virtual void on_commit(const CommitStats& /*stats*/) {}
};

/// Tells several observers, in the order given, everything the executor
/// tells it: how a host uses a LogObserver and a Metrics together.
///
///     loom::LogObserver log(std::cerr);
///     loom::Metrics metrics;
///     loom::Observers both{&log, &metrics};
///     options.observer = &both;
///
/// What one of them throws is dropped, and the next is still told. Null
/// entries are skipped.
///
/// Thread safety: as safe as the observers it holds; the list is fixed at
/// construction. They must outlive it.
class Observers : public Observer {
public:
    Observers(std::initializer_list<Observer*> observers);
    explicit Observers(std::vector<Observer*> observers);
    void on_run_changed(const RunChange& change) override;
    void on_step_changed(const StepEvent& event) override;
    void on_log(const LogRecord& record) override;
    void on_commit(const CommitStats& stats) override;

private:
    template <class Call>
    void each(const Call& call);

    std::vector<Observer*> observers_;   // the non-null ones given
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
