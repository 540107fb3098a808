//! Command handling for [`ServerSession`]: what each NetConnection /
//! NetStream command does, which ones the session answers itself and which
//! become events.

use super::{Pending, ServerEvent, ServerSession, StreamEntry, StreamState, MAX_STREAMS};
use crate::amf0::Amf0Value;
use crate::message::{status_object, Command};
use crate::query::{split_app, split_query};

impl ServerSession {
    pub(super) fn handle_command(&mut self, stream_id: u32, cmd: Command) {
        if cmd.name == "connect" {
            return self.on_connect(cmd);
        }
        if !self.connected {
            return;
        }
        match cmd.name.as_str() {
            "createStream" => self.on_create_stream(&cmd),
            "publish" => self.on_publish(stream_id, &cmd),
            "play" => self.on_play(stream_id, &cmd),
            "deleteStream" => self.on_delete_stream(&cmd),
            "closeStream" => {
                if self.streams.iter().any(|s| s.id == stream_id) {
                    self.set_state(stream_id, StreamState::Idle);
                    self.events
                        .push_back(ServerEvent::CloseStream { stream_id });
                }
            }
            "FCPublish" => {
                let name = cmd.arg_str(0).unwrap_or_default();
                let info = status_object("status", "NetStream.Publish.Start", name);
                self.conn.send_command(
                    0,
                    Command::new("onFCPublish", 0.0, Amf0Value::Null, vec![info]),
                );
                self.reply_generic(&cmd);
            }
            "FCUnpublish" => {
                let (name, _) = split_query(cmd.arg_str(0).unwrap_or_default());
                let info = status_object("status", "NetStream.Unpublish.Success", &name);
                self.conn.send_command(
                    0,
                    Command::new("onFCUnpublish", 0.0, Amf0Value::Null, vec![info]),
                );
                self.events.push_back(ServerEvent::FcUnpublish { name });
                self.reply_generic(&cmd);
            }
            // Live streams have no length; ffmpeg expects a number here.
            "getStreamLength" => self.reply_result(&cmd, vec![Amf0Value::from(0.0)]),
            // releaseStream, _checkbw and anything unknown.
            _ => self.reply_generic(&cmd),
        }
    }

    /// Requests expecting a reply (transaction id > 0) get a bare `_result`
    /// so clients that wait for one do not stall. Replies and notifications
    /// from the client are never answered.
    fn reply_generic(&mut self, cmd: &Command) {
        self.reply_result(cmd, vec![]);
    }

    fn reply_result(&mut self, cmd: &Command, args: Vec<Amf0Value>) {
        let is_reply = cmd.name.starts_with('_') || cmd.name.starts_with("on");
        if cmd.transaction_id > 0.0 && !is_reply {
            self.conn.send_command(
                0,
                Command::new("_result", cmd.transaction_id, Amf0Value::Null, args),
            );
        }
    }

    fn on_connect(&mut self, cmd: Command) {
        // A second connect on the same connection is ignored.
        if self.connect_seen {
            return;
        }
        self.connect_seen = true;
        let tc_url = cmd
            .object
            .get("tcUrl")
            .and_then(Amf0Value::as_str)
            .map(str::to_owned);
        let raw_app = cmd
            .object
            .get("app")
            .and_then(Amf0Value::as_str)
            .unwrap_or_default();
        let (app, query) = split_app(raw_app, tc_url.as_deref());
        self.pending = Some(Pending::Connect {
            transaction_id: cmd.transaction_id,
        });
        self.events.push_back(ServerEvent::Connect {
            app,
            tc_url,
            query,
            transaction_id: cmd.transaction_id,
        });
    }

    fn on_create_stream(&mut self, cmd: &Command) {
        if self.streams.len() >= MAX_STREAMS {
            let info = status_object("error", "NetConnection.Call.Failed", "Too many streams.");
            self.conn.send_command(
                0,
                Command::new("_error", cmd.transaction_id, Amf0Value::Null, vec![info]),
            );
            return;
        }
        let id = self.next_stream_id;
        self.next_stream_id = self.next_stream_id.wrapping_add(1).max(1);
        self.streams.push(StreamEntry {
            id,
            state: StreamState::Idle,
            name: String::new(),
        });
        let result = Command::new(
            "_result",
            cmd.transaction_id,
            Amf0Value::Null,
            vec![Amf0Value::from(f64::from(id))],
        );
        self.conn.send_command(0, result);
    }

    /// Prepares `stream_id` for a publish/play named `name`; false (after
    /// telling the client) if the stream cannot take it.
    fn claim_stream(&mut self, stream_id: u32, name: &str, failure_code: &str) -> bool {
        let room = self.streams.len() < MAX_STREAMS;
        let entry = self.streams.iter_mut().find(|s| s.id == stream_id);
        match entry {
            Some(entry) if entry.state == StreamState::Idle => {
                entry.name = name.to_owned();
                true
            }
            // Tolerate clients that skip createStream and assume id 1.
            None if stream_id != 0 && room => {
                self.streams.push(StreamEntry {
                    id: stream_id,
                    state: StreamState::Idle,
                    name: name.to_owned(),
                });
                true
            }
            _ => {
                self.send_status(stream_id, "error", failure_code, "Stream is not available.");
                false
            }
        }
    }

    fn on_publish(&mut self, stream_id: u32, cmd: &Command) {
        let (name, query) = split_query(cmd.arg_str(0).unwrap_or_default());
        if !self.claim_stream(stream_id, &name, "NetStream.Publish.BadConnection") {
            return;
        }
        let publish_type = cmd.arg_str(1).unwrap_or("live").to_owned();
        self.pending = Some(Pending::Publish { stream_id });
        self.events.push_back(ServerEvent::Publish {
            stream_id,
            name,
            query,
            publish_type,
        });
    }

    fn on_play(&mut self, stream_id: u32, cmd: &Command) {
        let (name, query) = split_query(cmd.arg_str(0).unwrap_or_default());
        if !self.claim_stream(stream_id, &name, "NetStream.Play.Failed") {
            return;
        }
        let start = cmd.arg(1).and_then(Amf0Value::as_f64).unwrap_or(-2.0);
        self.pending = Some(Pending::Play { stream_id });
        self.events.push_back(ServerEvent::Play {
            stream_id,
            name,
            query,
            start,
        });
    }

    fn on_delete_stream(&mut self, cmd: &Command) {
        let Some(id) = cmd.arg(0).and_then(Amf0Value::as_f64) else {
            return;
        };
        if !(0.0..=f64::from(u32::MAX)).contains(&id) {
            return;
        }
        let stream_id = id as u32;
        if let Some(pos) = self.streams.iter().position(|s| s.id == stream_id) {
            self.streams.remove(pos);
            self.events
                .push_back(ServerEvent::DeleteStream { stream_id });
        }
    }
}
