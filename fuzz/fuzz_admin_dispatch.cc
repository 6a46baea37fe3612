// SPDX-License-Identifier: BSD-3-Clause
// libFuzzer target: the admin request path, as the admin socket runs it on
// each request line (daemon/admin/): JSON parse, then AdminCommands::dispatch
// for a root caller and for an unprivileged one, against a real SQLite store
// in a temp dir. It must never crash, and must answer every request exactly
// once.
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "daemon/admin/admin_commands.h"
#include "daemon/events/batch_writer.h"
#include "daemon/lockout_service.h"
#include "daemon/store/sqlite/sqlite_store.h"

namespace {

using namespace acctlock;

class NoEventLog : public EventLog {
 public:
  void record(const LockEvent&) override {}
};

struct World {
  World()
      : dir(make_dir()),
        store(SqliteStore::open(dir + "/acctlock.db")),
        service(LockoutRules{}, *store),
        writer(io, *store, events, [] {}),
        commands(AdminContext{service, writer, *store, users, [] { return wall_clock_now(); },
                              [] { return std::string(); }}) {}
  ~World() { std::filesystem::remove_all(dir); }

  static std::string make_dir() {
    char name[] = "/tmp/acctlock-fuzz-XXXXXX";
    if (mkdtemp(name) == nullptr) std::abort();
    return name;
  }

  std::string dir;
  boost::asio::io_context io;
  std::unique_ptr<SqliteStore> store;
  LockoutService service;
  NoEventLog events;
  UserDirectory users;
  BatchWriter writer;
  AdminCommands commands;
};

void dispatch(World& world, const AdminCaller& caller, const nlohmann::json& request) {
  int replies = 0;
  world.commands.dispatch(caller, request, [&](AdminAnswer) { ++replies; });
  world.io.restart();
  auto guard = boost::asio::make_work_guard(world.io);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (replies == 0 && std::chrono::steady_clock::now() < deadline) {
    world.io.run_one_for(std::chrono::milliseconds(50));
  }
  if (replies != 1) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;
  // The transport refuses deeper requests before parsing (admin_server.cc).
  std::size_t depth = 0;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == '[' || data[i] == '{') ++depth;
  }
  if (depth > 16) return 0;
  const auto request = nlohmann::json::parse(data, data + size, nullptr, false);
  if (request.is_discarded()) return 0;
  dispatch(world, AdminCaller{0, 0, {}, 1}, request);
  dispatch(world, AdminCaller{65534, 65534, {}, 2}, request);
  return 0;
}
