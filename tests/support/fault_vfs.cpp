// FaultVfs: a forwarding VFS after SQLite's own shims (ext/misc/vfstrace.c,
// src/test_vfs.c). Each file is our sqlite3_file header followed by the real
// file of the "unix" VFS; every method forwards to it, the counted ones first
// ask FaultVfs whether to fail instead.
#include "support/fault_vfs.hpp"

#include <stdexcept>

#include <sqlite3.h>

namespace loom::test {
namespace {

struct FaultFile {
    sqlite3_file base;     // first: SQLite sees a FaultFile as a sqlite3_file
    FaultVfs* owner;
    sqlite3_file* real;    // points just past this struct
};

FaultFile& self(sqlite3_file* f) { return *reinterpret_cast<FaultFile*>(f); }
sqlite3_file* real(sqlite3_file* f) { return self(f).real; }
const sqlite3_io_methods& real_methods(sqlite3_file* f) { return *real(f)->pMethods; }

int file_close(sqlite3_file* f) {
    int rc = real_methods(f).xClose(real(f));
    f->pMethods = nullptr;
    return rc;
}

int file_read(sqlite3_file* f, void* buffer, int amount, sqlite3_int64 offset) {
    if (int code = self(f).owner->on_operation(Io::read)) return code;
    return real_methods(f).xRead(real(f), buffer, amount, offset);
}

int file_write(sqlite3_file* f, const void* buffer, int amount, sqlite3_int64 offset) {
    if (int code = self(f).owner->on_operation(Io::write)) return code;
    return real_methods(f).xWrite(real(f), buffer, amount, offset);
}

int file_truncate(sqlite3_file* f, sqlite3_int64 size) {
    if (int code = self(f).owner->on_operation(Io::truncate)) return code;
    return real_methods(f).xTruncate(real(f), size);
}

int file_sync(sqlite3_file* f, int flags) {
    if (int code = self(f).owner->on_operation(Io::sync)) return code;
    return real_methods(f).xSync(real(f), flags);
}

int file_size(sqlite3_file* f, sqlite3_int64* size) {
    if (int code = self(f).owner->on_operation(Io::file_size)) return code;
    return real_methods(f).xFileSize(real(f), size);
}

int file_lock(sqlite3_file* f, int level) { return real_methods(f).xLock(real(f), level); }
int file_unlock(sqlite3_file* f, int level) { return real_methods(f).xUnlock(real(f), level); }
int file_check_reserved(sqlite3_file* f, int* out) {
    return real_methods(f).xCheckReservedLock(real(f), out);
}
int file_control(sqlite3_file* f, int op, void* arg) {
    return real_methods(f).xFileControl(real(f), op, arg);
}
int file_sector_size(sqlite3_file* f) { return real_methods(f).xSectorSize(real(f)); }
int file_device(sqlite3_file* f) { return real_methods(f).xDeviceCharacteristics(real(f)); }

// WAL's shared memory and memory-mapped reads: forwarded, not counted.
int file_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
    return real_methods(f).xShmMap(real(f), region, size, extend, out);
}
int file_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
    return real_methods(f).xShmLock(real(f), offset, n, flags);
}
void file_shm_barrier(sqlite3_file* f) { real_methods(f).xShmBarrier(real(f)); }
int file_shm_unmap(sqlite3_file* f, int remove) { return real_methods(f).xShmUnmap(real(f), remove); }
int file_fetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
    return real_methods(f).xFetch(real(f), offset, amount, out);
}
int file_unfetch(sqlite3_file* f, sqlite3_int64 offset, void* page) {
    return real_methods(f).xUnfetch(real(f), offset, page);
}

const sqlite3_io_methods kFileMethods = {
    3,                  // iVersion: "unix" files are version 3 (shm and mmap)
    file_close,       file_read,          file_write,      file_truncate,  file_sync,
    file_size,        file_lock,          file_unlock,     file_check_reserved,
    file_control,     file_sector_size,   file_device,     file_shm_map,   file_shm_lock,
    file_shm_barrier, file_shm_unmap,     file_fetch,      file_unfetch,
};

sqlite3_vfs* real_vfs(sqlite3_vfs* vfs) { return static_cast<sqlite3_vfs*>(vfs->pAppData); }

}  // namespace

// The registered sqlite3_vfs; pAppData is the real VFS, and each file finds
// its FaultVfs through the owner pointer set at open.
struct FaultVfs::Registration {
    sqlite3_vfs vfs{};
    FaultVfs* owner = nullptr;

    static Registration& of(sqlite3_vfs* v) { return *reinterpret_cast<Registration*>(v); }

