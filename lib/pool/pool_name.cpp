// Pool names and their shm objects (pool_name.hpp).
#include "pool/pool_name.hpp"

#include "os/error.hpp"
#include "pool/pool_layout.hpp"

namespace dragonmem::detail {

dragonError_t validate_pool_name(std::string_view name) {
    if (name.empty() || name.size() > k_max_name_len)
        return failf(DRAGON_INVALID_ARGUMENT, "pool name '{}' has {} characters; it must have 1 to {}", name,
                     name.size(), k_max_name_len);
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-' || c == '.';
        if (!ok)
            return failf(DRAGON_INVALID_ARGUMENT,
                         "pool name '{}' contains '{}'; only letters, digits, '_', '-' and '.' are allowed", name,
                         c == '\0' ? std::string("\\0") : std::string(1, c));
    }
    if (name.front() == '.' || name.front() == '-')
        return failf(DRAGON_INVALID_ARGUMENT, "pool name '{}' must not start with '{}'", name, name.front());
    return DRAGON_SUCCESS;
}

std::string shm_name_for(std::string_view base_name) {
    return std::string(k_shm_prefix) + std::string(base_name);
}

std::string_view base_name_of(std::string_view shm_name) noexcept {
    if (!shm_name.starts_with(k_shm_prefix)) return {};
    return shm_name.substr(k_shm_prefix.size());
}

}  // namespace dragonmem::detail
