/* Compiled as C11 and, renamed .cpp, as C++11 (packaging_test.sh), with -Wall -Wextra
 * -pedantic -Werror: every C header is usable from either. */
#include <dragon/global_types.h>
#include <dragon/managed_memory.h>
#include <dragon/return_codes.h>
#include <dragon/shared_lock.h>
#include <dragonmem/c_extensions.h>
#include <dragonmem/lock_wait.h>
#include <dragonmem/remote.h>
#include <dragonmem/version.h>

int main(void) {
    return dragon_memory_pool_max_serialized_len() > 0 && DRAGONMEM_VERSION_NUMBER >= 0 && dragonmem_remote_available() >= 0 ? 0 : 1;
}
