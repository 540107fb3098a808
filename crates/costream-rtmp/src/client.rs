//! The sans-IO client side of one RTMP connection, used to play from or
//! publish to an RTMP server (load testing, pushing to a CDN).
//!
//! Flow: handshake → `connect` → [`ClientEvent::Connected`]; then
//! `createStream` → `play`/`publish` → [`ClientEvent::Playing`] /
//! [`ClientEvent::Publishing`]. Publishing mirrors ffmpeg: Set Chunk Size,
//! `releaseStream`, `FCPublish`, `createStream`, `publish`.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::amf0::{self, Amf0Value};
use crate::chunk::DEFAULT_MAX_MESSAGE_SIZE;
use crate::conn::{Conn, Meta};
use crate::error::Error;
use crate::handshake::ClientHandshake;
use crate::message::{
    msg_type, Command, Message, UserControl, CSID_AUDIO, CSID_CONTROL, CSID_DATA, CSID_VIDEO,
};

/// Client session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// App name sent in `connect` (may carry a `?query`).
    pub app: String,
    /// tcUrl sent in `connect`, e.g. `rtmp://host/live`.
    pub tc_url: String,
    /// Outgoing chunk size set before publishing (4096 like ffmpeg/OBS).
    pub chunk_size: usize,
}

/// What the client observed.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// NetStream.Play.Start received.
    Playing,
    /// NetStream.Publish.Start received: media may be sent.
    Publishing,
    /// Any other status-level `onStatus` (Play.Reset, Play.Stop,
    /// Play.UnpublishNotify...).
    Status {
        level: String,
        code: String,
        description: String,
    },
    /// `_error` for connect or createStream, or an error-level `onStatus`.
    /// `code` is empty if the server sent none.
    Error {
        code: String,
        description: String,
    },
    Audio {
        timestamp: u32,
        payload: Bytes,
    },
    Video {
        timestamp: u32,
        payload: Bytes,
    },
    Data {
        timestamp: u32,
        values: Vec<Amf0Value>,
    },
}

#[derive(Debug, Clone)]
enum Intent {
    Play(String),
    Publish(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transaction {
    Connect,
    CreateStream,
    Other,
}

/// Client side of one RTMP connection; same feed / poll_event /
/// take_output shape as [`ServerSession`](crate::ServerSession).
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    handshake: ClientHandshake,
    conn: Conn,
    events: VecDeque<ClientEvent>,
    connected: bool,
    /// Requested before `connect` completed; started on Connected.
    queued: Option<Intent>,
    /// Started; waiting for (or past) createStream's result.
    active: Option<Intent>,
    stream_id: Option<u32>,
    publishing: bool,
    next_transaction: f64,
    transactions: Vec<(f64, Transaction)>,
}

impl ClientSession {
    /// Starts a session; C0+C1 is already in the output.
    pub fn new(config: ClientConfig) -> Self {
        let mut handshake = ClientHandshake::new();
        let mut conn = Conn::new(DEFAULT_MAX_MESSAGE_SIZE);
        conn.output_mut().extend_from_slice(&handshake.start());
        Self {
            config,
            handshake,
            conn,
            events: VecDeque::new(),
            connected: false,
            queued: None,
            active: None,
            stream_id: None,
            publishing: false,
            next_transaction: 1.0,
            transactions: Vec::new(),
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
            self.send_connect();
        }
        while let Some((meta, msg)) = self.conn.next_message()? {
            self.handle(meta, msg);
        }
        Ok(())
    }

    /// The next event, in arrival order.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the socket (empty if none).
    pub fn take_output(&mut self) -> Bytes {
        self.conn.take_output()
    }

