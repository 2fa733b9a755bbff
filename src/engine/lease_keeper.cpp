#include "engine/lease_keeper.hpp"

#include <algorithm>

#include "runtime/identity.hpp"

namespace loom::detail {
namespace {

std::int64_t steady_ns(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

LeaseKeeper::LeaseKeeper(std::string identity, std::chrono::milliseconds lease)
    : made_here_(identity.empty()),
      identity_(made_here_ ? new_identity() : std::move(identity)),
      lease_(lease),
      holding_until_ns_(steady_ns(std::chrono::steady_clock::now() + lease - lease / 5)) {
    if (!made_here_) identity_began(identity_);
}

LeaseKeeper::~LeaseKeeper() {
    stop();
    identity_ended(identity_);
}

TimePoint LeaseKeeper::lease_end() const {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now() + lease_);
}

bool LeaseKeeper::holding() const {
    return steady_ns(std::chrono::steady_clock::now()) < holding_until_ns_.load(std::memory_order_relaxed);
}

void LeaseKeeper::renewed(std::chrono::steady_clock::time_point asked) {
    holding_until_ns_.store(steady_ns(asked + lease_ - lease_ / 5), std::memory_order_relaxed);
}

void LeaseKeeper::start(std::function<void()> renew, std::function<void()> adopt) {
    thread_ = std::thread([this, renew = std::move(renew), adopt = std::move(adopt)] { loop(renew, adopt); });
}

void LeaseKeeper::stop() {
    {
        MutexLock lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void LeaseKeeper::loop(const std::function<void()>& renew, const std::function<void()>& adopt) {
    using Clock = std::chrono::steady_clock;
    const auto renew_every = std::max(lease_ / 3, std::chrono::milliseconds(1));
    const auto adopt_every = std::max(lease_ / 2, std::chrono::milliseconds(1));
    auto next_renew = Clock::now() + renew_every;
    auto next_adopt = Clock::now() + adopt_every;
    for (;;) {
        {
            MutexLock lock(mutex_);
            const auto until = adopt ? std::min(next_renew, next_adopt) : next_renew;
            wake_.wait_until(mutex_, until, [&] {
                mutex_.assert_held();
                return stopping_;
            });
            if (stopping_) return;
        }
        const auto now = Clock::now();
        if (now >= next_renew) {
            renew();
            next_renew = Clock::now() + renew_every;
        }
        if (adopt && now >= next_adopt) {
            adopt();
            next_adopt = Clock::now() + adopt_every;
        }
    }
}

}  // namespace loom::detail
