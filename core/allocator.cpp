#include "core/allocator.hpp"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>

namespace shears {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kMinCached = size_t{1} << 20;  // smaller blocks: malloc's own bins are fast
constexpr size_t kCacheCap = size_t{4} << 30;   // never hold more than this for reuse

struct Cache {
  std::mutex mutex;
  std::multimap<size_t, void*> blocks;  // by exact size: training reallocates the same sizes
  size_t bytes = 0;
};

Cache& cache() {
  static Cache* instance = new Cache;  // never destroyed: blocks may be freed during exit
  return *instance;
}

}  // namespace

void* allocate_block(size_t bytes) {
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  if (bytes >= kMinCached) {
    Cache& c = cache();
    std::lock_guard lock(c.mutex);
    if (auto it = c.blocks.find(bytes); it != c.blocks.end()) {
      void* p = it->second;
      c.blocks.erase(it);
      c.bytes -= bytes;
      return p;
    }
  }
  void* p = std::aligned_alloc(kAlign, bytes);
  if (!p) {
    release_cached_blocks();
    p = std::aligned_alloc(kAlign, bytes);
  }
  if (!p) throw std::bad_alloc();
  return p;
}

void free_block(void* p, size_t bytes) {
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  if (bytes >= kMinCached) {
    Cache& c = cache();
    std::lock_guard lock(c.mutex);
    if (c.bytes + bytes <= kCacheCap) {
      c.blocks.emplace(bytes, p);
      c.bytes += bytes;
      return;
    }
  }
  std::free(p);
}

size_t cached_block_bytes() {
  std::lock_guard lock(cache().mutex);
  return cache().bytes;
}

void release_cached_blocks() {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  for (auto& [size, p] : c.blocks) std::free(p);
  c.blocks.clear();
  c.bytes = 0;
}

}  // namespace shears
