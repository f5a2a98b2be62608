// dragonmem_version() and dragonmem::version(): the version this library was built as,
// from the same generated header the users compile against (include/dragonmem/version.h).
#include <dragonmem/version.h>
#include <dragonmem/version.hpp>

extern "C" const char* dragonmem_version(void) { return DRAGONMEM_VERSION_STRING; }

namespace dragonmem {
const char* version() noexcept { return DRAGONMEM_VERSION_STRING; }
}  // namespace dragonmem
