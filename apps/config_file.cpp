#include "apps/config_file.hpp"

#include "core/config_file.hpp"
#include "core/error.hpp"

namespace shears::app {

void apply_config_file(CLI::App& cli, const std::string& path) {
  for (const config::Item& item : config::read(path)) {
    const std::string where = path + ": line " + std::to_string(item.line);
    const bool own_section = item.sections.empty() || (item.sections.size() == 1 && item.sections[0] == cli.get_name());
    SHEARS_CHECK(own_section, where, "key '", item.key, "' belongs to no section of `shears ", cli.get_name(), "`");
    CLI::Option* option = cli.get_option_no_throw("--" + item.key);
    SHEARS_CHECK(option != nullptr, where, "unknown key '", item.key, "': expected one of the flags of `shears ",
                 cli.get_name(), "` without the leading --");
    if (option->count() > 0) continue;  // the command line wins
    // An empty value, `""` or `[]`, leaves the flag at its default: that is how a run's config.toml
    // writes a flag that was not given and has no default to show (limit-train, widths, resume).
    if (item.values.empty() || item.values == std::vector<std::string>{""}) continue;
    try {
      option->add_result(item.values);
      option->run_callback();
    } catch (const CLI::Error& e) {
      throw Error(where + ": key '" + item.key + "': " + e.what());
    }
  }
}

}  // namespace shears::app
