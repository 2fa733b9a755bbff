// The exception hierarchy. Every message starts with a stable id in brackets,
// e.g. "[loom.definition.cycle] /steps/1/depends_on: ...", so hosts can match on
// the id while people read the rest.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include <loom/error_ids.hpp>

namespace loom {

/// Base of every exception Loom throws on purpose.
class Error : public std::runtime_error {
public:
    Error(std::string id, const std::string& message) : std::runtime_error(text(id, message)), id_(std::move(id)) {}

    /// "[id] message": how every error reads, thrown or recorded as a step's error.
    static std::string text(std::string_view id, std::string_view message) {
        std::string out;
        out.reserve(id.size() + message.size() + 3);
        out.append("[").append(id).append("] ").append(message);
        return out;
    }

    /// The stable id, e.g. "loom.definition.cycle" (without brackets).
    const std::string& id() const noexcept { return id_; }

private:
    std::string id_;
};

/// A workflow definition failed validation; the message names the JSON path.
class DefinitionError : public Error {
public:
    using Error::Error;
};

/// A store could not read or write; whatever the call was meant to change is unchanged.
class StoreError : public Error {
public:
    using Error::Error;
};

/// A named thing (workflow, run, handler) does not exist.
class NotFound : public Error {
public:
    using Error::Error;
};

/// The call contradicts what is already recorded (e.g. same workflow version, other content).
class Conflict : public Error {
public:
    using Error::Error;
};

/// A call's arguments are malformed (bad option values, bad JSON input to a run).
class InvalidArgument : public Error {
public:
    using Error::Error;
};

/// A step's input lacks what its handler asked for, "[loom.input.missing]" (a
/// key, a JSON pointer, or a "${...}" reference of the step's input template),
/// or holds it with another JSON type, "[loom.input.type]". Thrown by
/// StepContext::input() and its typed forms; the message names the run, the
/// step (and for_each element) and the key or pointer. The step fails without a
/// retry: every attempt reads the same input.
class InputError : public InvalidArgument {
public:
    using InvalidArgument::InvalidArgument;
};

/// Thrown by a handler: this attempt failed, and another may succeed. The step
/// is retried if its retry policy allows (so is any exception but FatalError,
/// InputError and nlohmann::json's type_error and out_of_range: see StepHandler).
class RetryableError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Thrown by a handler: the step has failed for good; no retry, whatever its
/// retry policy says.
class FatalError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace loom
