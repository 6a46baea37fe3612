// SPDX-License-Identifier: BSD-3-Clause
// The top sources of `acctlock stats` (daemon/policy/source_ranking.h):
// failures folded by source key as the lockout keys them, exact figures, and
// bounded memory past capacity.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "daemon/policy/source_ranking.h"

namespace acctlock {
namespace {

using Ranking = std::vector<std::pair<std::string, std::uint64_t>>;

struct Origin {
  std::string rhost;
  std::string ruser;
  std::uint64_t failures;
};

// A scan over a fixed list, counting how often it was asked.
struct Origins {
  std::vector<Origin> rows;
  int scans = 0;

  FailureOriginScan scan() {
    return [this](const FailureOriginVisitor& visit) {
      ++scans;
      for (const auto& row : rows) visit(row.rhost, row.ruser, row.failures);
    };
  }
};

TEST(SourceRanking, AnIpv6Slash64IsOneSourceWithTheSummedFailures) {
  Origins origins{{
      {"2001:db8:1:2::1", "", 2},
      {"2001:db8:1:2::ff", "", 1},
      {"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "", 1},
      {"2001:db8:1:3::1", "", 3},  // the next /64: a source of its own
      {"192.0.2.1", "", 2},
  }};
  const SourceRanking ranking = rank_failure_sources(origins.scan(), 64, 10);
  EXPECT_EQ(ranking.top,
            (Ranking{{"2001:db8:1:2::/64", 4}, {"2001:db8:1:3::/64", 3}, {"192.0.2.1", 2}}));
  EXPECT_TRUE(ranking.complete);
  EXPECT_EQ(ranking.passes, 1);
  EXPECT_EQ(origins.scans, 1);
}

TEST(SourceRanking, FollowsSourcePrefixV6) {
  Origins origins{{{"2001:db8:1:2::1", "", 1}, {"2001:db8:1:3::1", "", 1}}};
  EXPECT_EQ(rank_failure_sources(origins.scan(), 48, 10).top, (Ranking{{"2001:db8:1::/48", 2}}));
  EXPECT_EQ(rank_failure_sources(origins.scan(), 128, 10).top,
            (Ranking{{"2001:db8:1:2::1/128", 1}, {"2001:db8:1:3::1/128", 1}}));
}

TEST(SourceRanking, Ipv4AddressesStayApartAndMappedOnesJoinThem) {
  Origins origins{{
      {"192.0.2.1", "", 3},
      {"192.0.2.2", "", 3},
      {"::ffff:192.0.2.1", "", 1},  // the same source, as normalise_source says
  }};
  EXPECT_EQ(rank_failure_sources(origins.scan(), 64, 10).top,
            (Ranking{{"192.0.2.1", 4}, {"192.0.2.2", 3}}));
}

TEST(SourceRanking, HostNamesByCaseLocalUsersAndNotTheConsole) {
  Origins origins{{
      {"Gw.Example.ORG", "", 1},
      {"gw.example.org", "", 2},
      {"", "alice", 4},     // su or sudo by alice: "local:alice"
      {"", "", 9},          // the console: never counted, never blocked
      {"bad host", "", 9},  // names no source
  }};
  EXPECT_EQ(rank_failure_sources(origins.scan(), 64, 10).top,
            (Ranking{{"local:alice", 4}, {"gw.example.org", 3}}));
}

TEST(SourceRanking, LimitKeepsTheMostAndBreaksTiesByKey) {
  Origins origins{{{"192.0.2.3", "", 5}, {"192.0.2.2", "", 5}, {"192.0.2.1", "", 1}}};
  EXPECT_EQ(rank_failure_sources(origins.scan(), 64, 2).top,
            (Ranking{{"192.0.2.2", 5}, {"192.0.2.3", 5}}));
}

// A flood of distinct addresses, each failing once, past the capacity, and
// a /64 that rotated addresses so that each of them also failed once: the
// /64 is still found, with its exact count, in a second pass.
TEST(SourceRanking, PastCapacityARotatingSlash64IsStillFoundWithItsExactCount) {
  Origins origins;
  for (int i = 0; i < 2000; ++i) {
    origins.rows.push_back(
        {"198.51." + std::to_string(100 + i / 250) + "." + std::to_string(i % 250), "", 1});
    if (i % 20 == 0) {
      origins.rows.push_back({"2001:db8:9:9::" + std::to_string(i + 1), "", 1});  // 100 in all
    }
  }
  origins.rows.push_back({"192.0.2.1", "", 40});
  const SourceRanking ranking = rank_failure_sources(origins.scan(), 64, 2, 64);
  EXPECT_EQ(ranking.top, (Ranking{{"2001:db8:9:9::/64", 100}, {"192.0.2.1", 40}}));
  EXPECT_TRUE(ranking.complete);
  EXPECT_EQ(ranking.passes, 2);
  EXPECT_EQ(origins.scans, 2);
}

// Past capacity with nothing standing out: the figures shown are exact, but
// one of the many sources with one failure may be missing, and it says so.
TEST(SourceRanking, PastCapacityAFlatTailIsMarkedIncomplete) {
  Origins origins;
  for (int i = 0; i < 500; ++i) {
    origins.rows.push_back(
        {(i < 250 ? "203.0.113." : "198.51.100.") + std::to_string(i % 250), "", 1});
  }
  const SourceRanking ranking = rank_failure_sources(origins.scan(), 64, 3, 16);
  ASSERT_EQ(ranking.top.size(), 3u);
  for (const auto& [key, failures] : ranking.top) EXPECT_EQ(failures, 1u) << key;
  EXPECT_FALSE(ranking.complete);
}

TEST(SourceRanking, NoOriginsNoSources) {
  Origins origins;
  const SourceRanking ranking = rank_failure_sources(origins.scan(), 64, 10);
  EXPECT_TRUE(ranking.top.empty());
  EXPECT_TRUE(ranking.complete);
}

}  // namespace
}  // namespace acctlock
