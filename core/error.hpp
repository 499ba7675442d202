// Two tiers of errors (docs/design.md#errors): a user mistake throws shears::Error with
// what was expected and what was got; a broken internal invariant asserts.
#pragma once
#include <cassert>
#include <sstream>
#include <stdexcept>
#include <string>

namespace shears {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace shears

// SHEARS_CHECK(cond, "op", parts...) throws shears::Error("op: parts...") when cond fails.
#define SHEARS_CHECK(cond, where, ...)                                          \
  do {                                                                          \
    if (!(cond)) throw ::shears::Error(::shears::detail::concat(where, ": ", __VA_ARGS__)); \
  } while (0)

#define SHEARS_ASSERT(cond) assert(cond)
