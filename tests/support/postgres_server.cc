// SPDX-License-Identifier: BSD-3-Clause
#include "tests/support/postgres_server.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace acctlock::test {
namespace {

using namespace std::chrono_literals;

// Debian installs each major version under /usr/lib/postgresql/N/bin; the
// newest wins. ACCTLOCK_PG_BINDIR overrides, for other layouts.
std::string find_bin_dir() {
  if (const char* dir = std::getenv("ACCTLOCK_PG_BINDIR"); dir != nullptr && *dir != '\0') {
    if (!std::filesystem::exists(std::filesystem::path(dir) / "postgres")) {
      throw std::runtime_error(std::string("ACCTLOCK_PG_BINDIR: no postgres in ") + dir);
    }
    return dir;
  }
  std::vector<std::filesystem::path> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
    if (std::filesystem::exists(entry.path() / "bin" / "postgres")) found.push_back(entry.path());
  }
  if (found.empty()) {
    throw std::runtime_error(
        "PostgreSQL's server programs are not installed (/usr/lib/postgresql/*/bin/postgres); "
        "run scripts/install-deps");
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return std::stoi(a.filename().string()) < std::stoi(b.filename().string());
  });
  return (found.back() / "bin").string();
}

std::string random_password() {
  unsigned char bytes[16];
  const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::read(fd, bytes, sizeof bytes) != static_cast<ssize_t>(sizeof bytes)) {
    throw std::runtime_error("cannot read /dev/urandom");
  }
  ::close(fd);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  for (const unsigned char byte : bytes) {
    text += kHex[byte >> 4];
    text += kHex[byte & 15];
  }
  return text;
}

// The unprivileged user the server runs as when the test is root.
struct ServerUser {
  uid_t uid;
  gid_t gid;
};
std::optional<ServerUser> server_user() {
  if (geteuid() != 0) return std::nullopt;
  const passwd* nobody = getpwnam("nobody");
  if (nobody == nullptr) throw std::runtime_error("no user nobody to run PostgreSQL as");
  return ServerUser{nobody->pw_uid, nobody->pw_gid};
}

void own(const std::string& path, const std::optional<ServerUser>& user) {
  if (user && chown(path.c_str(), user->uid, user->gid) != 0) {
    throw std::runtime_error("chown " + path + ": " + std::strerror(errno));
  }
}

// Forks a child that drops to `user`, sends its output to `log_path` and
// executes `argv`. Returns its pid.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path,
            const std::optional<ServerUser>& user) {
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || null < 0 || dup2(null, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
      _exit(126);
    // Its own process group, so a test's Ctrl-C reaches it only through us.
    setpgid(0, 0);
    if (user && (setgroups(0, nullptr) != 0 || setgid(user->gid) != 0 || setuid(user->uid) != 0)) {
      _exit(126);
    }
    char lang[] = "LC_ALL=C.UTF-8";
    char* env[] = {lang, nullptr};
    execve(args[0], args.data(), env);
    _exit(127);
  }
  return pid;
}

int wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0 && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() > deadline) return -2;
    std::this_thread::sleep_for(10ms);
  }
}

// Sends `signal` to every process whose parent is `parent`, from /proc.
void signal_children(pid_t parent, int signal) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and
    // parentheses, so the fields are read after the last ')'.
    const std::string stat = read_file(entry.path().string() + "/stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) {
      kill(static_cast<pid_t>(std::stoi(name)), signal);
    }
  }
}

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};

}  // namespace

bool PostgresServer::available() {
  try {
    find_bin_dir();
    return true;
  } catch (const std::runtime_error&) {
    return false;
  }
}

PostgresServer::PostgresServer() : bin_dir_(find_bin_dir()), password_(random_password()) {
  const auto user = server_user();
  const std::string home = dir_ / "pg";
  std::filesystem::create_directory(home);
  chmod(home.c_str(), 0700);
  own(home, user);
  data_dir_ = home + "/data";
  socket_dir_ = home + "/socket";
  log_path_ = home + "/server.log";
  std::filesystem::create_directory(socket_dir_);
  own(socket_dir_, user);
  const std::string password_file = home + "/password";
  write_file(password_file, password_ + "\n");
  own(password_file, user);
  own(home, user);

  const pid_t initdb =
      spawn({bin_dir_ + "/initdb", "--pgdata=" + data_dir_, "--username=postgres",
             "--pwfile=" + password_file, "--auth=scram-sha-256", "--encoding=UTF8",
             "--locale=C.UTF-8", "--no-sync", "--no-instructions"},
            log_path_, user);
  const int status = wait_for(initdb, 120s);
  std::filesystem::remove(password_file);
  if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("initdb failed:\n" + log());
  }
}

PostgresServer::~PostgresServer() {
  if (running()) {
    try {
      stop();
    } catch (...) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
}

void PostgresServer::start() {
  if (running()) return;
  // No TCP listener at all: the socket directory is the only way in.
  // fsync is off because nothing here tests PostgreSQL's own durability,
  // and the tests share two cores with everything else.
  pid_ = spawn({bin_dir_ + "/postgres", "-D", data_dir_, "-k", socket_dir_, "-c",
                "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=100"},
               log_path_, server_user());
  const std::string conninfo = superuser_conninfo();
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("postgres exited during start-up:\n" + log());
    }
    if (PQping(conninfo.c_str()) == PQPING_OK) return;
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("postgres did not accept connections within 60 s:\n" + log());
    }
    std::this_thread::sleep_for(20ms);
  }
}

void PostgresServer::stop() {
  if (!running()) return;
  resume();  // a paused server cannot shut down
  kill(pid_, SIGINT);
  int status = wait_for(pid_, 60s);
  if (status == -2) {
    kill(pid_, SIGKILL);
    status = wait_for(pid_, 10s);
  }
  pid_ = -1;
}

void PostgresServer::pause() {
  if (!running()) return;
  // The postmaster first, so that it starts no new backend, then each
  // backend (a process of its own per session, in a session of its own).
  kill(pid_, SIGSTOP);
  signal_children(pid_, SIGSTOP);
}

void PostgresServer::resume() {
  if (!running()) return;
  signal_children(pid_, SIGCONT);
  kill(pid_, SIGCONT);
}

std::string PostgresServer::socket_conninfo(const std::string& database) const {
  return "host=" + socket_dir_ + " dbname=" + database;
}

std::string PostgresServer::superuser_conninfo(const std::string& database) const {
  return socket_conninfo(database) + " user=postgres password=" + password_;
}

void PostgresServer::execute(const std::string& sql, const std::string& database) const {
  query_text(sql, database);
}

std::string PostgresServer::query_text(const std::string& sql, const std::string& database) const {
  std::unique_ptr<PGconn, PgConnDeleter> conn(PQconnectdb(superuser_conninfo(database).c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error(std::string("connecting to the test server: ") +
                             PQerrorMessage(conn.get()));
  }
  std::unique_ptr<PGresult, PgResultDeleter> result(PQexec(conn.get(), sql.c_str()));
  const auto status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error(sql + ": " + PQresultErrorMessage(result.get()));
  }
  if (status == PGRES_TUPLES_OK && PQntuples(result.get()) > 0 && PQnfields(result.get()) > 0) {
    return PQgetvalue(result.get(), 0, 0);
  }
  return {};
}

std::string PostgresServer::create_database() {
  const std::string name = "acctlock_test_" + std::to_string(++databases_made_);
  execute("CREATE DATABASE " + name);
  return name;
}

std::string PostgresServer::log() const {
  return read_file(log_path_);
}

}  // namespace acctlock::test
