// dragon_memory_pool_attach_default: attach_from_env of DRAGON_DEFAULT_PD, with messages
// that say it is the default pool that is missing (outside a Dragon runtime, nobody set it).
#include "descr/pool_default.hpp"

#include "descr/operations.hpp"
#include "os/error.hpp"

#include <dragon/global_types.h>

#include <cstdlib>
#include <string>

namespace dragonmem::detail {

dragonError_t pool_attach_default(PoolRef& out) {
    // As attach_from_env: the environment is the caller's, a racing setenv too.
    if (std::getenv(DRAGON_DEFAULT_PD_VAR) == nullptr)  // NOLINT(concurrency-mt-unsafe)
        return failf(DRAGON_INVALID_ARGUMENT,
                     "attach_default: environment variable {} is not set (it holds the default pool's serialized "
                     "descriptor, base64: set it to `dragonmem serialize POOL` output)",
                     DRAGON_DEFAULT_PD_VAR);
    if (dragonError_t rc = pool_attach_env(out, DRAGON_DEFAULT_PD_VAR)) {
        // A copy, not a reference: failf replaces the message it would be read from.
        const std::string why = last_error_message();  // NOLINT(performance-unnecessary-copy-initialization)
        return failf(rc, "attach_default: the default pool ({}): {}", DRAGON_DEFAULT_PD_VAR, why);
    }
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
