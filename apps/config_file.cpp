#include "apps/config_file.hpp"

#include "core/error.hpp"

namespace shears::app {

void apply_config_file(CLI::App& cli, const std::string& path) {
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(path);
  } catch (const CLI::Error& e) {
    throw Error(path + ": cannot read the config file: " + e.what());
  }
  for (const CLI::ConfigItem& item : items) {
    if (item.name == "++" || item.name == "--") continue;  // section markers
    bool own_section = item.parents.empty() || (item.parents.size() == 1 && item.parents[0] == cli.get_name());
    SHEARS_CHECK(own_section, path, "key '", item.fullname(), "' belongs to no section of `shears ", cli.get_name(), "`");
    CLI::Option* option = cli.get_option_no_throw("--" + item.name);
    SHEARS_CHECK(option != nullptr, path, "unknown key '", item.name, "': expected one of the flags of `shears ",
                 cli.get_name(), "` without the leading --");
    if (option->count() > 0) continue;  // the command line wins
    try {
      option->add_result(item.inputs);
      option->run_callback();
    } catch (const CLI::Error& e) {
      throw Error(path + ": key '" + item.name + "': " + e.what());
    }
  }
}

}  // namespace shears::app
