//! (e) The UDP port answers plain STUN binding requests.

use std::time::Duration;

use super::harness::{bind, run_until, HostSide};
use crate::stun_server::{binding_request, parse_binding_success};

#[test]
fn plain_stun_binding_gets_xor_mapped_address() {
    let mut host = HostSide::new();
    let (client, client_addr) = bind();
    let tid = *b"costream-tid";
    client
        .send_to(&binding_request(&tid), host.addr)
        .expect("send");
    let mut reply = None;
    let mut buf = [0u8; 512];
    run_until(&mut host, &mut [], Duration::from_secs(5), |_, _| {
        if let Ok((n, from)) = client.recv_from(&mut buf) {
            reply = Some((buf[..n].to_vec(), from));
        }
        reply.is_some()
    });
    let (reply, from) = reply.expect("a STUN reply");
    assert_eq!(from, host.addr);
    assert_eq!(parse_binding_success(&reply, &tid), Some(client_addr));
    assert_eq!(host.host.counters().stun_replies, 1);
    assert_eq!(host.host.session_count(), 0);
}
