#include "data/list_directory.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"

namespace shears::data {

namespace {

namespace fs = std::filesystem;

// The entries of one folder, without descending.
std::vector<fs::directory_entry> entries_of(const fs::path& dir, const std::string& format,
                                            const std::string& dataset) {
  std::vector<fs::directory_entry> entries;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    entries.push_back(*it);
  SHEARS_CHECK(!ec, format, dataset, ": cannot list ", dir.string(), " (", ec.message(), ")",
               entries.empty() ? std::string() : ", after reading " + entries.back().path().string());
  return entries;
}

}  // namespace

FileId file_id(const fs::path& path, const std::string& format, const std::string& dataset) {
  struct stat st;
  SHEARS_CHECK(::stat(path.c_str(), &st) == 0, format, dataset, ": cannot read ", path.string(), " (",
               std::strerror(errno), ")");
  return {st.st_dev, st.st_ino};
}

std::vector<fs::directory_entry> list_directory(const fs::path& dir, const std::string& format,
                                                const std::string& dataset, FileIds& entered) {
  // Depth first with an explicit stack (a deep tree cannot overflow the call stack); each folder
  // remembers the chain of folders above it, which tells a cycle from a second visit.
  struct Pending {
    fs::path path;
    std::vector<std::pair<FileId, fs::path>> above;  // the folders entered on the way down, outermost first
  };
  std::vector<fs::directory_entry> all;
  std::vector<Pending> stack{{dir, {}}};
  while (!stack.empty()) {
    Pending folder = std::move(stack.back());
    stack.pop_back();
    const FileId id = file_id(folder.path, format, dataset);
    for (const auto& [above_id, above_path] : folder.above)
      SHEARS_CHECK(above_id != id, format, dataset, ": ", folder.path.string(), " leads back to ", above_path.string(),
                   ", a folder above it: a symlink cycle");
    const auto [first, fresh] = entered.emplace(id, folder.path);
    SHEARS_CHECK(fresh, format, dataset, ": ", folder.path.string(), " and ", first->second.string(),
                 " are the same folder (a symlink leads to it): each folder is read once");
    folder.above.emplace_back(id, folder.path);
    std::vector<fs::directory_entry> entries = entries_of(folder.path, format, dataset);
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
      std::error_code ec;
      if (it->is_directory(ec)) stack.push_back({it->path(), folder.above});
    }
    all.insert(all.end(), entries.begin(), entries.end());
  }
  return all;
}

std::vector<fs::directory_entry> list_directory(const fs::path& dir, bool recursive, const std::string& format,
                                                const std::string& dataset) {
  if (!recursive) return entries_of(dir, format, dataset);
  FileIds entered;
  return list_directory(dir, format, dataset, entered);
}

}  // namespace shears::data