    pub fn has_output(&self) -> bool {
        self.conn.has_output()
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    pub fn is_publishing(&self) -> bool {
        self.publishing
    }

    /// The message stream id from createStream, once known.
    pub fn stream_id(&self) -> Option<u32> {
        self.stream_id
    }

    /// The outgoing chunk size.
    pub fn chunk_size(&self) -> usize {
        self.conn.chunk_size()
    }

    /// createStream then play `name` (may carry `?query`). May be called
    /// before Connected; it then starts once connected.
    pub fn create_stream_and_play(&mut self, name: &str) {
        self.request(Intent::Play(name.to_owned()));
    }

    /// Set Chunk Size, releaseStream, FCPublish, createStream then publish
    /// `name` as `live`. May be called before Connected.
    pub fn create_stream_and_publish(&mut self, name: &str) {
        self.request(Intent::Publish(name.to_owned()));
    }

    /// Sends an audio message (FLV audio tag body). Only while publishing.
    pub fn send_audio(&mut self, timestamp: u32, payload: &[u8]) -> Result<(), Error> {
        let stream_id = self.publishing_stream()?;
        self.conn
            .send_raw(CSID_AUDIO, timestamp, msg_type::AUDIO, stream_id, payload);
        Ok(())
    }

    /// Sends a video message (FLV video tag body). Only while publishing.
    pub fn send_video(&mut self, timestamp: u32, payload: &[u8]) -> Result<(), Error> {
        let stream_id = self.publishing_stream()?;
        self.conn
            .send_raw(CSID_VIDEO, timestamp, msg_type::VIDEO, stream_id, payload);
        Ok(())
    }

    /// Sends `@setDataFrame` followed by `values`, e.g.
    /// `["onMetaData", EcmaArray(...)]`. Only while publishing.
    pub fn send_metadata(&mut self, values: &[Amf0Value]) -> Result<(), Error> {
        let stream_id = self.publishing_stream()?;
        let mut payload = BytesMut::new();
        amf0::encode_value(&Amf0Value::from("@setDataFrame"), &mut payload);
        amf0::encode(values, &mut payload);
        self.conn
            .send_raw(CSID_DATA, 0, msg_type::DATA_AMF0, stream_id, &payload);
        Ok(())
    }

    /// Ends publishing/playing politely: FCUnpublish (when publishing) and
    /// deleteStream. Close the socket after writing the output.
    pub fn close(&mut self) {
        let Some(stream_id) = self.stream_id.take() else {
            return;
        };
        if let (true, Some(Intent::Publish(name))) = (self.publishing, self.active.clone()) {
            self.send_command(0, "FCUnpublish", vec![Amf0Value::from(name)]);
        }
        self.publishing = false;
        let delete = Command::new(
            "deleteStream",
            0.0,
            Amf0Value::Null,
            vec![Amf0Value::from(f64::from(stream_id))],
        );
        self.conn.send_command(0, delete);
    }

    fn publishing_stream(&self) -> Result<u32, Error> {
        match self.stream_id {
            Some(id) if self.publishing => Ok(id),
            _ => Err(Error::NotPublishing),
        }
    }

    fn request(&mut self, intent: Intent) {
        if self.connected {
            self.start(intent);
        } else {
            self.queued = Some(intent);
        }
    }

    fn start(&mut self, intent: Intent) {
        if let Intent::Publish(name) = &intent {
            if self.config.chunk_size != self.conn.chunk_size() {
                self.conn.set_chunk_size(self.config.chunk_size);
            }
            let name = Amf0Value::from(name.as_str());
            self.send_request("releaseStream", vec![name.clone()], Transaction::Other);
            self.send_request("FCPublish", vec![name], Transaction::Other);
        }
        self.send_request("createStream", vec![], Transaction::CreateStream);
        self.active = Some(intent);
    }

    fn send_connect(&mut self) {
        let object = Amf0Value::object([
            ("app", Amf0Value::from(self.config.app.as_str())),
            ("type", Amf0Value::from("nonprivate")),
            (
                "flashVer",
                Amf0Value::from("FMLE/3.0 (compatible; costream)"),
            ),
            ("tcUrl", Amf0Value::from(self.config.tc_url.as_str())),
            ("fpad", Amf0Value::from(false)),
            ("capabilities", Amf0Value::from(15.0)),
            ("audioCodecs", Amf0Value::from(4071.0)),
            ("videoCodecs", Amf0Value::from(252.0)),
            ("videoFunction", Amf0Value::from(1.0)),
        ]);
        let id = self.next_transaction_id(Transaction::Connect);
        self.conn
            .send_command(0, Command::new("connect", id, object, vec![]));
    }

    fn send_request(&mut self, name: &str, args: Vec<Amf0Value>, kind: Transaction) {
        let id = self.next_transaction_id(kind);
        self.conn
            .send_command(0, Command::new(name, id, Amf0Value::Null, args));
    }

    /// A command that expects no reply (transaction id 0).
    fn send_command(&mut self, stream_id: u32, name: &str, args: Vec<Amf0Value>) {
        self.conn
            .send_command(stream_id, Command::new(name, 0.0, Amf0Value::Null, args));
    }

    fn next_transaction_id(&mut self, kind: Transaction) -> f64 {
        let id = self.next_transaction;
        self.next_transaction += 1.0;
        self.transactions.push((id, kind));
        id
    }

    fn handle(&mut self, meta: Meta, msg: Message) {
        let timestamp = meta.timestamp;
        let event = match msg {
            Message::Command(cmd) => return self.handle_command(cmd),
            Message::Audio(payload) => ClientEvent::Audio { timestamp, payload },
            Message::Video(payload) => ClientEvent::Video { timestamp, payload },
            Message::Data(values) => ClientEvent::Data { timestamp, values },
            _ => return,
        };
        self.events.push_back(event);
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd.name.as_str() {
            "_result" => self.on_response(&cmd, false),
            "_error" => self.on_response(&cmd, true),
            "onStatus" => self.on_status(&cmd),
            // onBWDone, onFCPublish, |RtmpSampleAccess...: informational.
            _ => {}
        }
    }

    fn on_response(&mut self, cmd: &Command, is_error: bool) {
        let Some(pos) = self
            .transactions
            .iter()
            .position(|(id, _)| *id == cmd.transaction_id)
        else {
            return;
        };
        let (_, kind) = self.transactions.remove(pos);
        // releaseStream/FCPublish are advisory: some servers answer them
        // with `_error` (nothing to release), which must not look fatal.
        if is_error && kind != Transaction::Other {
            let info = cmd.arg(0);
            self.events.push_back(ClientEvent::Error {
                code: info_str(info, "code"),
                description: info_str(info, "description"),
            });
            return;
        }
        match kind {
            Transaction::Connect => {
                self.connected = true;
                self.events.push_back(ClientEvent::Connected);
                if let Some(intent) = self.queued.take() {
                    self.start(intent);
                }
            }
            Transaction::CreateStream => self.on_stream_created(cmd),
            Transaction::Other => {}
        }
    }

    fn on_stream_created(&mut self, cmd: &Command) {
        let id = cmd.arg(0).and_then(Amf0Value::as_f64).unwrap_or(-1.0);
        if !(1.0..=f64::from(u32::MAX)).contains(&id) {
            self.events.push_back(ClientEvent::Error {
                code: String::new(),
                description: "createStream returned no stream id".into(),
            });
            return;
        }
        let stream_id = id as u32;
        self.stream_id = Some(stream_id);
        match self.active.clone() {
            Some(Intent::Play(name)) => {
                let args = vec![Amf0Value::from(name), Amf0Value::from(-2.0)];
                self.send_command(stream_id, "play", args);
                let buffer = UserControl::SetBufferLength {
                    stream_id,
                    buffer_ms: 3000,
                };
                self.conn
                    .send(CSID_CONTROL, 0, 0, &Message::UserControl(buffer));
            }
            Some(Intent::Publish(name)) => {
                let args = vec![Amf0Value::from(name), Amf0Value::from("live")];
                self.send_command(stream_id, "publish", args);
            }
            None => {}
        }
    }

    fn on_status(&mut self, cmd: &Command) {
        let info = cmd.arg(0);
        let level = info_str(info, "level");
        let code = info_str(info, "code");
        let description = info_str(info, "description");
        let event = match code.as_str() {
            "NetStream.Publish.Start" => {
                self.publishing = true;
                ClientEvent::Publishing
            }
            "NetStream.Play.Start" => ClientEvent::Playing,
            _ if level == "error" => ClientEvent::Error { code, description },
            _ => ClientEvent::Status {
                level,
                code,
                description,
            },
        };
        self.events.push_back(event);
    }
}

fn info_str(info: Option<&Amf0Value>, key: &str) -> String {
    info.and_then(|i| i.get(key))
        .and_then(Amf0Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests;
