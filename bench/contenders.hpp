// Factories of the contenders; each lives in its own file with its own API.
#pragma once

#include "contender.hpp"

#include <cstddef>
#include <memory>

namespace bench {

// The public C API of <dragon/managed_memory.h>; allocation figures use one pool of
// `heap_pool_bytes` with default attributes.
std::unique_ptr<Contender> make_dragonmem_contender(std::size_t heap_pool_bytes);

#if DRAGONMEM_BENCH_HAVE_BOOST
// boost::interprocess::managed_shared_memory (rbtree_best_fit, process-shared mutex).
std::unique_ptr<Contender> make_boost_contender(std::size_t heap_pool_bytes);
#endif

// glibc malloc/free in this process: the floor of the allocation figures.
std::unique_ptr<Contender> make_malloc_contender();

// shm_open/ftruncate/mmap/munmap/shm_unlink: the floor of the pool figures.
std::unique_ptr<Contender> make_raw_shm_contender();

}  // namespace bench
