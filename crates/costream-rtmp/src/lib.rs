//! Sans-IO RTMP for costream: no sockets, no async. The server binary
//! moves bytes between sockets and the state machines here.
//!
//! # Layers
//!
//! * [`amf0`]: [`Amf0Value`], [`amf0::decode_all`], [`amf0::encode`],
//!   [`amf0::encode_value`].
//! * [`handshake`]: [`ServerHandshake`], [`ClientHandshake`] (simple
//!   handshake, version 3).
//! * [`chunk`]: [`ChunkDecoder`] (`push` → [`RawMessage`]), [`ChunkEncoder`]
//!   and the free function [`encode_message`], which encodes a message
//!   independently of connection state (type-0 header + type-3
//!   continuations) so a media frame can be encoded once and written to
//!   every viewer.
//! * [`message`]: [`Message`], [`UserControl`], [`Command`], the type ids in
//!   [`msg_type`] and the chunk stream ids [`CSID_CONTROL`] (2),
//!   [`CSID_COMMAND`] (3), [`CSID_AUDIO`] (4), [`CSID_DATA`] (5),
//!   [`CSID_VIDEO`] (6).
//! * [`ServerSession`] / [`ClientSession`]: connection state machines.
//!
//! # Server I/O loop
//!
//! ```no_run
//! use bytes::BytesMut;
//! use costream_rtmp::{encode_message, msg_type, Error, ServerConfig, ServerEvent, ServerSession, CSID_VIDEO};
//! # fn read_socket(_: &mut BytesMut) -> usize { 0 }
//! # fn write_socket(_: &[u8]) {}
//! # fn main() -> Result<(), Error> {
//! let mut s = ServerSession::new(ServerConfig {
//!     chunk_size: 4096,
//!     window_ack_size: 2_500_000,
//!     max_message_size: 16 << 20,
//! });
//! let mut buf = BytesMut::with_capacity(64 * 1024);
//! while read_socket(&mut buf) > 0 {
//!     s.feed(&mut buf)?; // Err => protocol violation, close the connection
//!     while let Some(event) = s.poll_event() {
//!         match event {
//!             ServerEvent::Connect { .. } => s.accept_connect()?,
//!             ServerEvent::Publish { stream_id, .. } => s.accept_publish(stream_id)?,
//!             ServerEvent::Play { stream_id, .. } => s.accept_play(stream_id)?,
//!             _ => {}
//!         }
//!     }
//!     write_socket(&s.take_output());
//! }
//! // Media to a player: encode once per (chunk size, stream id), write as is.
//! let frame = encode_message(s.chunk_size(), CSID_VIDEO, 40, msg_type::VIDEO, 1, b"\x17\x01...");
//! write_socket(&frame);
//! # Ok(())
//! # }
//! ```
//!
//! After a `Connect`, `Publish` or `Play` event the session processes no
//! more input until the matching `accept_*`/`reject_*` call (which then
//! resumes processing, hence its `Result`), so replies keep request order.
//!
//! Write `take_output()` before any pre-encoded media, so that e.g. the
//! Set Chunk Size and the play replies reach the player first. Media bytes
//! must be encoded with the player's [`ServerSession::chunk_size`] and its
//! play `stream_id` (normally 1), so one encoding serves all viewers with
//! the same pair.
//!
//! Media payloads in events are `Bytes` that may share the read buffer
//! passed to `feed` (no copy for single-chunk messages).
//!
//! # Client
//!
//! [`ClientSession::new`] puts C0+C1 in the output; drive it with the same
//! `feed` / `poll_event` / `take_output` loop. Call
//! [`ClientSession::create_stream_and_publish`] or
//! [`ClientSession::create_stream_and_play`] (before or after
//! [`ClientEvent::Connected`]); after [`ClientEvent::Publishing`] use
//! `send_audio` / `send_video` / `send_metadata`.
//!
//! # Hostile input
//!
//! Every parser bounds what it reads: messages (default 16 MiB), incoming
//! chunk size (≤ 16 MiB), chunk streams (64 assembling, 256 tracked), AMF
//! nesting (32) and value count (65 536). Errors mean "close the
//! connection"; nothing panics on peer data.

pub mod amf0;
pub mod chunk;
mod client;
mod conn;
mod error;
pub mod handshake;
pub mod message;
mod query;
mod server;

pub use amf0::{Amf0Value, MAX_DEPTH as AMF0_MAX_DEPTH};
pub use chunk::{
    encode_message, encoded_len, write_message, ChunkDecoder, ChunkEncoder, RawMessage,
    DEFAULT_CHUNK_SIZE, DEFAULT_MAX_MESSAGE_SIZE, MAX_CHUNK_SIZE,
};
pub use client::{ClientConfig, ClientEvent, ClientSession};
pub use error::{AmfError, ChunkError, Error, HandshakeError, MessageError};
pub use handshake::{ClientHandshake, HandshakeProgress, ServerHandshake};
pub use message::{
    msg_type, status_object, Command, Message, PeerBandwidthLimit, UserControl, CSID_AUDIO,
    CSID_COMMAND, CSID_CONTROL, CSID_DATA, CSID_VIDEO,
};
pub use server::{ServerConfig, ServerEvent, ServerSession};
