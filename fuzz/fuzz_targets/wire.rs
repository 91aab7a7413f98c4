//! Every packet view in `wire/` on arbitrary bytes: `new_checked` either refuses or
//! yields a view whose every accessor is in bounds; checksums never panic.
#![no_main]
use drlb::wire::{arp::ArpPacket, checksum, ethernet, icmp::IcmpPacket, ipv4::Ipv4Packet};
use drlb::wire::{tcp::TcpPacket, udp::UdpPacket};
use libfuzzer_sys::fuzz_target;

fn l4(p: &[u8]) {
    if let Ok(t) = TcpPacket::new_checked(p) {
        let _ = (t.src_port(), t.dst_port(), t.flags());
    }
    if let Ok(u) = UdpPacket::new_checked(p) {
        let _ = (u.src_port(), u.dst_port());
    }
    if let Ok(i) = IcmpPacket::new_checked(p) {
        let _ = (i.msg_type(), i.code(), i.verify_checksum());
        let mut copy = p.to_vec();
        if let Ok(mut m) = IcmpPacket::new_checked(&mut copy[..]) {
            m.make_echo_reply();
            assert!(m.verify_checksum() || !i.verify_checksum() || i.msg_type() != 8);
        }
    }
}

fn ip(p: &[u8]) {
    if let Ok(v) = Ipv4Packet::new_checked(p) {
        assert!(v.header_len() >= 20 && v.header_len() <= v.total_len());
        assert!(v.total_len() <= p.len());
        let _ = (v.is_fragment(), v.is_non_first_fragment(), v.ttl(), v.protocol());
        let _ = (v.checksum(), v.src(), v.dst(), v.verify_checksum());
        assert_eq!(v.payload().len(), v.total_len() - v.header_len());
        l4(v.payload());
        let mut copy = p.to_vec();
        let mut m = Ipv4Packet::new_checked(&mut copy[..]).unwrap();
        m.swap_addrs();
        m.set_ttl(64);
        m.fill_checksum();
        assert!(m.verify_checksum(), "a filled checksum verifies");
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = checksum::checksum(data);
    let _ = checksum::verify(data);
    if let Ok(l2) = ethernet::parse(data) {
        let _ = format!("{l2:?}");
    }
    if data.len() >= 12 {
        let _ = (ethernet::dst(data), ethernet::src(data));
    }
    if let Ok(a) = ArpPacket::new_checked(data) {
        let _ = (a.oper(), a.sha(), a.spa(), a.tha(), a.tpa());
    }
    ip(data);
    if data.len() > 14 {
        ip(&data[14..]);
        if let Ok(a) = ArpPacket::new_checked(&data[14..]) {
            let _ = (a.oper(), a.sha(), a.spa(), a.tha(), a.tpa());
        }
    }
    if data.len() > 18 {
        ip(&data[18..]);
    }
    l4(data);
});
