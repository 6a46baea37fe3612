// SPDX-License-Identifier: BSD-3-Clause
// Network addresses and prefixes as the source rules use them
// (trusted_sources, `acctlock lock --source CIDR`, IPv6 masking).
//
// Pure text-to-bytes code over inet_pton: no sockets, no name lookups (a host
// name in PAM_RHOST is compared as text, never resolved: resolving would make
// every login wait on DNS, and the attacker may control the answer).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace acctlock {

// One IPv4 or IPv6 address. An IPv4-mapped IPv6 address (::ffff:192.0.2.1)
// is read as the IPv4 address it carries, so that a dual-stack sshd and an
// IPv4-only one name the same client the same way.
struct IpAddress {
  bool is_v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // IPv4 uses the first 4

  unsigned bit_count() const { return is_v6 ? 128 : 32; }
  bool operator==(const IpAddress&) const = default;
};

// "192.0.2.1", "2001:db8::1", "[2001:db8::1]", "fe80::1%eth0" (the zone is
// dropped: it names an interface of this host, not the client). nullopt for
// anything else, host names included.
std::optional<IpAddress> parse_ip_address(std::string_view text);

// The canonical text: dotted quad, or RFC 5952 IPv6 as inet_ntop writes it.
std::string format_ip_address(const IpAddress& address);

// `address` with every bit after the first `prefix_length` cleared.
IpAddress mask_address(IpAddress address, unsigned prefix_length);

// An address with a prefix length: "10.0.0.0/8", "2001:db8::/32", or a bare
// address (the full length: /32 or /128). Host bits set below the prefix
// ("10.1.2.3/8") are an error rather than silently cleared: the operator
// probably meant something else, and for a trust list a guess is not safe.
struct AddressPrefix {
  IpAddress network;
  unsigned length = 0;

  bool contains(const IpAddress& address) const;
  // "10.0.0.0/8"; a full-length prefix is written as the bare address.
  std::string to_string() const;
  bool operator==(const AddressPrefix&) const = default;
};

// nullopt with `*error` set ("... is not an address or CIDR prefix", "...
// has host bits set after /8") when `text` is not a prefix.
std::optional<AddressPrefix> parse_address_prefix(std::string_view text, std::string* error);

}  // namespace acctlock
