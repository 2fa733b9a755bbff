// Executor identities and whether the process behind one is gone. Internal.
//
// A lease tells another host that an owner is alive; on the owner's own host
// the kernel can say it exactly. An identity made here names its host, pid
// namespace, pid and process start time, so an executor on the same host
// sees at once that a crashed process's runs are free, instead of waiting
// for their leases to run out.
#pragma once

#include <string>

namespace loom::detail {

/// A new identity, unique on this host for as long as the host runs:
/// "loom/<host>/<pid namespace>/<pid>/<process start>/<n>", n counting the
/// executors this process made. Registered as live until identity_ended().
std::string new_identity();

/// Marks an identity (made by new_identity() or chosen by the host) live in
/// this process, or no longer.
void identity_began(const std::string& identity);
void identity_ended(const std::string& identity);

/// True if `owner` is an identity new_identity() made on this host, in this
/// pid namespace, and its process has exited (or it is of this process and
/// no longer live). False whenever that cannot be known: another host,
/// another namespace, a name the host chose.
bool owner_gone(const std::string& owner);

}  // namespace loom::detail
