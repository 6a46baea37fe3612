// SPDX-License-Identifier: BSD-3-Clause
// event_request SOCKET TYPE USER [RHOST [unknown]]: sends one request to
// acctlockd (from RHOST; flagged as a user unknown to NSS) and prints
// the answer as "verdict=... lock=... failures=N". Tests run it as another
// user with setpriv, to check what the daemon lets that uid do.
#include <cstdio>
#include <cstring>
#include <string>

#include "common/event_client.h"
#include "common/event_id.h"

int main(int argc, char** argv) {
  using namespace acctlock;
  if (argc < 4 || argc > 6 || (argc == 6 && std::strcmp(argv[5], "unknown") != 0)) {
    std::fprintf(stderr,
                 "usage: event_request SOCKET check|failure|success|password_changed USER "
                 "[RHOST [unknown]]\n");
    return 2;
  }
  protocol::Request request;
  const std::string type = argv[2];
  if (type == "check")
    request.type = protocol::MessageType::check;
  else if (type == "failure")
    request.type = protocol::MessageType::failure;
  else if (type == "success")
    request.type = protocol::MessageType::success;
  else if (type == "password_changed")
    request.type = protocol::MessageType::password_changed;
  else
    return 2;
  request.event_id = new_event_id();
  request.user = argv[3];
  request.service = "event_request";
  if (argc >= 5) request.rhost = argv[4];
  request.user_unknown = argc == 6;

  EventClient client;
  protocol::Answer answer;
  const auto status = client.exchange(argv[1], request, answer, std::chrono::seconds(10));
  if (status != ClientStatus::ok) {
    std::fprintf(stderr, "event_request: %s (%s)\n", describe(status),
                 std::strerror(client.last_errno()));
    return 1;
  }
  static const char* const verdicts[] = {"allowed", "locked", "refused", "invalid", "failed", "busy"};
  std::printf("verdict=%s lock=%d failures=%u level=%u\n",
              verdicts[static_cast<int>(answer.verdict)], static_cast<int>(answer.lock),
              answer.failures, answer.level);
  return 0;
}
