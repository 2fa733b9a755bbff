#include "runtime/thread_pool.hpp"

namespace loom::detail {
namespace {
thread_local bool tls_on_worker = false;
}

bool on_pool_worker() noexcept { return tls_on_worker; }
void mark_pool_worker() noexcept { tls_on_worker = true; }

}  // namespace loom::detail
