// Observers are told what the executor does, after it is durable. What an
// observer throws is caught and dropped: an observer never breaks a run.
#pragma once

#include <chrono>
#include <iosfwd>
#include <mutex>
#include <string>

#include <loom/json.hpp>
#include <loom/run.hpp>

namespace loom {

enum class LogLevel { debug, info, warn, error };
std::string_view to_string(LogLevel level) noexcept;

/// A line logged by a handler through StepContext::log, or by the executor.
struct LogRecord {
    LogLevel level = LogLevel::info;
    RunId run_id;          // empty for executor-wide messages
    std::string step_id;
    int attempt = 0;
    std::string message;
    std::optional<std::uint32_t> item;   // the element of a for_each step that logged
};

/// A committed step transition, as on_step_finished() reports it today: an
/// attempt of a step (not of a for_each step) that ended or timed out, a
/// suspended step resumed (by its signal, its child run, complete()/fail() or
/// its timeout), and a compensation that ended. Not reported yet: for_each
/// steps and their elements, skipped steps, and steps failed without an
/// attempt (a condition error, the run's deadline).
struct StepEvent {
    RunId run_id;
    std::string workflow_name;
    std::string step_id;
    /// What the step became: completed, failed, waiting (a retry is due) or
    /// suspended (the handler called ctx.suspend()); after a compensation,
    /// compensated, compensating (the undo will be tried again) or failed.
    StepStatus status = StepStatus::completed;
    int attempt = 0;
    const Json* output = nullptr;                // valid during the call only
    std::string error;
};

/// Receives the executor's events. Every method has an empty default.
///
/// Thread safety: methods are called from the executor's threads, possibly
/// concurrently; an implementation synchronizes itself.
class Observer {
public:
    virtual ~Observer() = default;
    virtual void on_run_started(const RunId& /*run*/, const std::string& /*workflow*/) {}
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
    void on_step_finished(const StepEvent& event) override;
    void on_run_finished(const RunId& run, RunStatus status, const std::string& error) override;
    void on_log(const LogRecord& record) override;

private:
    void write(const std::string& line);

    std::ostream& out_;   // guarded by mutex_
    LogLevel min_level_;
    std::mutex mutex_;
};

}  // namespace loom
