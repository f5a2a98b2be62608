// dragonmem's C++ error type: the same code and message the C API reports.
#pragma once

#include <dragonmem/detail/require_cxx20.hpp>

#include <dragon/return_codes.h>

#include <stdexcept>
#include <string>

namespace dragonmem {

class Error : public std::runtime_error {
public:
    Error(dragonError_t code, const std::string& message) : std::runtime_error(message), code_(code) {}
    dragonError_t code() const noexcept { return code_; }
    // "DRAGON_INVALID_ARGUMENT" etc.
    const char* code_name() const noexcept { return dragon_getrcstr(code_); }

private:
    dragonError_t code_;
};

}  // namespace dragonmem
