//! The part of a connection shared by server and client sessions: chunk
//! decoding/encoding, the output buffer, byte counting with
//! acknowledgements, and the protocol control messages every peer must
//! answer the same way.

use bytes::{Bytes, BytesMut};

use crate::chunk::{ChunkDecoder, ChunkEncoder, MAX_CHUNK_SIZE};
use crate::error::Error;
use crate::message::{msg_type, Command, Message, UserControl, CSID_COMMAND, CSID_CONTROL};

/// Where a message came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub timestamp: u32,
    pub stream_id: u32,
}

#[derive(Debug)]
pub(crate) struct Conn {
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    /// Received bytes not yet consumed (handshake or chunks).
    input: BytesMut,
    output: BytesMut,
    received: u64,
    last_ack: u64,
    /// The peer's Window Acknowledgement Size; 0 until it sends one.
    peer_window: u32,
}

impl Conn {
    pub fn new(max_message_size: usize) -> Self {
        Self {
            decoder: ChunkDecoder::new(max_message_size),
            encoder: ChunkEncoder::new(),
            input: BytesMut::new(),
            output: BytesMut::new(),
            received: 0,
            last_ack: 0,
            peer_window: 0,
        }
    }

    /// Counts `n` bytes as received from the peer.
    pub fn count_received(&mut self, n: usize) {
        self.received += n as u64;
    }

    /// Moves all of `input` into the decode buffer (no copy when the decode
    /// buffer is empty, the common case).
    pub fn absorb(&mut self, input: &mut BytesMut) {
        self.input.unsplit(input.split());
    }

