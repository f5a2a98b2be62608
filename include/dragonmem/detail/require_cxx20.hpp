// Included first by every C++ header of dragonmem: their API uses std::span and other
// C++20 library types, and without this a C++17 compiler fails deep inside them. The C
// headers (<dragon/managed_memory.h>, <dragonmem/c_extensions.h>, <dragonmem/lock_wait.h>,
// <dragonmem/version.h>) need only C11 or C++11.
#pragma once

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "dragonmem's C++ API needs C++20 (compile with -std=c++20); from C or older C++, use the C API: <dragon/managed_memory.h>"
#endif
