// Internals shared by the model's sources (workflow.cpp, validate.cpp, reference.cpp):
// how a definition error is worded, and the canonical form that both
// Workflow::to_json and the content hash are computed from.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <loom/json.hpp>
#include <loom/workflow.hpp>

namespace loom::detail {

/// Throws DefinitionError "[<id>] <path>: <text>" (`id` one of the
/// error_id::definition_* constants); an empty path (the whole document) is written "/".
[[noreturn]] void fail_definition(const char* id, std::string_view path,
                                  std::string_view text);

/// `s` as a JSON string literal, for quoting user text in messages; never throws
/// on invalid UTF-8.
std::string quote(std::string_view s);

/// 'c' for printable ASCII, else "byte 0x0A": what an error shows of a bad character.
std::string describe_char(unsigned char c);

/// {"name", "version", "steps": [{"id", "handler", "depends_on", ...}], ...}: every
/// optional key only where it is set (run_if_skipped only when true, when only when
/// non-empty), so a definition that uses none of them keeps the text and hash it
/// had before they existed. Retry policies are written with all five keys, so two
/// spellings of one policy hash equally.
Json canonical_json(const std::string& name, std::int64_t version, const std::vector<Step>& steps,
                    const WorkflowDefaults& defaults,
                    const std::optional<std::chrono::milliseconds>& deadline);

/// A retry policy as its JSON object, all five keys; used by the canonical form
/// and the builder.
Json retry_json(const RetryPolicy& retry);

/// The OnError of a JSON name ("fail", "continue", "compensate"), or none.
std::optional<OnError> parse_on_error(std::string_view name) noexcept;

/// 64-bit FNV-1a of `text` as 16 lowercase hex digits.
std::string content_hash(std::string_view text);

}  // namespace loom::detail
