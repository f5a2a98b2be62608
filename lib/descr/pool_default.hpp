// The default pool, as Dragon names it: the serialized descriptor (base64) in environment
// variable DRAGON_DEFAULT_PD (DRAGON_DEFAULT_PD_VAR, <dragon/global_types.h>), which
// Dragon's runtime sets in every process it starts.
#pragma once

#include <dragon/return_codes.h>
#include <dragonmem/detail/refs.hpp>

namespace dragonmem::detail {

dragonError_t pool_attach_default(PoolRef& out);

}  // namespace dragonmem::detail
