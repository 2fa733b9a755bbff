// One start per idempotency key at a time in this process, so that two starts
// with one key never race into one batch, where the store's refusal of the
// second would fail both. Internal.
#pragma once

#include <set>
#include <string>

#include "runtime/mutex.hpp"

namespace loom::detail {

/// Thread safety: any thread.
class KeyGate {
public:
    /// Holds `key` for its scope; waits while another thread holds it.
    class Hold {
    public:
        Hold(KeyGate& gate, std::string key) : gate_(gate), key_(std::move(key)) {
            MutexLock lock(gate_.mutex_);
            gate_.released_.wait(gate_.mutex_, [this] {
                gate_.mutex_.assert_held();
                return gate_.held_.count(key_) == 0;
            });
            gate_.held_.insert(key_);
        }
        ~Hold() {
            MutexLock lock(gate_.mutex_);
            gate_.held_.erase(key_);
            gate_.released_.notify_all();
        }
        Hold(const Hold&) = delete;
        Hold& operator=(const Hold&) = delete;

    private:
        KeyGate& gate_;
        const std::string key_;
    };

private:
    Mutex mutex_;
    CondVar released_;
    std::set<std::string> held_ LOOM_GUARDED_BY(mutex_);
};

}  // namespace loom::detail
