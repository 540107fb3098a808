//! The sans-IO server side of one RTMP connection.
//!
//! The session answers the protocol plumbing itself (handshake, chunk
//! sizes, acknowledgements, pings, createStream, FCPublish...) and surfaces
//! only what the application must decide or consume as [`ServerEvent`]s.
//! After a `Connect`, `Publish` or `Play` event no further input is
//! processed until the matching `accept_*`/`reject_*` call, so replies go
//! out in request order even when the client pipelines commands.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::amf0::{self, Amf0Value};
use crate::chunk::DEFAULT_MAX_MESSAGE_SIZE;
use crate::conn::{Conn, Meta};
use crate::error::Error;
use crate::handshake::ServerHandshake;
use crate::message::{
    msg_type, status_object, Command, Message, PeerBandwidthLimit, UserControl, CSID_CONTROL,
    CSID_DATA,
};

/// Most message streams (createStream) one connection may hold.
const MAX_STREAMS: usize = 64;

/// Server session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Outgoing chunk size announced in `accept_connect` (4096 is what
    /// most servers use; media is encoded with it).
    pub chunk_size: usize,
    /// Window Acknowledgement Size and peer bandwidth sent to the client.
    pub window_ack_size: u32,
    /// Largest incoming message accepted.
    pub max_message_size: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// What the application must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `connect`: answer with [`ServerSession::accept_connect`] or
    /// [`ServerSession::reject_connect`].
    Connect {
        /// App name without query and trailing `/`.
        app: String,
        tc_url: Option<String>,
        /// Query from the app (`live?token=x`) or, failing that, the tcUrl.
        query: Option<String>,
        transaction_id: f64,
    },
    /// `publish`: answer with [`ServerSession::accept_publish`] or
    /// [`ServerSession::reject_publish`].
    Publish {
        stream_id: u32,
        /// Stream name without query.
        name: String,
        query: Option<String>,
        /// `live`, `record` or `append`.
        publish_type: String,
    },
    /// `play`: answer with [`ServerSession::accept_play`] or
    /// [`ServerSession::reject_play`].
    Play {
        stream_id: u32,
        name: String,
        query: Option<String>,
        /// Requested start in ms (-2: live or recorded, -1: live only).
        start: f64,
    },
    /// Audio from an accepted publisher: an FLV audio tag body.
    Audio {
        stream_id: u32,
        timestamp: u32,
        payload: Bytes,
    },
    /// Video from an accepted publisher: an FLV video tag body.
    Video {
        stream_id: u32,
        timestamp: u32,
        payload: Bytes,
    },
    /// A data message from an accepted publisher, with `@setDataFrame`
    /// removed: e.g. `["onMetaData", {...}]`.
    Data {
        stream_id: u32,
        timestamp: u32,
        values: Vec<Amf0Value>,
    },
    /// `deleteStream`: the stream (publishing or playing) is gone.
    DeleteStream { stream_id: u32 },
    /// `closeStream`: publishing/playing on the stream stopped.
    CloseStream { stream_id: u32 },
    /// `FCUnpublish` (name without query); usually followed by
    /// `DeleteStream`.
    FcUnpublish { name: String },
}

#[derive(Debug)]
enum Pending {
    Connect { transaction_id: f64 },
    Publish { stream_id: u32 },
    Play { stream_id: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamState {
    Idle,
    Publishing,
    Playing,
}

#[derive(Debug)]
struct StreamEntry {
    id: u32,
    state: StreamState,
    /// Name of the last publish/play, for status descriptions.
    name: String,
}

/// Server side of one RTMP connection. See the crate docs for the I/O loop.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    handshake: ServerHandshake,
    conn: Conn,
    events: VecDeque<ServerEvent>,
    pending: Option<Pending>,
    connect_seen: bool,
    connected: bool,
    streams: Vec<StreamEntry>,
    next_stream_id: u32,
}

impl ServerSession {
    pub fn new(config: ServerConfig) -> Self {
        Self {
            config,
            handshake: ServerHandshake::new(),
            conn: Conn::new(config.max_message_size),
            events: VecDeque::new(),
            pending: None,
            connect_seen: false,
            connected: false,
            streams: Vec::new(),
            next_stream_id: 1,
        }
    }

    /// Consumes all bytes received from the socket. An error means a
    /// protocol violation: close the connection.
    pub fn feed(&mut self, input: &mut BytesMut) -> Result<(), Error> {
        let before = input.len();
        let result = self.feed_inner(input);
        self.conn.count_received(before - input.len());
        if result.is_ok() {
            self.conn.maybe_ack();
        }
        result
    }

