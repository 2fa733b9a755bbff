// A SQLite VFS for fault tests: it forwards to the default "unix" VFS, counts
// the reads, writes, syncs, truncates and size queries of every file opened
// through it, and can fail the Nth one of a kind with a chosen SQLite error,
// once or until cleared. Open a store through it with SqliteOptions::vfs.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace loom::test {

/// The file operations FaultVfs counts and can fail.
enum class Io { read, write, sync, truncate, file_size };
constexpr std::size_t kIoKinds = 5;
const char* to_string(Io kind) noexcept;

/// A registered VFS wrapping "unix" (not made the default).
///
///     loom::test::FaultVfs vfs("faulty");
///     loom::SqliteOptions options;
///     options.vfs = vfs.name();
///     loom::SqliteStore store("runs.db", options);
///     vfs.fail(loom::test::Io::sync, 3, SQLITE_IOERR_FSYNC);   // the 3rd sync from now
///
/// Counts cover every file opened through the VFS (database, WAL, journal).
///
/// Thread safety: every member may be called concurrently with SQLite's use of
/// the VFS from any thread. Destroy it only after every connection using it is
/// closed.
class FaultVfs {
public:
    /// Registers the VFS under `name`. Throws std::runtime_error if "unix" is
    /// missing or the name is taken.
    explicit FaultVfs(std::string name = "loom_fault");
    ~FaultVfs();
    FaultVfs(const FaultVfs&) = delete;
    FaultVfs& operator=(const FaultVfs&) = delete;

    const std::string& name() const noexcept { return name_; }

    /// Operations of `kind` seen since construction or reset_counts().
    std::uint64_t count(Io kind) const;
    /// Zeroes the counts and disarms any fault.
    void reset_counts();

    /// Fails the `nth` (1-based) operation of `kind` counted from this call
    /// with `code` (e.g. SQLITE_IOERR_WRITE, SQLITE_FULL); with `persist`, every
    /// later one of that kind too, until clear(). Replaces any earlier fault.
    void fail(Io kind, std::uint64_t nth, int code, bool persist = false);
    /// Disarms the fault; operations succeed again.
    void clear();
    /// Operations failed since construction.
    std::uint64_t injected() const;
    /// Operations failed since the last fail().
    std::uint64_t injected_since_armed() const;

    /// Called by the file methods: counts one operation and returns the error
    /// to report instead of doing it, or 0 to do it.
    int on_operation(Io kind);

private:
    std::string name_;
    struct Registration;
    std::unique_ptr<Registration> registration_;

    mutable std::mutex mutex_;
    // All below guarded by mutex_.
    std::array<std::uint64_t, kIoKinds> counts_{};
    bool armed_ = false;
    Io kind_ = Io::read;
    std::uint64_t fail_at_ = 0;    // counts_[kind_] value whose operation fails
    bool persist_ = false;
    int code_ = 0;
    std::uint64_t injected_ = 0;
    std::uint64_t injected_since_armed_ = 0;
};

}  // namespace loom::test
