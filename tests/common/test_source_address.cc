// SPDX-License-Identifier: BSD-3-Clause
// Addresses and prefixes of common/source_address.h: the text forms an
// operator writes in trusted_sources and the service puts in PAM_RHOST.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "common/source_address.h"

namespace acctlock {
namespace {

IpAddress address(std::string_view text) {
  const std::optional<IpAddress> parsed = parse_ip_address(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(IpAddress{});
}

AddressPrefix prefix(std::string_view text) {
  std::string error;
  const std::optional<AddressPrefix> parsed = parse_address_prefix(text, &error);
  EXPECT_TRUE(parsed.has_value()) << text << ": " << error;
  return parsed.value_or(AddressPrefix{});
}

std::string prefix_error(std::string_view text) {
  std::string error;
  EXPECT_FALSE(parse_address_prefix(text, &error).has_value()) << text;
  return error;
}

TEST(IpAddress, ParsesAndFormatsIpv4) {
  const IpAddress a = address("192.0.2.1");
  EXPECT_FALSE(a.is_v6);
  EXPECT_EQ(format_ip_address(a), "192.0.2.1");
}

TEST(IpAddress, Ipv6IsWrittenInCanonicalForm) {
  const IpAddress a = address("2001:0DB8:0000:0000:0000:0000:0000:0001");
  EXPECT_TRUE(a.is_v6);
  EXPECT_EQ(format_ip_address(a), "2001:db8::1");
}

TEST(IpAddress, Ipv4MappedIpv6IsTheIpv4Address) {
  EXPECT_EQ(address("::ffff:192.0.2.7"), address("192.0.2.7"));
  // ::ffff:0:0/96 only; an IPv4-compatible or other embedding stays IPv6.
  EXPECT_TRUE(address("::192.0.2.7").is_v6);
  EXPECT_TRUE(address("64:ff9b::192.0.2.7").is_v6);
}

TEST(IpAddress, BracketsAndZoneAreDropped) {
  EXPECT_EQ(address("[2001:db8::1]"), address("2001:db8::1"));
  EXPECT_EQ(address("fe80::1%eth0"), address("fe80::1"));
  EXPECT_FALSE(parse_ip_address("fe80::1%").has_value());
}

TEST(IpAddress, RejectsWhatIsNotAnAddress) {
  for (std::string_view text : {"", "host.example.org", "192.0.2", "192.0.2.256", "1.2.3.4.5",
                                "192.0.2.1/24", "::g", " 192.0.2.1", "[192.0.2.1", "01.2.3.4"}) {
    EXPECT_FALSE(parse_ip_address(text).has_value()) << text;
  }
  EXPECT_FALSE(parse_ip_address(std::string(65, '1')).has_value());
}

TEST(MaskAddress, ClearsBitsAfterThePrefix) {
  EXPECT_EQ(format_ip_address(mask_address(address("2001:db8:1:2:3:4:5:6"), 64)), "2001:db8:1:2::");
  EXPECT_EQ(format_ip_address(mask_address(address("2001:db8:1:2:3:4:5:6"), 48)), "2001:db8:1::");
  // Within a byte: /60 keeps the top nibble of the 8th byte.
  EXPECT_EQ(format_ip_address(mask_address(address("2001:db8:1:2ff::"), 60)), "2001:db8:1:2f0::");
  EXPECT_EQ(format_ip_address(mask_address(address("192.0.2.255"), 25)), "192.0.2.128");
  EXPECT_EQ(format_ip_address(mask_address(address("192.0.2.255"), 0)), "0.0.0.0");
  EXPECT_EQ(mask_address(address("192.0.2.255"), 32), address("192.0.2.255"));
  EXPECT_EQ(mask_address(address("2001:db8::1"), 128), address("2001:db8::1"));
  EXPECT_EQ(mask_address(address("2001:db8::1"), 200), address("2001:db8::1"));
}

TEST(AddressPrefix, ContainsAtTheEdges) {
  const AddressPrefix net = prefix("192.0.2.0/24");
  EXPECT_TRUE(net.contains(address("192.0.2.0")));
  EXPECT_TRUE(net.contains(address("192.0.2.255")));
  EXPECT_FALSE(net.contains(address("192.0.3.0")));
  EXPECT_FALSE(net.contains(address("192.0.1.255")));
  // Families never mix, not even 0.0.0.0/0 with an IPv6 address.
  EXPECT_FALSE(prefix("0.0.0.0/0").contains(address("2001:db8::1")));
  EXPECT_TRUE(prefix("0.0.0.0/0").contains(address("203.0.113.9")));
  EXPECT_TRUE(prefix("::/0").contains(address("2001:db8::1")));
  // A mapped address is IPv4, so an IPv4 prefix covers it.
  EXPECT_TRUE(net.contains(address("::ffff:192.0.2.9")));
}

TEST(AddressPrefix, BareAddressIsAFullLengthPrefix) {
  const AddressPrefix one = prefix("192.0.2.1");
  EXPECT_EQ(one.length, 32u);
  EXPECT_TRUE(one.contains(address("192.0.2.1")));
  EXPECT_FALSE(one.contains(address("192.0.2.2")));
  EXPECT_EQ(prefix("2001:db8::1").length, 128u);
  EXPECT_EQ(one.to_string(), "192.0.2.1");
  EXPECT_EQ(prefix("2001:db8::/32").to_string(), "2001:db8::/32");
  EXPECT_EQ(prefix("10.0.0.0/8").to_string(), "10.0.0.0/8");
}

TEST(AddressPrefix, LengthBounds) {
  EXPECT_EQ(prefix("0.0.0.0/0").length, 0u);
  EXPECT_EQ(prefix("10.0.0.1/32").length, 32u);
  EXPECT_EQ(prefix_error("10.0.0.0/33"),
            "\"10.0.0.0/33\" has a bad prefix length: expected /0 to /32");
  EXPECT_EQ(prefix("2001:db8::1/128").length, 128u);
  EXPECT_EQ(prefix_error("2001:db8::/129"),
            "\"2001:db8::/129\" has a bad prefix length: expected /0 to /128");
  EXPECT_EQ(prefix_error("10.0.0.0/"), "\"10.0.0.0/\" has a bad prefix length: expected /0 to /32");
  EXPECT_EQ(prefix_error("10.0.0.0/8x"),
            "\"10.0.0.0/8x\" has a bad prefix length: expected /0 to /32");
  EXPECT_EQ(prefix_error("10.0.0.0/-1"),
            "\"10.0.0.0/-1\" has a bad prefix length: expected /0 to /32");
}

TEST(AddressPrefix, HostBitsAreAnErrorThatNamesTheNetwork) {
  EXPECT_EQ(prefix_error("10.1.2.3/8"),
            "\"10.1.2.3/8\" has host bits set after /8; write the network address, 10.0.0.0/8");
  EXPECT_EQ(prefix_error("2001:db8::1/64"),
            "\"2001:db8::1/64\" has host bits set after /64; write the network address, "
            "2001:db8::/64");
}

TEST(AddressPrefix, RejectsNamesAndZones) {
  EXPECT_EQ(prefix_error("gw.example.org"),
            "\"gw.example.org\" is not an address or CIDR prefix, such as 192.0.2.0/24");
  EXPECT_EQ(prefix_error("fe80::%eth0/64"),
            "\"fe80::%eth0/64\" is not an address or CIDR prefix (no %zone)");
  EXPECT_FALSE(parse_address_prefix("", nullptr).has_value());
}

}  // namespace
}  // namespace acctlock
