// A Batch as the jsonb document that loom_commit() applies (postgres_schema.cpp,
// migration 3), and the typed error for a rule of the Store contract that the
// function reports broken.
#pragma once

#include <string>

#include <loom/store.hpp>

namespace loom::detail::pg {

/// The batch as loom_commit() reads it: one array per part, absent when empty,
/// each element numbered ("i") in batch order; `fenced` sorted and unique.
std::string batch_document(const Batch& batch);

/// For the message of an error with SQLSTATE LM001 ("loom_commit:{...}"), the
/// error of the Store contract it stands for, worded as every store words it
/// (store_support.hpp). Throws it.
[[noreturn]] void throw_commit_error(const Batch& batch, const std::string& message);

}  // namespace loom::detail::pg
