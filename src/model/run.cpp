// Names of run and step statuses and log levels: one table each, used by every
// store and message; the text form of a page cursor.
#include <loom/error.hpp>
#include <loom/run.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <ostream>
#include <string>
#include <utility>

namespace loom {
namespace {

constexpr std::array<std::pair<RunStatus, std::string_view>, 4> kRunNames{{
    {RunStatus::running, "running"},
    {RunStatus::completed, "completed"},
    {RunStatus::failed, "failed"},
    {RunStatus::cancelled, "cancelled"},
}};

constexpr std::array<std::pair<StepStatus, std::string_view>, 11> kStepNames{{
    {StepStatus::pending, "pending"},
    {StepStatus::ready, "ready"},
    {StepStatus::running, "running"},
    {StepStatus::waiting, "waiting"},
    {StepStatus::suspended, "suspended"},
    {StepStatus::completed, "completed"},
    {StepStatus::failed, "failed"},
    {StepStatus::skipped, "skipped"},
    {StepStatus::compensating, "compensating"},
    {StepStatus::compensated, "compensated"},
    {StepStatus::cancelled, "cancelled"},
}};

constexpr std::array<std::pair<LogLevel, std::string_view>, 4> kLevelNames{{
    {LogLevel::debug, "debug"},
    {LogLevel::info, "info"},
    {LogLevel::warn, "warn"},
    {LogLevel::error, "error"},
}};

template <typename Table, typename Enum>
std::string_view name_of(const Table& table, Enum value) noexcept {
    for (const auto& [v, name] : table)
        if (v == value) return name;
    return "unknown";
}

template <typename Table>
auto parse(const Table& table, std::string_view name, const char* what) {
    for (const auto& [value, n] : table)
        if (n == name) return value;
    throw InvalidArgument(error_id::status_unknown,
                          "unknown " + std::string(what) + " \"" + std::string(name) + "\"");
}

}  // namespace

std::string_view to_string(RunStatus status) noexcept { return name_of(kRunNames, status); }
std::string_view to_string(StepStatus status) noexcept { return name_of(kStepNames, status); }
RunStatus parse_run_status(std::string_view name) { return parse(kRunNames, name, "run status"); }
StepStatus parse_step_status(std::string_view name) { return parse(kStepNames, name, "step status"); }

std::string_view to_string(LogLevel level) noexcept { return name_of(kLevelNames, level); }
LogLevel parse_log_level(std::string_view name) { return parse(kLevelNames, name, "log level"); }

std::string RunCursor::to_string() const {
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(created_at.time_since_epoch());
    return std::to_string(millis.count()) + "-" + id;
}

RunCursor RunCursor::parse(std::string_view text) {
    const auto dash = text.find('-');
    std::int64_t millis = 0;
    const char* end = text.data() + (dash == std::string_view::npos ? 0 : dash);
    const auto [ptr, ec] = std::from_chars(text.data(), end, millis);
    if (dash == std::string_view::npos || dash == 0 || ec != std::errc() || ptr != end || dash + 1 == text.size())
        throw InvalidArgument(error_id::cursor_malformed,
                              "page cursor \"" + std::string(text) + "\" is not <created_at ms>-<run id>");
    return RunCursor{TimePoint(std::chrono::milliseconds(millis)), RunId(text.substr(dash + 1))};
}

std::ostream& operator<<(std::ostream& out, RunStatus status) { return out << to_string(status); }
std::ostream& operator<<(std::ostream& out, StepStatus status) { return out << to_string(status); }

const StepInfo* RunInfo::step(std::string_view step_id) const {
    for (const auto& s : steps)
        if (s.step_id == step_id) return &s;
    return nullptr;
}

}  // namespace loom