    /// The undecoded input, for the handshake to consume from.
    pub fn input_mut(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    pub fn buffered_input(&self) -> usize {
        self.input.len()
    }

    /// Decodes the next message. Protocol control messages are handled here
    /// and not returned. Malformed data messages are dropped (metadata is
    /// informational; closing a publisher over it would be worse).
    pub fn next_message(&mut self) -> Result<Option<(Meta, Message)>, Error> {
        while let Some(raw) = self.decoder.push(&mut self.input)? {
            let meta = Meta {
                timestamp: raw.timestamp,
                stream_id: raw.stream_id,
            };
            let msg = match Message::parse(raw.type_id, raw.payload) {
                Ok(msg) => msg,
                Err(_) if matches!(raw.type_id, msg_type::DATA_AMF0 | msg_type::DATA_AMF3) => {
                    continue
                }
                Err(e) => return Err(e.into()),
            };
            match msg {
                // Already applied by the decoder.
                Message::SetChunkSize(_) | Message::Abort(_) => {}
                // We never throttle on the peer's acknowledgements.
                Message::Acknowledgement(_) | Message::SetPeerBandwidth { .. } => {}
                Message::WindowAckSize(size) => self.peer_window = size,
                Message::UserControl(UserControl::PingRequest(ts)) => {
                    self.send(
                        CSID_CONTROL,
                        0,
                        0,
                        &Message::UserControl(UserControl::PingResponse(ts)),
                    );
                }
                other => return Ok(Some((meta, other))),
            }
        }
        Ok(None)
    }

    /// Sends an Acknowledgement if a window's worth of bytes arrived since
    /// the last one.
    pub fn maybe_ack(&mut self) {
        if self.peer_window > 0 && self.received - self.last_ack >= u64::from(self.peer_window) {
            self.last_ack = self.received;
            // The sequence number is defined modulo 2^32.
            let seq = self.received as u32;
            self.send(CSID_CONTROL, 0, 0, &Message::Acknowledgement(seq));
        }
    }

    pub fn chunk_size(&self) -> usize {
        self.encoder.chunk_size()
    }

    /// Sends Set Chunk Size and switches the encoder to it.
    pub fn set_chunk_size(&mut self, size: usize) {
        let size = size.clamp(1, MAX_CHUNK_SIZE);
        self.send(CSID_CONTROL, 0, 0, &Message::SetChunkSize(size as u32));
        self.encoder.set_chunk_size(size);
    }

    pub fn send(&mut self, csid: u32, timestamp: u32, stream_id: u32, msg: &Message) {
        let payload = msg.to_payload();
        self.encoder.write(
            &mut self.output,
            csid,
            timestamp,
            msg.type_id(),
            stream_id,
            &payload,
        );
    }

    /// Writes an already encoded media payload without copying it into a
    /// `Message` first.
    pub fn send_raw(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        self.encoder.write(
            &mut self.output,
            csid,
            timestamp,
            type_id,
            stream_id,
            payload,
        );
    }

    pub fn send_command(&mut self, stream_id: u32, command: Command) {
        self.send(CSID_COMMAND, 0, stream_id, &Message::Command(command));
    }

    pub fn output_mut(&mut self) -> &mut BytesMut {
        &mut self.output
    }

    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    pub fn take_output(&mut self) -> Bytes {
        self.output.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::encode_message;

    fn feed(conn: &mut Conn, bytes: &[u8]) {
        conn.count_received(bytes.len());
        conn.absorb(&mut BytesMut::from(bytes));
    }

    fn decode_output(conn: &mut Conn) -> Vec<Message> {
        let mut dec = ChunkDecoder::default();
        let mut out = BytesMut::from(&conn.take_output()[..]);
        let mut msgs = Vec::new();
        while let Some(raw) = dec.push(&mut out).unwrap() {
            msgs.push(Message::parse(raw.type_id, raw.payload).unwrap());
        }
        msgs
    }

    #[test]
    fn answers_ping_and_consumes_control() {
        let mut conn = Conn::new(1 << 20);
        let mut bytes = Vec::new();
        for msg in [
            Message::UserControl(UserControl::PingRequest(77)),
            Message::SetPeerBandwidth {
                size: 1,
                limit: crate::message::PeerBandwidthLimit::Hard,
            },
            Message::Acknowledgement(1),
            Message::Video(Bytes::from_static(b"v")),
        ] {
            bytes.extend_from_slice(&encode_message(
                128,
                2,
                0,
                msg.type_id(),
                0,
                &msg.to_payload(),
            ));
        }
        feed(&mut conn, &bytes);
        let (_, msg) = conn.next_message().unwrap().unwrap();
        assert_eq!(msg, Message::Video(Bytes::from_static(b"v")));
        assert!(conn.next_message().unwrap().is_none());
        assert_eq!(
            decode_output(&mut conn),
            vec![Message::UserControl(UserControl::PingResponse(77))]
        );
    }

    #[test]
    fn acknowledges_every_window() {
        let mut conn = Conn::new(1 << 20);
        let window = encode_message(
            128,
            2,
            0,
            msg_type::WINDOW_ACK_SIZE,
            0,
            &1000u32.to_be_bytes(),
        );
        feed(&mut conn, &window);
        assert!(conn.next_message().unwrap().is_none());
        conn.maybe_ack();
        assert!(!conn.has_output());
        let media = encode_message(128, 4, 0, msg_type::AUDIO, 1, &[0; 1000]);
        feed(&mut conn, &media);
        while conn.next_message().unwrap().is_some() {}
        conn.maybe_ack();
        let total = (window.len() + media.len()) as u32;
        assert_eq!(
            decode_output(&mut conn),
            vec![Message::Acknowledgement(total)]
        );
        conn.maybe_ack();
        assert!(!conn.has_output(), "no second ack within the window");
    }

    #[test]
    fn malformed_data_is_dropped_malformed_command_is_an_error() {
        let mut conn = Conn::new(1 << 20);
        let mut bytes = encode_message(128, 5, 0, msg_type::DATA_AMF0, 1, &[0x42]).to_vec();
        bytes.extend_from_slice(&encode_message(128, 4, 0, msg_type::AUDIO, 1, b"a"));
        bytes.extend_from_slice(&encode_message(
            128,
            3,
            0,
            msg_type::COMMAND_AMF0,
            0,
            &[0x42],
        ));
        feed(&mut conn, &bytes);
        assert!(matches!(
            conn.next_message(),
            Ok(Some((_, Message::Audio(_))))
        ));
        assert!(matches!(conn.next_message(), Err(Error::Message(_))));
    }

    #[test]
    fn set_chunk_size_switches_encoder() {
        let mut conn = Conn::new(1 << 20);
        conn.set_chunk_size(4096);
        assert_eq!(conn.chunk_size(), 4096);
        assert_eq!(decode_output(&mut conn), vec![Message::SetChunkSize(4096)]);
    }
}