    static int open(sqlite3_vfs* v, const char* name, sqlite3_file* f, int flags, int* out_flags) {
        sqlite3_vfs* inner = real_vfs(v);
        FaultFile& file = self(f);
        file.owner = of(v).owner;
        file.real = reinterpret_cast<sqlite3_file*>(&file + 1);
        file.real->pMethods = nullptr;
        int rc = inner->xOpen(inner, name, file.real, flags, out_flags);
        if (rc != SQLITE_OK) {
            if (file.real->pMethods) file.real->pMethods->xClose(file.real);
            f->pMethods = nullptr;
            return rc;
        }
        f->pMethods = &kFileMethods;
        return rc;
    }
    static int remove(sqlite3_vfs* v, const char* name, int sync_dir) {
        return real_vfs(v)->xDelete(real_vfs(v), name, sync_dir);
    }
    static int access(sqlite3_vfs* v, const char* name, int flags, int* out) {
        return real_vfs(v)->xAccess(real_vfs(v), name, flags, out);
    }
    static int full_pathname(sqlite3_vfs* v, const char* name, int size, char* out) {
        return real_vfs(v)->xFullPathname(real_vfs(v), name, size, out);
    }
    static void* dl_open(sqlite3_vfs* v, const char* name) {
        return real_vfs(v)->xDlOpen(real_vfs(v), name);
    }
    static void dl_error(sqlite3_vfs* v, int size, char* out) {
        real_vfs(v)->xDlError(real_vfs(v), size, out);
    }
    static void (*dl_sym(sqlite3_vfs* v, void* handle, const char* symbol))(void) {
        return real_vfs(v)->xDlSym(real_vfs(v), handle, symbol);
    }
    static void dl_close(sqlite3_vfs* v, void* handle) { real_vfs(v)->xDlClose(real_vfs(v), handle); }
    static int randomness(sqlite3_vfs* v, int size, char* out) {
        return real_vfs(v)->xRandomness(real_vfs(v), size, out);
    }
    static int sleep(sqlite3_vfs* v, int micros) { return real_vfs(v)->xSleep(real_vfs(v), micros); }
    static int current_time(sqlite3_vfs* v, double* out) {
        return real_vfs(v)->xCurrentTime(real_vfs(v), out);
    }
    static int last_error(sqlite3_vfs* v, int size, char* out) {
        return real_vfs(v)->xGetLastError(real_vfs(v), size, out);
    }
    static int current_time_int64(sqlite3_vfs* v, sqlite3_int64* out) {
        return real_vfs(v)->xCurrentTimeInt64(real_vfs(v), out);
    }
    static int set_system_call(sqlite3_vfs* v, const char* name, sqlite3_syscall_ptr call) {
        return real_vfs(v)->xSetSystemCall(real_vfs(v), name, call);
    }
    static sqlite3_syscall_ptr get_system_call(sqlite3_vfs* v, const char* name) {
        return real_vfs(v)->xGetSystemCall(real_vfs(v), name);
    }
    static const char* next_system_call(sqlite3_vfs* v, const char* name) {
        return real_vfs(v)->xNextSystemCall(real_vfs(v), name);
    }
};

const char* to_string(Io kind) noexcept {
    switch (kind) {
        case Io::read: return "read";
        case Io::write: return "write";
        case Io::sync: return "sync";
        case Io::truncate: return "truncate";
        case Io::file_size: return "file_size";
    }
    return "?";
}

FaultVfs::FaultVfs(std::string name) : name_(std::move(name)), registration_(new Registration) {
    sqlite3_vfs* inner = sqlite3_vfs_find("unix");
    if (!inner) throw std::runtime_error("FaultVfs: the \"unix\" VFS is not available");
    if (sqlite3_vfs_find(name_.c_str())) throw std::runtime_error("FaultVfs: " + name_ + " is taken");
    registration_->owner = this;
    sqlite3_vfs& v = registration_->vfs;
    v.iVersion = 3;
    v.szOsFile = static_cast<int>(sizeof(FaultFile)) + inner->szOsFile;
    v.mxPathname = inner->mxPathname;
    v.zName = name_.c_str();
    v.pAppData = inner;
    v.xOpen = Registration::open;
    v.xDelete = Registration::remove;
    v.xAccess = Registration::access;
    v.xFullPathname = Registration::full_pathname;
    v.xDlOpen = Registration::dl_open;
    v.xDlError = Registration::dl_error;
    v.xDlSym = Registration::dl_sym;
    v.xDlClose = Registration::dl_close;
    v.xRandomness = Registration::randomness;
    v.xSleep = Registration::sleep;
    v.xCurrentTime = Registration::current_time;
    v.xGetLastError = Registration::last_error;
    v.xCurrentTimeInt64 = Registration::current_time_int64;
    v.xSetSystemCall = Registration::set_system_call;
    v.xGetSystemCall = Registration::get_system_call;
    v.xNextSystemCall = Registration::next_system_call;
    if (sqlite3_vfs_register(&v, /*makeDflt=*/0) != SQLITE_OK)
        throw std::runtime_error("FaultVfs: cannot register " + name_);
}

FaultVfs::~FaultVfs() { sqlite3_vfs_unregister(&registration_->vfs); }

std::uint64_t FaultVfs::count(Io kind) const {
    std::lock_guard lock(mutex_);
    return counts_[static_cast<std::size_t>(kind)];
}

void FaultVfs::reset_counts() {
    std::lock_guard lock(mutex_);
    counts_ = {};
    armed_ = false;
}

void FaultVfs::fail(Io kind, std::uint64_t nth, int code, bool persist) {
    std::lock_guard lock(mutex_);
    armed_ = nth > 0;
    kind_ = kind;
    fail_at_ = counts_[static_cast<std::size_t>(kind)] + nth;
    persist_ = persist;
    code_ = code;
    injected_since_armed_ = 0;
}

void FaultVfs::clear() {
    std::lock_guard lock(mutex_);
    armed_ = false;
}

std::uint64_t FaultVfs::injected() const {
    std::lock_guard lock(mutex_);
    return injected_;
}

std::uint64_t FaultVfs::injected_since_armed() const {
    std::lock_guard lock(mutex_);
    return injected_since_armed_;
}

int FaultVfs::on_operation(Io kind) {
    std::lock_guard lock(mutex_);
    const std::uint64_t n = ++counts_[static_cast<std::size_t>(kind)];
    if (!armed_ || kind != kind_) return 0;
    if (n == fail_at_ || (persist_ && n > fail_at_)) {
        ++injected_;
        ++injected_since_armed_;
        return code_;
    }
    return 0;
}

}  // namespace loom::test
