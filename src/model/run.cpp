// Names of run and step statuses: one table each, used by every store and message.
#include <loom/error.hpp>
#include <loom/run.hpp>

#include <array>
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
                          "unknown " + std::string(what) + " status \"" + std::string(name) + "\"");
}

}  // namespace

std::string_view to_string(RunStatus status) noexcept { return name_of(kRunNames, status); }
std::string_view to_string(StepStatus status) noexcept { return name_of(kStepNames, status); }
RunStatus parse_run_status(std::string_view name) { return parse(kRunNames, name, "run"); }
StepStatus parse_step_status(std::string_view name) { return parse(kStepNames, name, "step"); }

std::ostream& operator<<(std::ostream& out, RunStatus status) { return out << to_string(status); }
std::ostream& operator<<(std::ostream& out, StepStatus status) { return out << to_string(status); }

const StepInfo* RunInfo::step(std::string_view step_id) const {
    for (const auto& s : steps)
        if (s.step_id == step_id) return &s;
    return nullptr;
}

}  // namespace loom
