// dragonmem's C++ API: include this one header.
#pragma once

#include <dragonmem/detail/require_cxx20.hpp>

#include <dragonmem/error.hpp>
#include <dragonmem/lock_wait.hpp>
#include <dragonmem/memory.hpp>
#include <dragonmem/pool.hpp>
#include <dragonmem/types.hpp>
#include <dragonmem/version.hpp>
