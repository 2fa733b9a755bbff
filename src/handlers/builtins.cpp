#include "handlers/builtins.hpp"

#include <cstdio>
#include <ctime>

#include <fmt/format.h>

#include <loom/error.hpp>

#include "model/plan.hpp"

namespace loom::detail {
namespace {

/// The wait happens before the attempt (the step waits on a timer, holding no
/// thread); the attempt itself only marks the step done.
class SleepHandler final : public StepHandler {
public:
    Json run(StepContext&) override { return nullptr; }
};

/// The executor suspends a "wait" or "workflow:NAME" step when it is reached
/// and completes it from a signal or a child run; it never calls a handler.
class WaitHandler final : public StepHandler {
public:
    Json run(StepContext&) override {
        throw FatalError("a wait or sub-workflow step is completed by the executor, never run");
    }
};

[[noreturn]] void bad_input(const std::string& why) {
    throw InvalidArgument(error_id::sleep_input, "sleep step input " + why);
}

std::int64_t non_negative_ms(const Json& v, const char* key) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0)
        bad_input(fmt::format("\"{}\" must be a non-negative integer of milliseconds, not {}", key, v.dump()));
    return v.get<std::int64_t>();
}

TimePoint parse_utc(const std::string& text) {
    int y, mo, d, h, mi, s, consumed = 0;
    unsigned ms = 0;
    bool ok = std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) == 6;
    std::size_t at = static_cast<std::size_t>(consumed);
    if (ok && at < text.size() && text[at] == '.') {
        std::size_t digits = 0;
        for (++at; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, ++digits)
            if (digits < 3) ms = ms * 10 + static_cast<unsigned>(text[at] - '0');
        for (; digits < 3; ++digits) ms *= 10;
    }
    ok = ok && at + 1 == text.size() && text[at] == 'Z' && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 &&
         h <= 23 && mi <= 59 && s <= 60;
    if (!ok) bad_input(fmt::format("\"until\" must be a UTC time like \"2026-01-31T12:00:00Z\", not \"{}\"", text));
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return TimePoint(std::chrono::seconds(timegm(&tm))) + std::chrono::milliseconds(ms);
}

}  // namespace

bool is_reserved_handler(std::string_view name) noexcept {
    return builtin_kind(name) != StepKind::handler;
}

std::shared_ptr<StepHandler> builtin_handler(std::string_view name) {
    static const auto sleep = std::make_shared<SleepHandler>();
    static const auto wait = std::make_shared<WaitHandler>();
    if (name == "sleep") return sleep;
    if (name == "wait") return wait;
    if (builtin_kind(name) == StepKind::child) return wait;   // never run either: a child run is
    return nullptr;
}

TimePoint sleep_until(const Json& input, TimePoint now) {
    if (!input.is_object() || input.size() != 1)
        bad_input(fmt::format("must be an object with one of \"ms\", \"until_ms\", \"until\", not {}",
                              input.dump()));
    if (auto it = input.find("ms"); it != input.end())
        return now + std::chrono::milliseconds(non_negative_ms(*it, "ms"));
    if (auto it = input.find("until_ms"); it != input.end())
        return TimePoint(std::chrono::milliseconds(non_negative_ms(*it, "until_ms")));
    if (auto it = input.find("until"); it != input.end() && it->is_string())
        return parse_utc(it->get<std::string>());
    bad_input(fmt::format("must be an object with one of \"ms\", \"until_ms\", \"until\" (a string), not {}",
                          input.dump()));
}

}  // namespace loom::detail
