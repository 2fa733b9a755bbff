// Metrics: an Observer that counts what the executor does and shows it in
// Prometheus's text format (version 0.0.4), for a host to serve at /metrics.
// docs/05-operations.md#metrics lists every metric, its labels and buckets.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>

#include <loom/observer.hpp>

namespace loom {

/// Counts runs and steps by workflow and outcome, retries, live runs, and
/// keeps histograms of step durations, queue waits, commit latency and
/// commit size; text() is the Prometheus text exposition of them all.
///
///     loom::Metrics metrics;
///     loom::ExecutorOptions options;
///     options.observer = &metrics;        // or within a loom::Observers
///     loom::Executor executor(store, handlers, options);
///     ...
///     std::string body = metrics.text();  // served with Metrics::content_type
///
/// It sees what the executors it observes do, from the moment it is attached:
/// counters start at zero with the process, as Prometheus expects.
///
/// Thread safety: safe; every method may be called from any thread at once.
/// Each event takes one mutex for a few additions; text() copies the figures
/// under it and formats them after.
class Metrics : public Observer {
public:
    /// The HTTP Content-Type of text().
    static constexpr const char* content_type = "text/plain; version=0.0.4; charset=utf-8";

    Metrics();
    ~Metrics() override;
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    void on_run_changed(const RunChange& change) override;
    void on_step_changed(const StepEvent& event) override;
    void on_commit(const CommitStats& stats) override;

    /// The exposition: every metric with its # HELP and # TYPE lines,
    /// workflows in name order.
    std::string text() const;
    /// Writes text() to `out`.
    void write(std::ostream& out) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace loom
