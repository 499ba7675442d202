// The `--config FILE` format: the subset of TOML that shears writes into a run's config.toml, read
// strictly. Lines of `key = value`, `[section]` headers, `#` comments and blank lines; a value is
// a quoted string ("…" or '…', taken as it is: no escapes, as shears writes them), a bare word or
// number, or an array `[v, v, …]`
// (which may span lines and nest up to kMaxNesting levels; nested arrays are flattened). Every
// line is consumed entirely or refused naming the line: an unterminated string or array, a NUL
// byte, a key given twice or anything after a value is an error, never a guess.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace shears::config {

constexpr int64_t kMaxBytes = int64_t{1} << 20;  // a config file is at most 1 MiB
constexpr int kMaxNesting = 16;                  // arrays within arrays

struct Item {
  std::vector<std::string> sections;  // [a.b] then `k = v` gives {"a", "b"}; a dotted key adds its prefix
  std::string key;
  std::vector<std::string> values;  // one for a scalar, the (flattened) elements of an array
  bool array = false;
  int64_t line = 0;  // 1-based, where the key stands
};

// Parses `text`; errors read "<path>: line N: expected …, got …".
std::vector<Item> parse(std::string_view text, const std::string& path);

// The keys (with their sections) whose values differ between two configurations, or that only
// one holds, leaving out `ignored`: each as "key: <before> -> <after>".
std::vector<std::string> differences(const std::vector<Item>& before, const std::vector<Item>& after,
                                     const std::set<std::string>& ignored);

// Reads and parses a regular file of at most kMaxBytes (a FIFO or device is refused at once).
std::vector<Item> read(const std::string& path);

// The name of `known` closest to `name` by edit distance (insertions, deletions, substitutions),
// when at most `max_edits` away: what a misspelt flag or key most likely meant; empty otherwise.
std::string closest_key(const std::string& name, const std::vector<std::string>& known, size_t max_edits = 2);

}  // namespace shears::config
