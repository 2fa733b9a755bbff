// Input templates: parse_template turns one string into literal text and references
// once, at validation; resolve_input (and resolve_compensation_input) fill them in
// for each step of each run, so they are on the hot path and never re-parse anything.
//
// Syntax: ${input}, ${input.a.b}, ${steps.ID.output}, ${steps.ID.output.k.0},
// ${steps.ID.status}, ${steps.ID.error} (not in a compensation's input), and in a
// for_each step's input ${item}, ${item.a.b}, ${index}; segments are [A-Za-z0-9_-]+,
// a numeric segment indexes an array (and is a key on an object); $${ is a literal ${.
#include <loom/error.hpp>

#include <charconv>

#include <fmt/format.h>

#include "model/model.hpp"
#include "model/plan.hpp"

namespace loom::detail {
namespace {

bool is_segment_char(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

[[noreturn]] void fail_missing(const Reference& ref, const std::string& step_id, std::size_t depth,
                               const Json& at) {
    // Where the lookup stood, written as the reference would be: input.a, steps.x.output.k
    std::string location = ref.root == Reference::Root::input  ? "input"
                           : ref.root == Reference::Root::item ? "item"
                                                               : "steps." + step_id + ".output";
    for (std::size_t k = 0; k < depth; ++k) location += "." + ref.path[k];
    const std::string& segment = ref.path[depth];
    std::string why;
    if (at.is_object()) {
        why = fmt::format("no key {} in {}", quote(segment), location);
    } else if (at.is_array() && segment.find_first_not_of("0123456789") == std::string::npos) {
        why = fmt::format("no index {} in {}, an array of {}", segment, location, at.size());
    } else {
        const char* article = at.is_null() ? "" : at.is_array() ? "an " : "a ";
        why = fmt::format("cannot look up {} in {}, which is {}{}", quote(segment), location,
                          article, at.type_name());
    }
    throw InputError(error_id::input_missing, fmt::format("{}: {}", ref.text, why));
}

// What a template is filled from.
struct Sources {
    const Json& run_input;
    const StepOf& step_of;
    const Element* element;   // a for_each attempt's, or null
};

// The referenced value; a step's status or error is made into `made`.
const Json& lookup(const Workflow& workflow, const Reference& ref, const Sources& from, Json& made) {
    if (ref.root == Reference::Root::index) return from.element->index;
    if (ref.root == Reference::Root::step && ref.field != Reference::Field::output) {
        const StepView step = from.step_of(ref.step);
        if (ref.field == Reference::Field::status) return made = std::string(to_string(step.status));
        return made = step.error;
    }
    const Json& root = ref.root == Reference::Root::input  ? from.run_input
                       : ref.root == Reference::Root::item ? from.element->item
                                                           : from.step_of(ref.step).output;
    if (const Json* found = find_path(root, ref.path)) return *found;
    // Walk again to say where it stopped: only on the error path.
    const Json* at = &root;
    std::size_t k = 0;
    std::vector<std::string> prefix;
    for (; k < ref.path.size(); ++k) {
        prefix.push_back(ref.path[k]);
        const Json* next = find_path(root, prefix);
        if (!next) break;
        at = next;
    }
    fail_missing(ref, ref.root == Reference::Root::step ? workflow.steps()[ref.step].id : "", k, *at);
}

Json render(const Workflow& workflow, const std::vector<TemplatePart>& parts, const Sources& from) {
    // A string that is exactly one reference takes the referenced value, whatever its type.
    Json made;
    if (parts.size() == 1 && parts[0].ref) return lookup(workflow, *parts[0].ref, from, made);
    std::string text;
    for (const TemplatePart& part : parts) {
        if (!part.ref) {
            text += part.literal;
            continue;
        }
        const Json& value = lookup(workflow, *part.ref, from, made);
        text += value.is_string() ? value.get_ref<const std::string&>() : value.dump();
    }
    return text;
}

// A copy of `tmpl` with each substitution's string replaced by its value.
Json fill(const Workflow& workflow, const Json& tmpl,
          const std::vector<Substitution>& substitutions, const Sources& from) {
    Json filled = tmpl;
    for (const Substitution& sub : substitutions) filled[sub.where] = render(workflow, sub.parts, from);
    return filled;
}

}  // namespace

Reference parse_reference(std::string text, const std::string& where,
                          const std::unordered_map<std::string, std::uint32_t>& index,
                          RefContext context) {
    // A compensation runs while the saga changes other steps' statuses.
    const bool fields = context != RefContext::compensation;
    auto fail = [&](const std::string& why) {
        fail_definition(error_id::definition_bad_reference, where, fmt::format("reference {} {}", quote(text), why));
    };
    std::vector<std::string> segments;
    std::string_view body(text);
    body = body.substr(2, body.size() - 3);
    for (std::size_t start = 0;;) {
        std::size_t dot = body.find('.', start);
        std::string_view segment = body.substr(start, dot == std::string_view::npos ? dot : dot - start);
        if (segment.empty()) fail("has an empty segment");
        for (unsigned char c : segment) {
            if (!is_segment_char(c)) {
                fail(fmt::format("has {} in segment {}; segments hold only letters, digits, '_' "
                                 "and '-'",
                                 describe_char(c), quote(segment)));
            }
        }
        segments.emplace_back(segment);
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }

    Reference ref;
    std::size_t path_start = 1;
    if (segments[0] == "steps") {
        if (segments.size() < 2) fail("must name a step: ${steps.ID.output}");
        const bool is_output = segments.size() >= 3 && segments[2] == "output";
        const bool is_field = fields && segments.size() == 3 &&
                              (segments[2] == "status" || segments[2] == "error");
        if (!is_output && !is_field) {
            fail(fields ? "must continue with \".output\", \".status\" or \".error\" after the step "
                          "id: ${steps.ID.output}"
                        : "must continue with \".output\" after the step id: ${steps.ID.output} (a "
                          "compensation's input cannot read a step's status or error: they change "
                          "while the run compensates)");
        }
        auto found = index.find(segments[1]);
        if (found == index.end()) fail(fmt::format("names unknown step {}", quote(segments[1])));
        ref.root = Reference::Root::step;
        ref.step = found->second;
        if (!is_output) ref.field = segments[2] == "status" ? Reference::Field::status : Reference::Field::error;
        path_start = 3;
    } else if (segments[0] == "item" || segments[0] == "index") {
        if (context != RefContext::element) {
            fail(context == RefContext::condition
                     ? "names the element of a for_each, which a condition cannot see"
                     : "names the element of a for_each: only the \"input\" of a step with "
                       "\"for_each\" may use it");
        }
        if (segments[0] == "index" && segments.size() > 1) fail("has a path; ${index} is a number");
        ref.root = segments[0] == "item" ? Reference::Root::item : Reference::Root::index;
    } else if (segments[0] != "input") {
        fail(context == RefContext::element
                 ? "must start with \"input\", \"steps\", \"item\" or \"index\""
                 : "must start with \"input\" or \"steps\"");
    }
    ref.path.assign(std::make_move_iterator(segments.begin() + static_cast<std::ptrdiff_t>(path_start)),
                    std::make_move_iterator(segments.end()));
    ref.text = std::move(text);
    return ref;
}

const Json* find_path(const Json& root, const std::vector<std::string>& path) {
    const Json* at = &root;
    for (const std::string& segment : path) {
        const Json* next = nullptr;
        if (at->is_object()) {
            auto found = at->find(segment);
            if (found != at->end()) next = &*found;
        } else if (at->is_array()) {
            std::size_t i = 0;
            const char* end = segment.data() + segment.size();
            auto [ptr, ec] = std::from_chars(segment.data(), end, i);
            if (ec == std::errc() && ptr == end && i < at->size()) next = &(*at)[i];
        }
        if (!next) return nullptr;
        at = next;
    }
    return at;
}

std::vector<TemplatePart> parse_template(const std::string& text, const std::string& where,
                                         const std::unordered_map<std::string, std::uint32_t>& index,
                                         RefContext context) {
    std::vector<TemplatePart> parts;
    std::string literal;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t dollar = text.find('$', i);
        if (dollar == std::string::npos) {
            literal.append(text, i, std::string::npos);
            break;
        }
        literal.append(text, i, dollar - i);
        if (text.compare(dollar, 3, "$${") == 0) {
            literal += "${";
            i = dollar + 3;
        } else if (text.compare(dollar, 2, "${") == 0) {
            std::size_t close = text.find('}', dollar + 2);
            if (close == std::string::npos) {
                fail_definition(error_id::definition_bad_reference, where,
                                fmt::format("reference {} is not terminated by '}}'",
                                            quote(std::string_view(text).substr(dollar))));
            }
            Reference ref = parse_reference(text.substr(dollar, close + 1 - dollar), where, index, context);
            if (!literal.empty()) parts.push_back({std::move(literal), std::nullopt});
            literal.clear();
            parts.push_back({{}, std::move(ref)});
            i = close + 1;
        } else {
            literal += '$';
            i = dollar + 1;
        }
    }
    if (!literal.empty() || parts.empty()) parts.push_back({std::move(literal), std::nullopt});
    return parts;
}

Json resolve_input(const Workflow& workflow, std::uint32_t step, const Json& run_input,
                   const StepOf& step_of, const Element* element) {
    const Step& definition = workflow.steps()[step];
    const StepPlan& plan = detail::Plan::of(workflow).steps[step];
    if (!definition.input) {
        Json outputs = Json::object();
        for (std::uint32_t d : plan.deps) outputs[workflow.steps()[d].id] = step_of(d).output;
        return outputs;
    }
    return fill(workflow, *definition.input, plan.substitutions, {run_input, step_of, element});
}

const Json& resolve_for_each(const Workflow& workflow, std::uint32_t step, const Json& run_input,
                             const StepOf& step_of) {
    const Reference& ref = *detail::Plan::of(workflow).steps[step].for_each;
    Json unused;   // validation lets for_each name an output only, never a made value
    const Json& array = lookup(workflow, ref, {run_input, step_of, nullptr}, unused);
    if (!array.is_array()) {
        throw InvalidArgument(error_id::for_each_not_array,
                              fmt::format("step {}: for_each {} is {}{}, not an array",
                                          quote(workflow.steps()[step].id), ref.text,
                                          array.is_null() ? "" : array.is_object() ? "an " : "a ",
                                          array.type_name()));
    }
    return array;
}

Json resolve_compensation_input(const Workflow& workflow, std::uint32_t step, const Json& run_input,
                                const StepOf& step_of) {
    const std::optional<Json>& input = workflow.steps()[step].compensate->input;
    if (!input) return step_of(step).output;
    return fill(workflow, *input, detail::Plan::of(workflow).steps[step].compensate_substitutions,
                {run_input, step_of, nullptr});
}

}  // namespace loom::detail