    fn feed_inner(&mut self, input: &mut BytesMut) -> Result<(), Error> {
        self.conn.absorb(input);
        if !self.handshake.is_done() {
            let progress = self.handshake.feed(self.conn.input_mut())?;
            self.conn.output_mut().extend_from_slice(&progress.send);
            if !progress.done {
                return Ok(());
            }
        }
        if self.pending.is_some() {
            let buffered = self.conn.buffered_input();
            if buffered > self.config.max_message_size {
                return Err(Error::InputOverflow(buffered));
            }
            return Ok(());
        }
        self.process()
    }

    /// The next event, in arrival order.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the socket (empty if none).
    pub fn take_output(&mut self) -> Bytes {
        self.conn.take_output()
    }

    pub fn has_output(&self) -> bool {
        self.conn.has_output()
    }

    /// The outgoing chunk size: media written directly to the socket must
    /// be encoded with it (128 until `accept_connect`, then
    /// `config.chunk_size`).
    pub fn chunk_size(&self) -> usize {
        self.conn.chunk_size()
    }

    pub fn is_handshake_done(&self) -> bool {
        self.handshake.is_done()
    }

    /// Whether `connect` was accepted.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Accepts the pending `connect`: Window Ack Size, Set Peer Bandwidth,
    /// Set Chunk Size and `_result` NetConnection.Connect.Success. Then
    /// processes input that arrived meanwhile (hence the `Result`).
    pub fn accept_connect(&mut self) -> Result<(), Error> {
        let transaction_id = self.take_pending_connect()?;
        self.connected = true;
        let window = self.config.window_ack_size;
        self.conn
            .send(CSID_CONTROL, 0, 0, &Message::WindowAckSize(window));
        self.conn.send(
            CSID_CONTROL,
            0,
            0,
            &Message::SetPeerBandwidth {
                size: window,
                limit: PeerBandwidthLimit::Dynamic,
            },
        );
        self.conn.set_chunk_size(self.config.chunk_size);
        let properties = Amf0Value::object([
            ("fmsVer", Amf0Value::from("FMS/3,0,1,123")),
            ("capabilities", Amf0Value::from(31.0)),
        ]);
        let mut info = status_object(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
        );
        if let Amf0Value::Object(props) = &mut info {
            props.push(("objectEncoding".into(), Amf0Value::from(0.0)));
        }
        self.conn.send_command(
            0,
            Command::new("_result", transaction_id, properties, vec![info]),
        );
        self.process()
    }

    /// Rejects the pending `connect` with `_error`
    /// NetConnection.Connect.Rejected. Close the connection afterwards.
    pub fn reject_connect(&mut self, description: &str) -> Result<(), Error> {
        let transaction_id = self.take_pending_connect()?;
        let info = status_object("error", "NetConnection.Connect.Rejected", description);
        self.conn.send_command(
            0,
            Command::new("_error", transaction_id, Amf0Value::Null, vec![info]),
        );
        self.process()
    }

    /// Accepts the pending `publish` on `stream_id`: onStatus
    /// NetStream.Publish.Start. Media then arrives as events.
    pub fn accept_publish(&mut self, stream_id: u32) -> Result<(), Error> {
        self.take_pending_stream(stream_id, false)?;
        let name = self.set_state(stream_id, StreamState::Publishing);
        self.send_status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            &format!("{name} is now published."),
        );
        self.process()
    }

    /// Rejects the pending `publish` with an error-level onStatus, e.g.
    /// `NetStream.Publish.BadName` or `NetStream.Publish.Unauthorized`.
    pub fn reject_publish(
        &mut self,
        stream_id: u32,
        code: &str,
        description: &str,
    ) -> Result<(), Error> {
        self.take_pending_stream(stream_id, false)?;
        self.send_status(stream_id, "error", code, description);
        self.process()
    }

