#include "data/list_directory.hpp"

#include "core/error.hpp"

namespace shears::data {

namespace {

namespace fs = std::filesystem;

template <typename Iterator>
std::vector<fs::directory_entry> walk(const fs::path& dir, fs::directory_options options, const std::string& format,
                                      const std::string& dataset) {
  std::vector<fs::directory_entry> entries;
  std::error_code ec;
  for (Iterator it(dir, options, ec); !ec && it != Iterator(); it.increment(ec)) entries.push_back(*it);
  SHEARS_CHECK(!ec, format, dataset, ": cannot list ", dir.string(), " (", ec.message(), ")",
               entries.empty() ? std::string() : ", after reading " + entries.back().path().string());
  return entries;
}

}  // namespace

std::vector<fs::directory_entry> list_directory(const fs::path& dir, bool recursive, const std::string& format,
                                                const std::string& dataset) {
  if (recursive)
    return walk<fs::recursive_directory_iterator>(dir, fs::directory_options::follow_directory_symlink, format,
                                                  dataset);
  return walk<fs::directory_iterator>(dir, fs::directory_options::none, format, dataset);
}

}  // namespace shears::data
