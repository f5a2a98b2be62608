// A spin-wait hint to the CPU (PAUSE on x86; nothing elsewhere): a spinning thread
// leaves the core's resources to its sibling.
#pragma once

namespace dragonmem::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

}  // namespace dragonmem::detail
