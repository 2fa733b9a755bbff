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

void LeaseKeeper::start(std::function<void()> renew, std::function<void()> adopt, std::function<void()> poll,
                        std::chrono::milliseconds poll_every, std::function<void()> purge,
                        std::chrono::milliseconds purge_every) {
    const auto now = std::chrono::steady_clock::now();
    auto task = [now](std::function<void()> run, std::chrono::milliseconds every) {
        every = std::max(every, std::chrono::milliseconds(1));
        return Periodic{std::move(run), every, now + every};
    };
    // Renewals have a thread of their own: an adoption or a claim can wait
    // long on a busy store (SQLite's write lock, with several processes), and
    // a renewal queued behind it would let the leases run out.
    std::vector<Periodic> work;
    if (adopt) work.push_back(task(std::move(adopt), lease_ / 2));
    if (purge) work.push_back(task(std::move(purge), purge_every));
    work.push_back(task(std::move(poll), poll_every));   // last: poll_soon() makes work.back() due
    renewer_ = std::thread([this, tasks = std::vector<Periodic>{task(std::move(renew), lease_ / 3)}]() mutable {
        loop(std::move(tasks), /*pollable=*/false);
    });
    worker_ = std::thread([this, tasks = std::move(work)]() mutable { loop(std::move(tasks), /*pollable=*/true); });
}

void LeaseKeeper::poll_soon() {
    {
        MutexLock lock(mutex_);
        if (poll_soon_) return;
        poll_soon_ = true;
    }
    wake_.notify_all();
}

void LeaseKeeper::stop() {
    {
        MutexLock lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (renewer_.joinable()) renewer_.join();
    if (worker_.joinable()) worker_.join();
}

void LeaseKeeper::loop(std::vector<Periodic> tasks, bool pollable) {
    for (;;) {
        auto next = tasks.front().due;
        for (const auto& t : tasks) next = std::min(next, t.due);
        {
            MutexLock lock(mutex_);
            wake_.wait_until(mutex_, next, [&] {
                mutex_.assert_held();
                return stopping_ || (pollable && poll_soon_);
            });
            if (stopping_) return;
            if (pollable && poll_soon_) {
                tasks.back().due = std::chrono::steady_clock::now();
                poll_soon_ = false;
            }
        }
        for (auto& t : tasks) {
            if (std::chrono::steady_clock::now() < t.due) continue;
            t.run();
            t.due = std::chrono::steady_clock::now() + t.every;
        }
    }
}

}  // namespace loom::detail