    /// Accepts the pending `play`: StreamBegin, onStatus NetStream.Play.Reset
    /// and NetStream.Play.Start, and `|RtmpSampleAccess`. Then write
    /// metadata ([`send_data`](Self::send_data)) and media.
    pub fn accept_play(&mut self, stream_id: u32) -> Result<(), Error> {
        self.take_pending_stream(stream_id, true)?;
        let name = self.set_state(stream_id, StreamState::Playing);
        self.conn.send(
            CSID_CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::StreamBegin(stream_id)),
        );
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Reset",
            &format!("Playing and resetting {name}."),
        );
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {name}."),
        );
        self.send_data(
            stream_id,
            &[
                Amf0Value::from("|RtmpSampleAccess"),
                Amf0Value::from(true),
                Amf0Value::from(true),
            ],
        );
        self.process()
    }

    /// Rejects the pending `play`, e.g. `NetStream.Play.StreamNotFound`.
    pub fn reject_play(
        &mut self,
        stream_id: u32,
        code: &str,
        description: &str,
    ) -> Result<(), Error> {
        self.take_pending_stream(stream_id, true)?;
        self.send_status(stream_id, "error", code, description);
        self.process()
    }

    /// Tells a player the stream ended (publisher left): StreamEOF and
    /// onStatus NetStream.Play.UnpublishNotify and NetStream.Play.Stop.
    pub fn send_play_end(&mut self, stream_id: u32) {
        let name = self.set_state(stream_id, StreamState::Idle);
        self.conn.send(
            CSID_CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::StreamEof(stream_id)),
        );
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.UnpublishNotify",
            &format!("{name} is now unpublished."),
        );
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Stop",
            &format!("Stopped playing {name}."),
        );
    }

    /// Sends an `onStatus` on `stream_id`.
    pub fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.conn
            .send_command(stream_id, Command::on_status(level, code, description));
    }

    /// Sends a data message (AMF0, timestamp 0, [`CSID_DATA`]), e.g.
    /// `["onMetaData", {...}]`.
    pub fn send_data(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let mut payload = BytesMut::new();
        amf0::encode(values, &mut payload);
        self.conn
            .send_raw(CSID_DATA, 0, msg_type::DATA_AMF0, stream_id, &payload);
    }

    /// Sends any message. Media for many viewers is better encoded once
    /// with [`encode_message`](crate::encode_message) and written directly.
    pub fn send_message(&mut self, csid: u32, timestamp: u32, stream_id: u32, message: &Message) {
        self.conn.send(csid, timestamp, stream_id, message);
    }

    fn take_pending_connect(&mut self) -> Result<f64, Error> {
        match self.pending.take() {
            Some(Pending::Connect { transaction_id }) => Ok(transaction_id),
            other => {
                self.pending = other;
                Err(Error::NoPendingRequest("connect"))
            }
        }
    }

    fn take_pending_stream(&mut self, stream_id: u32, play: bool) -> Result<(), Error> {
        match self.pending.take() {
            Some(Pending::Play { stream_id: id }) if play && id == stream_id => Ok(()),
            Some(Pending::Publish { stream_id: id }) if !play && id == stream_id => Ok(()),
            other => {
                self.pending = other;
                Err(Error::NoPendingRequest(if play {
                    "play"
                } else {
                    "publish"
                }))
            }
        }
    }

    /// Sets a stream's state and returns its name (empty if unknown).
    fn set_state(&mut self, stream_id: u32, state: StreamState) -> String {
        match self.streams.iter_mut().find(|s| s.id == stream_id) {
            Some(entry) => {
                entry.state = state;
                entry.name.clone()
            }
            None => String::new(),
        }
    }

    fn is_publishing(&self, stream_id: u32) -> bool {
        self.streams
            .iter()
            .any(|s| s.id == stream_id && s.state == StreamState::Publishing)
    }

    fn process(&mut self) -> Result<(), Error> {
        while self.pending.is_none() {
            let Some((meta, msg)) = self.conn.next_message()? else {
                break;
            };
            self.handle(meta, msg);
        }
        Ok(())
    }

    fn handle(&mut self, meta: Meta, msg: Message) {
        let Meta {
            stream_id,
            timestamp,
        } = meta;
        // Media is only accepted on streams the application accepted for
        // publishing.
        let event = match msg {
            Message::Command(cmd) => return self.handle_command(stream_id, cmd),
            Message::Audio(payload) => ServerEvent::Audio {
                stream_id,
                timestamp,
                payload,
            },
            Message::Video(payload) => ServerEvent::Video {
                stream_id,
                timestamp,
                payload,
            },
            Message::Data(mut values) => {
                if values.first().and_then(Amf0Value::as_str) == Some("@setDataFrame") {
                    values.remove(0);
                }
                ServerEvent::Data {
                    stream_id,
                    timestamp,
                    values,
                }
            }
            _ => return,
        };
        if self.is_publishing(stream_id) {
            self.events.push_back(event);
        }
    }
}

mod commands;
#[cfg(test)]
mod tests;
