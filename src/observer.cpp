// LogObserver: one line per event, written whole under a mutex.
#include <loom/observer.hpp>

#include <ostream>

namespace loom {

std::string_view to_string(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::debug: return "debug";
        case LogLevel::info: return "info";
        case LogLevel::warn: return "warn";
        case LogLevel::error: return "error";
    }
    return "unknown";
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

void LogObserver::on_step_finished(const StepEvent& e) {
    std::string line = "run " + e.run_id + " step " + e.step_id + " " +
                       std::string(to_string(e.status)) + " (attempt " + std::to_string(e.attempt) + ")";
    if (e.status == StepStatus::completed && e.output) line += ": " + e.output->dump();
    if (!e.error.empty()) line += ": " + e.error;
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
