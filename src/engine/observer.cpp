// LogObserver: one line per event, written whole under a mutex; Observers,
// which tells several; and what Observer::on_step_changed() and
// on_run_changed() tell observers that predate them.
#include <loom/observer.hpp>

#include <loom/events.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <ostream>

#include <fmt/chrono.h>

namespace loom {
namespace {

/// "2024-05-01T12:00:00.250Z"
std::string utc(TimePoint at) {
    const auto secs = std::chrono::floor<std::chrono::seconds>(at);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at - secs).count();
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z",
                       fmt::gmtime(std::chrono::system_clock::to_time_t(secs)), ms);
}

}  // namespace

void Observer::on_step_changed(const StepEvent& event) {
    // What observers written before on_step_changed() existed were told.
    if (!event.item && (event.status == StepStatus::completed || event.status == StepStatus::failed))
        on_step_finished(event);
}

void Observer::on_run_changed(const RunChange& change) {
    // What observers written before on_run_changed() existed were told.
    if (change.live) {
        if (change.kind == event::run_started) on_run_started(change.run_id, change.workflow_name);
    } else if (change.status != RunStatus::running) {
        on_run_finished(change.run_id, change.status, change.error);
    }
}

Observers::Observers(std::initializer_list<Observer*> observers) : Observers(std::vector<Observer*>(observers)) {}

Observers::Observers(std::vector<Observer*> observers) : observers_(std::move(observers)) {
    observers_.erase(std::remove(observers_.begin(), observers_.end(), nullptr), observers_.end());
}

template <class Call>
void Observers::each(const Call& call) {
    for (Observer* o : observers_) {
        try {
            call(*o);
        } catch (...) {
            // As the executor does: one observer's failure is nobody else's.
        }
    }
}

void Observers::on_run_changed(const RunChange& change) {
    each([&](Observer& o) { o.on_run_changed(change); });
}

void Observers::on_step_changed(const StepEvent& event) {
    each([&](Observer& o) { o.on_step_changed(event); });
}

void Observers::on_log(const LogRecord& record) {
    each([&](Observer& o) { o.on_log(record); });
}

void Observers::on_commit(const CommitStats& stats) {
    each([&](Observer& o) { o.on_commit(stats); });
}

LogObserver::LogObserver(std::ostream& out, LogLevel min_level) : out_(out), min_level_(min_level) {}

void LogObserver::write(const std::string& line) {
    std::lock_guard lock(mutex_);
    out_ << line << '\n';
    out_.flush();
}

void LogObserver::on_run_started(const RunId& run, const std::string& workflow) {
    write("run " + run + " started (" + workflow + ")");
}

void LogObserver::on_step_changed(const StepEvent& e) {
    std::string line = "run " + e.run_id + " step " + e.step_id;
    if (e.item) line += " element " + std::to_string(*e.item);
    line += " " + std::string(to_string(e.status)) + " (attempt " + std::to_string(e.attempt) + ")";
    if (e.wake_at && (e.status == StepStatus::waiting || e.status == StepStatus::suspended ||
                      e.status == StepStatus::compensating))
        line += " until " + utc(*e.wake_at);
    if (e.status == StepStatus::completed) {
        if (e.output && !e.output->is_null()) line += ": " + e.output->dump();
    } else if (!e.error.empty() && e.status != StepStatus::cancelled) {
        line += ": " + e.error;
    } else if (!e.detail.empty() && !e.item) {   // an element's detail only names it
        line += ": " + e.detail;                 // why it was skipped or cancelled, what it waits for
    }
    write(line);
}

void LogObserver::on_run_finished(const RunId& run, RunStatus status, const std::string& error) {
    write("run " + run + " " + std::string(to_string(status)) + (error.empty() ? "" : ": " + error));
}

void LogObserver::on_log(const LogRecord& r) {
    if (r.level < min_level_) return;
    std::string where = r.run_id.empty() ? "executor" : "run " + r.run_id + " step " + r.step_id;
    write("[" + std::string(to_string(r.level)) + "] " + where + ": " + r.message);
}

}  // namespace loom
