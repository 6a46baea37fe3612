// SPDX-License-Identifier: BSD-3-Clause
// Linked into pam_acctlock.so only when it carries its own copy of the C++
// runtime (pam_module/CMakeLists.txt; not in the sanitizer builds).
//
// That copy's exception support allocates an emergency pool (about 71 KiB on
// GCC 12) when the module is loaded. libpam loads the module at every
// pam_start and unloads it at pam_end, so a long-lived process (a screen
// locker, a display manager) would leak one pool per login. The runtime's
// own __gnu_cxx::__freeres, which valgrind calls at exit for the shared
// libstdc++, frees it; here it runs when the module is unloaded. It must
// never run against the shared libstdc++: that pool belongs to the process.
//
// It also sets the terminate handler. The runtime's default one writes the
// exception's demangled type to stderr, which a module must never do (the
// process's stderr may be a client's socket); its demangler is most of the
// runtime copy's code, too. Defining the handler here keeps that default out
// of the link. std::terminate cannot be reached from libpam (every pam_sm_*
// catches everything), so this only decides how an impossible state ends.

#include <stdlib.h>

namespace __gnu_cxx {
void __freeres();
}  // namespace __gnu_cxx

namespace __cxxabiv1 {
// libstdc++'s variable (eh_term_handler.cc), defined here instead.
extern void (*__terminate_handler)();
void (*__terminate_handler)() = abort;
}  // namespace __cxxabiv1

namespace {

__attribute__((destructor)) void free_runtime_emergency_pool() {
  __gnu_cxx::__freeres();
}

}  // namespace
