// What the definition fuzzer (tests/fuzz/fuzz_definition.cpp) checks for every
// input, shared with the ctest that replays its seed corpus and every crash it
// found (tests/reliability/fuzz_regressions_test.cpp), so both hold the same property.
#pragma once

#include <string>
#include <string_view>

#include <loom/error.hpp>
#include <loom/workflow.hpp>

namespace loom::fuzz {

struct DefinitionCheck {
    /// Empty if the input behaved; otherwise what went wrong.
    std::string problem;
    /// The DefinitionError id if the input was refused, empty if it loaded.
    std::string error_id;
};

namespace detail {

/// Loads `text` under `limits`; if it loads, its canonical JSON must load again
/// under the same limits (as text and as Json, the way the executor reloads a
/// stored definition) to an equal canonical dump and hash. Only DefinitionError
/// may come out of from_json.
inline DefinitionCheck load_and_reload(std::string_view text, const DefinitionLimits& limits,
                                       const char* pass) {
    DefinitionCheck out;
    auto fail = [&](const std::string& what) {
        out.problem = std::string(pass) + ": " + what;
        return out;
    };
    std::string step = "loading the input";
    try {
        const Workflow wf = Workflow::from_json(text, limits);
        step = "dumping the canonical JSON";
        const Json canonical = wf.to_json();
        const std::string dump = canonical.dump();
        step = "reloading the canonical text";
        const Workflow from_text = Workflow::from_json(dump, limits);
        step = "reloading the canonical Json";
        const Workflow from_json = Workflow::from_json(canonical, limits);
        step = "comparing";
        if (from_text.to_json().dump() != dump) return fail("canonical text reloads to another dump");
        if (from_json.to_json().dump() != dump) return fail("canonical Json reloads to another dump");
        if (from_text.hash() != wf.hash() || from_json.hash() != wf.hash())
            return fail("reloading changed the hash " + wf.hash());
        if (from_text.steps().size() != wf.steps().size()) return fail("reloading changed the steps");
    } catch (const DefinitionError& e) {
        const std::string prefix = "[" + e.id() + "] ";
        if (step != "loading the input")
            return fail(step + " threw " + std::string(e.what()));
        if (e.id().rfind("loom.definition.", 0) != 0 ||
            std::string_view(e.what()).substr(0, prefix.size()) != prefix)
            return fail("malformed error: " + std::string(e.what()));
        out.error_id = e.id();
    } catch (const std::exception& e) {
        return fail(step + " threw something other than DefinitionError: " + e.what());
    } catch (...) {
        return fail(step + " threw a non-standard exception");
    }
    return out;
}

}  // namespace detail

/// Checks one input under the default limits and, if it loads, again under the
/// tightest byte limit its text fits: whatever loads under some limits must
/// reload under the same limits after Workflow::to_json (an executor reloads a
/// stored definition with its own limits). There the only refusal allowed is
/// too_large, for a canonical form longer than the text.
inline DefinitionCheck check_definition(std::string_view text) {
    DefinitionCheck first = detail::load_and_reload(text, DefinitionLimits{}, "default limits");
    if (!first.problem.empty() || !first.error_id.empty()) return first;
    DefinitionLimits tight;
    tight.max_bytes = text.size();
    DefinitionCheck second = detail::load_and_reload(text, tight, "max_bytes = input size");
    if (second.problem.empty() && !second.error_id.empty() &&
        second.error_id != loom::error_id::definition_too_large)
        second.problem = "max_bytes = input size: refused with " + second.error_id;
    second.error_id.clear();   // it loaded under the default limits
    return second;
}

}  // namespace loom::fuzz
