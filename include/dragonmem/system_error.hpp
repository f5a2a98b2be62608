// dragonmem::SystemError: a dragonmem::Error caused by a failed system call, carrying its
// errno, so that callers can tell "no such pool" (ENOENT) from "name in use" (EEXIST)
// where both are DRAGON_MEMORY_ERRNO.
#pragma once

#include <dragonmem/error.hpp>

#include <string>

namespace dragonmem {

class SystemError : public Error {
public:
    SystemError(dragonError_t code, const std::string& message, int errno_value)
        : Error(code, message), errno_(errno_value) {}
    int errno_value() const noexcept { return errno_; }

private:
    int errno_;
};

// The errno behind `e`, 0 when it was not a system call's failure.
inline int errno_of(const Error& e) noexcept {
    const auto* system = dynamic_cast<const SystemError*>(&e);
    return system == nullptr ? 0 : system->errno_value();
}

}  // namespace dragonmem
