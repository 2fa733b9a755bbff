// A store whose commits fail on demand: for tests of what a failed commit
// does to the runs it carried (they are given up, and recover() resumes them).
#pragma once

#include <atomic>

#include <loom/error.hpp>
#include <loom/store.hpp>

namespace loom::test {

/// Fails every commit while `failing` is set, with StoreError "[loom.store.io] injected fault".
struct FlakyStore : StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<bool> failing{false};
    void commit(const Batch& b) override {
        if (failing) throw StoreError(error_id::store_io, "injected fault");
        StoreWrapper::commit(b);
    }
};

}  // namespace loom::test
