// The setup the executor tests share: handlers, a store, an executor on it.
//
//     struct Shop : loom::test::Steps {   // a file's handlers and their state
//         Shop() { handlers.add("charge", ...); }
//     };
//     loom::test::Fixture<Shop> f;                     // MemoryStore
//     auto& executor = f.open({order()});              // 2 threads, "order" added
//
// Fixture<S> is an S with a store and an executor, which it ends before S's
// members, so no handler outlives the state it uses. With Storage::sqlite the
// store is a SQLite file in a fresh directory, and reopen() is a process
// restart: a new store and executor on the same file.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <loom/loom.hpp>

#include "support/sync.hpp"
#include "support/temp_dir.hpp"

namespace loom::test {

/// What most tests' handlers keep: derive and register them in a constructor.
struct Steps {
    HandlerRegistry handlers;
    RunCounter counter;
    Gate gate;
};

/// `attempts` attempts, 1 ms apart: enough to see whether a failure is retried.
inline RetryPolicy quick_retry(int attempts) {
    RetryPolicy policy;
    policy.max_attempts = attempts;
    policy.initial_backoff = std::chrono::milliseconds(1);
    return policy;
}

enum class Storage { memory, sqlite };

template <class S = Steps>
class Fixture : public S {
public:
    explicit Fixture(Storage storage = Storage::memory) {
        if (storage == Storage::sqlite) dir_.emplace();
    }
    ~Fixture() { close(); }
    Fixture(const Fixture&) = delete;
    Fixture& operator=(const Fixture&) = delete;

    /// A new executor (ending the one before) on store(), with `workflows` added.
    Executor& open(const std::vector<Workflow>& workflows = {}, ExecutorOptions options = {2}) {
        executor_.reset();
        executor_ = std::make_unique<Executor>(store(), this->handlers, options);
        for (const auto& workflow : workflows) executor_->add_workflow(workflow);
        return *executor_;
    }
    /// The executor open() made.
    Executor& executor() { return *executor_; }
    /// The store, opened on first use (again after close()).
    Store& store() {
        if (!store_) {
            if (dir_)
                store_ = std::make_unique<SqliteStore>(db());
            else
                store_ = std::make_unique<MemoryStore>();
        }
        return *store_;
    }
    /// Ends the executor, then the store, as a process exit does.
    void close() {
        executor_.reset();
        store_.reset();
    }
    /// A restart: close(), then open() on the same file. It adds no workflow:
    /// recover() takes the definitions of the runs from the store.
    Executor& reopen(ExecutorOptions options = {2}) {
        close();
        return open({}, options);
    }
    /// The SQLite file (Storage::sqlite only).
    std::string db() const { return dir_.value().file("runs.db"); }

private:
    std::optional<TempDir> dir_;
    std::unique_ptr<Store> store_;
    std::unique_ptr<Executor> executor_;
};

}  // namespace loom::test
