//! End-to-end tests: real UDP sockets on 127.0.0.1, str0m clients as
//! publishers and viewers, the host in the middle.

mod bad_input;
mod harness;
mod lifecycle;
mod play;
mod publish;
mod renegotiate;
mod stun;

/// The server moves the host into its UDP task.
#[test]
fn host_is_send() {
    fn is_send<T: Send>() {}
    is_send::<crate::RtcHost>();
}
