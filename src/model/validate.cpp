// Workflow::from_json: the one validation path for every definition, and the
// compilation of a valid one into a detail::Plan. Cheap bounds come first (size,
// then nesting depth by a scan that never recurses), then parsing, then structure.
// Every error is a DefinitionError "[loom.definition.<reason>] <JSON path>: <text>";
// the first one in document order is thrown, and nothing is changed.
#include <loom/error.hpp>
#include <loom/workflow.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <tuple>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "model/expression.hpp"
#include "model/model.hpp"
#include "model/plan.hpp"

namespace loom {
namespace detail {

void fail_definition(const char* id, std::string_view path, std::string_view text) {
    throw DefinitionError(id,
                          fmt::format("{}: {}", path.empty() ? "/" : path, text));
}

std::string quote(std::string_view s) {
    return Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

namespace {
constexpr std::string_view kChildPrefix = "workflow:";
}

StepKind builtin_kind(std::string_view handler) noexcept {
    if (handler == "sleep") return StepKind::sleep;
    if (handler == "wait") return StepKind::wait;
    if (handler.substr(0, kChildPrefix.size()) == kChildPrefix) return StepKind::child;
    return StepKind::handler;
}

std::string_view child_workflow(std::string_view handler) noexcept {
    if (builtin_kind(handler) != StepKind::child) return {};
    return handler.substr(kChildPrefix.size());
}

std::string describe_char(unsigned char c) {
    if (c >= 0x20 && c < 0x7f) return fmt::format("'{}'", static_cast<char>(c));
    return fmt::format("byte 0x{:02X}", c);
}

}  // namespace detail

namespace {

using detail::fail_definition;
using detail::describe_char;
using detail::quote;

// The keys each object of a definition may hold, in the order they are checked.
// New definition keys are added here (and read in read_workflow / read_step, or by
// the read_* function of the object that holds them).
struct Key {
    std::string_view name;
    bool required;
};
constexpr Key kWorkflowKeys[] = {{"name", true}, {"version", true}, {"steps", true},
                                 {"defaults", false}, {"deadline_ms", false}};
constexpr Key kStepKeys[] = {{"id", true}, {"handler", true}, {"input", false},
                             {"depends_on", false}, {"retry", false}, {"timeout_ms", false},
                             {"on_error", false}, {"compensate", false}, {"when", false},
                             {"run_if_skipped", false}, {"for_each", false}, {"max_parallel", false}};
constexpr Key kDefaultsKeys[] = {{"retry", false}, {"timeout_ms", false}, {"on_error", false}};
constexpr Key kRetryKeys[] = {{"max_attempts", false}, {"initial_backoff_ms", false},
                              {"multiplier", false}, {"max_backoff_ms", false}, {"jitter", false}};
constexpr Key kCompensateKeys[] = {{"handler", true}, {"input", false}};

// The ranges of numeric settings; an error quotes them. Every minimum is >= 0.
struct IntegerRange {
    std::int64_t min;
    std::int64_t max;
    const char* max_in_words;   // nullptr: the number says it all
};
struct NumberRange {
    double min;
    double max;
};
constexpr std::int64_t kDayMs = 86'400'000;
constexpr IntegerRange kMaxAttempts{1, 1'000, nullptr};
constexpr IntegerRange kBackoffMs{0, kDayMs, "one day"};
constexpr IntegerRange kTimeoutMs{1, 7 * kDayMs, "one week"};
constexpr IntegerRange kDeadlineMs{1, 365 * kDayMs, "365 days"};
constexpr IntegerRange kMaxParallel{1, 1'000'000, nullptr};
constexpr NumberRange kMultiplier{1, 100};
constexpr NumberRange kJitter{0, 1};
constexpr const char* kOnErrorNames = R"("fail", "continue" or "compensate")";

// The three identifier grammars, spelled out so an error can say which rule broke.
struct IdRule {
    const char* what;
    bool (*first_ok)(unsigned char);
    bool (*rest_ok)(unsigned char);
    const char* first_allowed;
    const char* rest_allowed;
    const char* pattern;
};
constexpr std::size_t kMaxIdLength = 128;

bool is_alpha(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_word(unsigned char c) { return is_alpha(c) || is_digit(c) || c == '_'; }

constexpr IdRule kStepId{
    "step id", [](unsigned char c) { return is_alpha(c) || c == '_'; },
    [](unsigned char c) { return is_word(c) || c == '-'; }, "a letter or '_'",
    "letters, digits, '_' and '-'", "^[A-Za-z_][A-Za-z0-9_-]{0,127}$"};
constexpr IdRule kWorkflowName{
    "workflow name", is_word, [](unsigned char c) { return is_word(c) || c == '.' || c == '-'; },
    "a letter, digit or '_'", "letters, digits, '_', '.' and '-'",
    "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"};
constexpr IdRule kHandlerName{
    "handler name", is_word,
    [](unsigned char c) {
        return is_word(c) || c == '.' || c == ':' || c == '/' || c == '-';
    },
    "a letter, digit or '_'", "letters, digits, '_', '.', ':', '/' and '-'",
    "^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$"};

// Paths are built only for an error (validation runs on every definition; errors are
// rare), so checkers take either a path or a function that makes one.
template <class Path>
std::string path_text(const Path& path) {
    if constexpr (std::is_invocable_v<const Path&>) {
        return path();
    } else {
        return std::string(path);
    }
}

template <class Path>
void check_id(const std::string& id, const IdRule& rule, const Path& path_of) {
    auto path = [&] { return path_text(path_of); };
    if (id.empty()) fail_definition(error_id::definition_bad_id, path(), fmt::format("{} must not be empty", rule.what));
    if (id.size() > kMaxIdLength) {
        fail_definition(error_id::definition_bad_id, path(),
                        fmt::format("{} is {} characters long; the limit is {} ({})", rule.what,
                                    id.size(), kMaxIdLength, rule.pattern));
    }
    if (!rule.first_ok(static_cast<unsigned char>(id[0]))) {
        fail_definition(error_id::definition_bad_id, path(),
                        fmt::format("{} {} must start with {} ({})", rule.what, quote(id),
                                    rule.first_allowed, rule.pattern));
    }
    for (std::size_t i = 1; i < id.size(); ++i) {
        auto c = static_cast<unsigned char>(id[i]);
        if (!rule.rest_ok(c)) {
            fail_definition(error_id::definition_bad_id, path(),
                            fmt::format("{} {} has {} at index {}; only {} may follow the first "
                                        "character ({})",
                                        rule.what, quote(id), describe_char(c), i,
                                        rule.rest_allowed, rule.pattern));
        }
    }
}

std::string child(const std::string& path, std::string_view token) {
    return path + (Json::json_pointer() / std::string(token)).to_string();
}
std::string child(const std::string& path, std::size_t index) {
    return fmt::format("{}/{}", path, index);
}

template <class Path>
void expect(const Json& value, bool ok, const char* expected, const Path& path) {
    if (!ok) {
        fail_definition(error_id::definition_type, path_text(path),
                        fmt::format("expected {}, got {}", expected, value.type_name()));
    }
}

template <std::size_t N, class Path>
void check_keys(const Json& object, const Key (&keys)[N], const Path& path) {
    for (const auto& item : object.items()) {
        bool known = std::any_of(std::begin(keys), std::end(keys),
                                 [&](const Key& k) { return k.name == item.key(); });
        if (!known) {
            std::string allowed;
            for (const Key& k : keys) allowed += (allowed.empty() ? "" : ", ") + std::string(k.name);
            fail_definition(error_id::definition_unknown_key, child(path_text(path), item.key()),
                            fmt::format("unknown key {}; allowed keys are {}", quote(item.key()),
                                        allowed));
        }
    }
    for (const Key& k : keys) {
        if (k.required && !object.contains(k.name)) {
            fail_definition(error_id::definition_missing_key, path_text(path),
                            fmt::format("missing required key {}", quote(k.name)));
        }
    }
}

// An object holding only `keys`, and all of those that are required.
template <std::size_t N, class Path>
void check_object(const Json& value, const Key (&keys)[N], const Path& path) {
    expect(value, value.is_object(), "an object", path);
    check_keys(value, keys, path);
}

// Calls read(value, path of value) if `object` has `key`.
template <class Path, class Read>
void if_present(const Json& object, const char* key, const Path& path, Read read) {
    auto found = object.find(key);
    if (found != object.end()) read(*found, [&path, key] { return child(path_text(path), key); });
}

// An integer within `range`. A value that is not a number is a "type" error, a
// number that is not such an integer (a fraction, negative, too large) a `reason` one.
template <class Path>
std::int64_t read_integer(const Json& v, const IntegerRange& range, const char* reason,
                          const Path& path) {
    auto fail = [&](const char* id, const std::string& got) {
        fail_definition(id, path_text(path),
                        fmt::format("expected an integer from {} to {}{}, got {}", range.min,
                                    range.max,
                                    range.max_in_words ? fmt::format(" ({})", range.max_in_words) : "",
                                    got));
    };
    if (!v.is_number()) fail(error_id::definition_type, v.type_name());
    const bool in_range =
        v.is_number_unsigned()
            ? v.get<std::uint64_t>() >= std::uint64_t(range.min) &&
                  v.get<std::uint64_t>() <= std::uint64_t(range.max)
            : v.is_number_integer() && v.get<std::int64_t>() >= range.min &&
                  v.get<std::int64_t>() <= range.max;
    if (!in_range) fail(reason, v.dump());
    return v.get<std::int64_t>();
}

// A number within `range`, as read_integer.
template <class Path>
double read_number(const Json& v, const NumberRange& range, const char* reason,
                   const Path& path) {
    auto fail = [&](const char* id, const std::string& got) {
        fail_definition(id, path_text(path),
                        fmt::format("expected a number from {} to {}, got {}", range.min, range.max, got));
    };
    if (!v.is_number()) fail(error_id::definition_type, v.type_name());
    const double x = v.get<double>();
    // Written so that NaN fails too; a Json (not text) may hold NaN or infinity.
    if (!(x >= range.min && x <= range.max)) {
        fail(reason, std::isfinite(x) ? v.dump() : fmt::format("{}", x));
    }
    return x;
}

template <class Path>
RetryPolicy read_retry(const Json& v, const Path& path) {
    check_object(v, kRetryKeys, path);
    RetryPolicy retry;
    using std::chrono::milliseconds;
    if_present(v, "max_attempts", path, [&](const Json& x, const auto& at) {
        retry.max_attempts = static_cast<int>(read_integer(x, kMaxAttempts, error_id::definition_bad_retry, at));
    });
    if_present(v, "initial_backoff_ms", path, [&](const Json& x, const auto& at) {
        retry.initial_backoff = milliseconds(read_integer(x, kBackoffMs, error_id::definition_bad_retry, at));
    });
    if_present(v, "multiplier", path, [&](const Json& x, const auto& at) {
        retry.multiplier = read_number(x, kMultiplier, error_id::definition_bad_retry, at);
    });
    if_present(v, "max_backoff_ms", path, [&](const Json& x, const auto& at) {
        retry.max_backoff = milliseconds(read_integer(x, kBackoffMs, error_id::definition_bad_retry, at));
    });
    if_present(v, "jitter", path, [&](const Json& x, const auto& at) {
        retry.jitter = read_number(x, kJitter, error_id::definition_bad_retry, at);
    });
    if (retry.max_backoff < retry.initial_backoff) {
        const bool given = v.contains("max_backoff_ms");
        fail_definition(error_id::definition_bad_retry, given ? child(path_text(path), "max_backoff_ms") : path_text(path),
                        fmt::format("max_backoff_ms ({}{}) must be at least initial_backoff_ms ({})",
                                    retry.max_backoff.count(), given ? "" : ", the default",
                                    retry.initial_backoff.count()));
    }
    return retry;
}

template <class Path>
std::chrono::milliseconds read_timeout(const Json& v, const Path& path) {
    return std::chrono::milliseconds(read_integer(v, kTimeoutMs, error_id::definition_bad_timeout, path));
}

template <class Path>
OnError read_on_error(const Json& v, const Path& path) {
    expect(v, v.is_string(), "a string", path);
    const auto& name = v.get_ref<const std::string&>();
    std::optional<OnError> on_error = detail::parse_on_error(name);
    if (!on_error) {
        fail_definition(error_id::definition_bad_on_error, path_text(path),
                        fmt::format("expected {}, got {}", kOnErrorNames, quote(name)));
    }
    return *on_error;
}

// The settings a step shares with the workflow's "defaults", read from either.
template <class Path>
void read_settings(const Json& object, const Path& path, std::optional<RetryPolicy>& retry,
                   std::optional<std::chrono::milliseconds>& timeout,
                   std::optional<OnError>& on_error) {
    if_present(object, "retry", path, [&](const Json& v, const auto& at) { retry = read_retry(v, at); });
    if_present(object, "timeout_ms", path,
               [&](const Json& v, const auto& at) { timeout = read_timeout(v, at); });
    if_present(object, "on_error", path,
               [&](const Json& v, const auto& at) { on_error = read_on_error(v, at); });
}

// "handler" of a step or of its compensation (required: check_keys has run).
template <class Path>
std::string read_handler(const Json& object, const Path& path) {
    std::string handler;
    if_present(object, "handler", path, [&](const Json& v, const auto& at) {
        expect(v, v.is_string(), "a string", at);
        handler = v.get<std::string>();
        check_id(handler, kHandlerName, at);
    });
    return handler;
}

template <class Path>
Compensation read_compensation(const Json& v, const Path& path) {
    check_object(v, kCompensateKeys, path);
    Compensation compensation;
    compensation.handler = read_handler(v, path);
    if_present(v, "input", path, [&](const Json& input, const auto&) { compensation.input = input; });
    return compensation;
}

// Nesting depth from the text alone: linear, no recursion, no allocation, so a
// hostile "[[[[..." is refused before a parser or a destructor ever sees it.
void check_depth(std::string_view text, std::size_t max_depth) {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                fail_definition(error_id::definition_too_deep, "",
                                fmt::format("nesting depth exceeds the limit of {}", max_depth));
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
}

// The same bound for an already-built Json, walked iteratively: dump() recurses,
// so it must not see a value nested deeper than the limit.
void check_depth(const Json& root, std::size_t max_depth) {
    std::vector<std::pair<const Json*, std::size_t>> stack{{&root, 0}};
    while (!stack.empty()) {
        auto [value, depth] = stack.back();
        stack.pop_back();
        if (!value->is_structured()) continue;
        if (depth + 1 > max_depth) {
            fail_definition(error_id::definition_too_deep, "",
                            fmt::format("nesting depth exceeds the limit of {}", max_depth));
        }
        for (const Json& element : *value) stack.emplace_back(&element, depth + 1);
    }
}

void check_size(std::size_t bytes, std::size_t max_bytes) {
    if (bytes > max_bytes) {
        fail_definition(error_id::definition_too_large, "",
                        fmt::format("definition is {} bytes; the limit is {}", bytes, max_bytes));
    }
}

// nlohmann's what() without its own "[json.exception...] " id.
std::string json_error_text(const Json::exception& e) {
    std::string_view what = e.what();
    auto end = what.find("] ");
    return std::string(end == std::string_view::npos ? what : what.substr(end + 2));
}

// Everything a definition holds, read from JSON; the Plan is filled as we go.
struct Reader {
    const Json& doc;
    const DefinitionLimits& limits;
    std::string name;
    std::int64_t version = 0;
    std::vector<Step> steps;
    WorkflowDefaults defaults;
    std::optional<std::chrono::milliseconds> deadline;
    detail::Plan plan;

    void read_workflow();
    void read_step(const Json& step, std::size_t i);
    void read_fan_out(const Json& s, std::size_t i, Step& step);
    void link_dependencies();
    std::vector<std::uint32_t> rank_steps() const;

    // A ${steps.X.output} where X is not a direct dependency of the referring step.
    struct Indirect {
        std::uint32_t step;
        std::uint32_t target;
        std::string path;
        std::string text;
    };
    std::vector<Indirect> compile_inputs();
    void compile_condition(std::uint32_t i, std::vector<Indirect>& indirect);
    void compile_for_each(std::uint32_t i, std::vector<Indirect>& indirect);
    void compile_template(const Json& tmpl, std::uint32_t i, const std::string& path, bool self_ok,
                          detail::RefContext context, std::vector<detail::Substitution>& substitutions,
                          std::vector<Indirect>& indirect);
    /// `ref` in step i at `path` is fine if it names the input, the element,
    /// or a direct dependency; else it must be checked to be upstream.
    void note_indirect(const detail::Reference& ref, std::uint32_t i, const std::string& path,
                       std::vector<Indirect>& indirect) const;
    void check_upstream(const std::vector<Indirect>& indirect,
                        const std::vector<std::uint32_t>& rank) const;
};

void Reader::read_workflow() {
    expect(doc, doc.is_object(), "an object", "");
    // Limits before anything else is read.
    auto steps_it = doc.find("steps");
    if (steps_it != doc.end() && steps_it->is_array() && steps_it->size() > limits.max_steps) {
        fail_definition(error_id::definition_too_many_steps, "/steps",
                        fmt::format("{} steps; the limit is {}", steps_it->size(), limits.max_steps));
    }
    check_keys(doc, kWorkflowKeys, "");

    const Json& name_json = doc["name"];
    expect(name_json, name_json.is_string(), "a string", "/name");
    name = name_json.get<std::string>();
    check_id(name, kWorkflowName, "/name");

    const Json& v = doc["version"];
    const std::string got = v.is_number() ? v.dump() : v.type_name();
    bool positive = v.is_number_unsigned() ? v.get<std::uint64_t>() > 0
                                           : v.is_number_integer() && v.get<std::int64_t>() > 0;
    if (!positive) fail_definition(error_id::definition_type, "/version", "expected a positive integer, got " + got);
    constexpr auto kMaxVersion = std::numeric_limits<std::int64_t>::max();
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(kMaxVersion)) {
        fail_definition(error_id::definition_type, "/version",
                        fmt::format("expected a positive integer of at most {}, got {}",
                                    kMaxVersion, got));
    }
    version = v.get<std::int64_t>();

    if_present(doc, "defaults", "", [&](const Json& d, const auto& at) {
        check_object(d, kDefaultsKeys, at);
        read_settings(d, at, defaults.retry, defaults.timeout, defaults.on_error);
    });
    if_present(doc, "deadline_ms", "", [&](const Json& d, const auto& at) {
        deadline = std::chrono::milliseconds(read_integer(d, kDeadlineMs, error_id::definition_bad_deadline, at));
    });

    const Json& steps_json = doc["steps"];
    expect(steps_json, steps_json.is_array(), "an array", "/steps");
    if (steps_json.empty()) fail_definition(error_id::definition_empty, "/steps", "a workflow needs at least one step");
    steps.reserve(steps_json.size());
    plan.steps.resize(steps_json.size());
    plan.index.reserve(steps_json.size());
    for (std::size_t i = 0; i < steps_json.size(); ++i) read_step(steps_json[i], i);
}

void Reader::read_step(const Json& s, std::size_t i) {
    auto path = [i] { return child("/steps", i); };
    auto field = [i](const char* key) {
        return [i, key] { return fmt::format("/steps/{}/{}", i, key); };
    };
    check_object(s, kStepKeys, path);
    Step step;

    const Json& id = s["id"];
    expect(id, id.is_string(), "a string", field("id"));
    step.id = id.get<std::string>();
    check_id(step.id, kStepId, field("id"));
    auto [existing, inserted] = plan.index.emplace(step.id, static_cast<std::uint32_t>(i));
    if (!inserted) {
        fail_definition(error_id::definition_duplicate_id, field("id")(),
                        fmt::format("step id {} is already used by /steps/{}", quote(step.id),
                                    existing->second));
    }

    step.handler = read_handler(s, path);

    if (auto deps = s.find("depends_on"); deps != s.end()) {
        expect(*deps, deps->is_array(), "an array", field("depends_on"));
        step.depends_on.reserve(deps->size());
        for (std::size_t j = 0; j < deps->size(); ++j) {
            const Json& dep = (*deps)[j];
            expect(dep, dep.is_string(), "a string",
                   [i, j] { return fmt::format("/steps/{}/depends_on/{}", i, j); });
            step.depends_on.push_back(dep.get<std::string>());
        }
    }
    if (auto input = s.find("input"); input != s.end()) step.input = *input;
    read_settings(s, path, step.retry, step.timeout, step.on_error);
    if_present(s, "compensate", path,
               [&](const Json& c, const auto& at) { step.compensate = read_compensation(c, at); });
    if_present(s, "when", path, [&](const Json& w, const auto& at) {
        expect(w, w.is_string(), "a string", at);
        step.when = w.get<std::string>();
        if (step.when.empty()) {
            fail_definition(error_id::definition_empty, at(),
                            "a condition must not be empty; leave \"when\" out for a step that "
                            "always runs");
        }
    });
    if_present(s, "run_if_skipped", path, [&](const Json& r, const auto& at) {
        expect(r, r.is_boolean(), "a boolean", at);
        step.run_if_skipped = r.get<bool>();
    });
    plan.steps[i].kind = detail::builtin_kind(step.handler);
    read_fan_out(s, i, step);
    steps.push_back(std::move(step));
}

// "for_each" and "max_parallel" of step i: the array reference is compiled with
// the inputs (compile_for_each), once every step id is known.
void Reader::read_fan_out(const Json& s, std::size_t i, Step& step) {
    auto path = [i] { return child("/steps", i); };
    if_present(s, "for_each", path, [&](const Json& f, const auto& at) {
        expect(f, f.is_string(), "a string", at);
        step.for_each = f.get<std::string>();
        if (step.for_each.empty()) {
            fail_definition(error_id::definition_bad_for_each, at(),
                            "for_each must be one reference to an array, such as \"${input.items}\"; "
                            "leave it out for a step that runs once");
        }
        if (plan.steps[i].kind != detail::StepKind::handler) {
            fail_definition(error_id::definition_bad_for_each, at(),
                            fmt::format("handler {} is built in; for_each runs a registered handler "
                                        "once per element",
                                        quote(step.handler)));
        }
        plan.steps[i].kind = detail::StepKind::for_each;
    });
    if_present(s, "max_parallel", path, [&](const Json& m, const auto& at) {
        const auto limit = read_integer(m, kMaxParallel, error_id::definition_bad_for_each, at);
        if (step.for_each.empty()) {
            fail_definition(error_id::definition_bad_for_each, at(),
                            "max_parallel limits the elements of a for_each; this step has no "
                            "\"for_each\"");
        }
        step.max_parallel = static_cast<std::uint32_t>(limit);
    });
}

// Needs every id, so it runs once all steps are read (dependencies may point forward).
void Reader::link_dependencies() {
    // first_at[d] is where step i first listed d, valid while listed_by[d] == i + 1;
    // stamps keep the duplicate check linear however many dependencies a step has.
    std::vector<std::size_t> listed_by(steps.size(), 0), first_at(steps.size(), 0);
    for (std::uint32_t i = 0; i < steps.size(); ++i) {
        auto path = [i](std::size_t j) { return fmt::format("/steps/{}/depends_on/{}", i, j); };
        const auto& depends_on = steps[i].depends_on;
        for (std::size_t j = 0; j < depends_on.size(); ++j) {
            auto found = plan.index.find(depends_on[j]);
            if (found == plan.index.end()) {
                fail_definition(error_id::definition_unknown_dependency, path(j),
                                fmt::format("step {} depends on unknown step {}", quote(steps[i].id),
                                            quote(depends_on[j])));
            }
            std::uint32_t d = found->second;
            if (d == i) {
                fail_definition(error_id::definition_self_dependency, path(j),
                                fmt::format("step {} depends on itself", quote(steps[i].id)));
            }
            if (listed_by[d] == i + 1) {
                fail_definition(error_id::definition_duplicate_dependency, path(j),
                                fmt::format("step {} is listed twice (first at {})",
                                            quote(depends_on[j]), path(first_at[d])));
            }
            listed_by[d] = i + 1;
            first_at[d] = j;
            plan.steps[i].deps.push_back(d);
            plan.steps[d].dependents.push_back(i);
        }
    }
    for (std::uint32_t i = 0; i < steps.size(); ++i) {
        if (plan.steps[i].dependents.empty()) plan.sinks.push_back(i);
    }
}

// Kahn's algorithm, returning each step's position in a topological order. If steps
// remain, each has a remaining dependency, so following those from any remaining
// step must close a loop: that loop is reported, from its earliest step in the document.
std::vector<std::uint32_t> Reader::rank_steps() const {
    const std::size_t n = steps.size();
    std::vector<std::size_t> pending(n);
    std::vector<std::uint32_t> done;
    done.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        pending[i] = plan.steps[i].deps.size();
        if (pending[i] == 0) done.push_back(i);
    }
    for (std::size_t head = 0; head < done.size(); ++head) {
        for (std::uint32_t d : plan.steps[done[head]].dependents) {
            if (--pending[d] == 0) done.push_back(d);
        }
    }
    if (done.size() == n) {
        std::vector<std::uint32_t> rank(n);
        for (std::uint32_t r = 0; r < n; ++r) rank[done[r]] = r;
        return rank;
    }

    auto start = static_cast<std::uint32_t>(
        std::find_if(pending.begin(), pending.end(), [](std::size_t p) { return p > 0; }) -
        pending.begin());
    constexpr std::size_t kUnvisited = std::numeric_limits<std::size_t>::max();
    std::vector<std::size_t> walk_pos(n, kUnvisited);
    std::vector<std::uint32_t> walk;
    std::uint32_t at = start;
    while (walk_pos[at] == kUnvisited) {
        walk_pos[at] = walk.size();
        walk.push_back(at);
        const auto& deps = plan.steps[at].deps;
        at = *std::find_if(deps.begin(), deps.end(), [&](std::uint32_t d) { return pending[d] > 0; });
    }
    std::vector<std::uint32_t> cycle(walk.begin() + static_cast<std::ptrdiff_t>(walk_pos[at]),
                                     walk.end());
    std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
    std::string names;
    for (std::uint32_t s : cycle) names += steps[s].id + " -> ";
    names += steps[cycle.front()].id;
    fail_definition(error_id::definition_cycle, child("/steps", cycle.front()) + "/depends_on",
                    fmt::format("steps {} form a cycle (each step depends on the next)", names));
}

// Parses every templated string in each step's input, then in its compensation's
// input, once, in document order. References to a direct dependency (or, from a
// compensation, to the step itself) are fine at once; the others are returned for
// check_upstream.
std::vector<Reader::Indirect> Reader::compile_inputs() {
    std::vector<Indirect> indirect;
    for (std::uint32_t i = 0; i < steps.size(); ++i) {
        if (steps[i].input) {
            const auto context = steps[i].for_each.empty() ? detail::RefContext::input
                                                           : detail::RefContext::element;
            compile_template(*steps[i].input, i, child("/steps", i) + "/input", false, context,
                             plan.steps[i].substitutions, indirect);
        }
        if (!steps[i].when.empty()) compile_condition(i, indirect);
        if (steps[i].compensate && steps[i].compensate->input) {
            compile_template(*steps[i].compensate->input, i, child("/steps", i) + "/compensate/input",
                             true, detail::RefContext::compensation, plan.steps[i].compensate_substitutions,
                             indirect);
        }
        if (!steps[i].for_each.empty()) compile_for_each(i, indirect);
    }
    return indirect;
}

// Step i's "when": parsed once here, evaluated by the executor; what it reads
// must be upstream, as for inputs.
void Reader::compile_condition(std::uint32_t i, std::vector<Indirect>& indirect) {
    const std::string path = child("/steps", i) + "/when";
    auto when = std::make_shared<detail::Expression>(
        detail::Expression::parse(steps[i].when, path, plan.index));
    for (const detail::Reference& ref : when->references()) note_indirect(ref, i, path, indirect);
    plan.steps[i].when = std::move(when);
}

// Step i's "for_each": exactly one reference to the input or an upstream output.
void Reader::compile_for_each(std::uint32_t i, std::vector<Indirect>& indirect) {
    const std::string path = child("/steps", i) + "/for_each";
    const std::string& text = steps[i].for_each;
    auto parts = detail::parse_template(text, path, plan.index, detail::RefContext::input);
    if (parts.size() != 1 || !parts[0].ref || parts[0].ref->field != detail::Reference::Field::output) {
        fail_definition(error_id::definition_bad_for_each, path,
                        fmt::format("{} must be one reference to an array, such as "
                                    "\"${{input.items}}\" or \"${{steps.ID.output.items}}\"",
                                    quote(text)));
    }
    note_indirect(*parts[0].ref, i, path, indirect);
    plan.steps[i].for_each = std::move(parts[0].ref);
}

void Reader::note_indirect(const detail::Reference& ref, std::uint32_t i, const std::string& path,
                           std::vector<Indirect>& indirect) const {
    if (ref.root != detail::Reference::Root::step) return;
    const auto& deps = plan.steps[i].deps;
    if (std::find(deps.begin(), deps.end(), ref.step) != deps.end()) return;
    indirect.push_back({i, ref.step, path, ref.text});
}

// One template of step i at `path`; `self_ok`: it may reference step i itself.
void Reader::compile_template(const Json& tmpl, std::uint32_t i, const std::string& path,
                              bool self_ok, detail::RefContext context,
                              std::vector<detail::Substitution>& substitutions,
                              std::vector<Indirect>& indirect) {
    // Iterative, children pushed in reverse so strings are met in document order.
    std::vector<std::pair<const Json*, Json::json_pointer>> stack;
    stack.emplace_back(&tmpl, Json::json_pointer());
    while (!stack.empty()) {
        auto [value, where] = std::move(stack.back());
        stack.pop_back();
        if (value->is_object()) {
            for (auto it = value->rbegin(); it != value->rend(); ++it) {
                stack.emplace_back(&it.value(), where / it.key());
            }
        } else if (value->is_array()) {
            for (std::size_t k = value->size(); k-- > 0;) {
                stack.emplace_back(&(*value)[k], where / k);
            }
        } else if (value->is_string()) {
            const auto& text = value->get_ref<const std::string&>();
            if (text.find("${") == std::string::npos) continue;
            const std::string string_path = path + where.to_string();
            auto parts = detail::parse_template(text, string_path, plan.index, context);
            for (const detail::TemplatePart& part : parts) {
                if (!part.ref) continue;
                if (self_ok && part.ref->root == detail::Reference::Root::step && part.ref->step == i) continue;
                note_indirect(*part.ref, i, string_path, indirect);
            }
            substitutions.push_back({std::move(where), std::move(parts)});
        }
    }
}

// Each referenced step must finish before the referring one starts: it must be
// upstream. One forward walk per referenced step, over dependents, cut off at the
// latest referrer's rank, keeps this linear for long chains whatever they reference.
void Reader::check_upstream(const std::vector<Indirect>& indirect,
                            const std::vector<std::uint32_t>& rank) const {
    std::vector<std::size_t> order(indirect.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return std::tie(indirect[a].target, a) < std::tie(indirect[b].target, b);
    });
    std::vector<std::uint32_t> reached_from(steps.size(), 0);  // target + 1 once reached
    std::vector<std::uint32_t> queue;
    std::size_t first_bad = indirect.size();  // in document order
    for (std::size_t group = 0; group < order.size();) {
        const std::uint32_t target = indirect[order[group]].target;
        std::size_t group_end = group;
        std::uint32_t horizon = 0;
        for (; group_end < order.size() && indirect[order[group_end]].target == target; ++group_end) {
            horizon = std::max(horizon, rank[indirect[order[group_end]].step]);
        }
        queue.assign(1, target);
        for (std::size_t head = 0; head < queue.size(); ++head) {
            for (std::uint32_t u : plan.steps[queue[head]].dependents) {
                if (reached_from[u] != target + 1 && rank[u] <= horizon) {
                    reached_from[u] = target + 1;
                    queue.push_back(u);
                }
            }
        }
        for (; group < group_end; ++group) {
            if (reached_from[indirect[order[group]].step] != target + 1) {
                first_bad = std::min(first_bad, order[group]);
            }
        }
    }
    if (first_bad == indirect.size()) return;
    const Indirect& bad = indirect[first_bad];
    fail_definition(error_id::definition_bad_reference, bad.path,
                    fmt::format("{} names step {}, which is not upstream of step {} (list it in "
                                "depends_on, directly or through another step)",
                                bad.text, quote(steps[bad.target].id), quote(steps[bad.step].id)));
}

Workflow validate(const Json& doc, const DefinitionLimits& limits) {
    Reader reader{doc, limits, {}, 0, {}, {}, {}, {}};
    reader.read_workflow();
    reader.link_dependencies();
    const std::vector<std::uint32_t> rank = reader.rank_steps();
    reader.check_upstream(reader.compile_inputs(), rank);
    const std::string canonical = detail::canonical_json(reader.name, reader.version, reader.steps,
                                                         reader.defaults, reader.deadline)
                                      .dump();
    // Stores keep the canonical form and executors load it again under the same
    // limits, so it must fit them too; it can be the longer text (every step
    // gains "depends_on", a retry policy all five keys).
    if (canonical.size() > limits.max_bytes) {
        fail_definition(error_id::definition_too_large, "",
                        fmt::format("definition is {} bytes in canonical form; the limit is {}",
                                    canonical.size(), limits.max_bytes));
    }
    std::string hash = detail::content_hash(canonical);
    return detail::Plan::make_workflow(std::move(reader.name), reader.version,
                                       std::move(reader.steps), std::move(reader.defaults),
                                       reader.deadline, std::move(hash),
                                       std::make_shared<const detail::Plan>(std::move(reader.plan)));
}

}  // namespace

Workflow Workflow::from_json(std::string_view text, const DefinitionLimits& limits) {
    check_size(text.size(), limits.max_bytes);
    check_depth(text, limits.max_depth);
    Json doc;
    try {
        doc = Json::parse(text.begin(), text.end());
    } catch (const Json::parse_error& e) {
        fail_definition(error_id::definition_json, "", fmt::format("invalid JSON at byte {}: {}", e.byte, json_error_text(e)));
    } catch (const Json::exception& e) {  // e.g. a number too large for a double
        fail_definition(error_id::definition_json, "", fmt::format("invalid JSON: {}", json_error_text(e)));
    }
    return validate(doc, limits);
}

Workflow Workflow::from_file(const std::filesystem::path& path, const DefinitionLimits& limits) {
    const std::string name = path.string();
    auto fail_file = [&](const char* reason, std::string_view text) { fail_definition(reason, name, text); };
    std::ifstream file(path, std::ios::binary);
    if (!file) fail_file(error_id::definition_file, fmt::format("cannot open: {}", std::strerror(errno)));
    // Read in chunks, and no further than one byte past the limit: enough to
    // know the file is too large, whatever the limit and the file's size.
    std::string text;
    char chunk[1 << 16];
    while (file && text.size() <= limits.max_bytes) {
        file.read(chunk, sizeof chunk);
        text.append(chunk, static_cast<std::size_t>(file.gcount()));
    }
    if (file.bad()) fail_file(error_id::definition_file, fmt::format("cannot read: {}", std::strerror(errno)));
    if (text.size() > limits.max_bytes)
        fail_file(error_id::definition_too_large, fmt::format("the file is larger than the limit of {} bytes", limits.max_bytes));
    try {
        return from_json(std::string_view(text), limits);
    } catch (const DefinitionError& e) {
        // The same id, the file named first: "[id] <file>: <JSON path>: <text>".
        std::string_view what = e.what();
        fail_definition(e.id().c_str(), name, what.substr(what.find("] ") + 2));
    }
}

Workflow Workflow::from_json(const Json& definition, const DefinitionLimits& limits) {
    // Depth first here (unlike the text overload): measuring the size means dumping,
    // and dump() recurses.
    check_depth(definition, limits.max_depth);
    try {
        check_size(definition.dump().size(), limits.max_bytes);
    } catch (const Json::exception& e) {  // strings that are not UTF-8 cannot be JSON text
        fail_definition(error_id::definition_json, "", fmt::format("not valid as JSON text: {}", json_error_text(e)));
    }
    return validate(definition, limits);
}

}  // namespace loom
