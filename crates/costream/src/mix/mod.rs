//! Server-side mixing (issue 6, first slice): hub streams in, one composite
//! stream out. `POST /api/v1/mixes` starts one; see `api.rs`.

mod api;
mod engine;
mod input;
mod layout;
mod push;
pub mod scope;
mod sync;
mod task;

use crate::bridge::heavy;

pub use api::router;
pub use layout::{CustomCell, LayoutSpec};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use costream_hub::{Hub, StreamKey};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};

use engine::{Engine, Target};
use task::MixParams;

/// A mix takes at most this many inputs.
const MAX_INPUTS: usize = 16;

/// What `POST /api/v1/mixes` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixSpec {
    pub inputs: Vec<String>,
    /// A new stream the mix publishes...
    #[serde(default)]
    pub output: Option<String>,
    /// ...or a live stream the mix takes over while it runs (the link-mic
    /// switch): its viewers stay connected and see the mix, then its own
    /// publisher again. An input naming it reads its publisher's feed.
    #[serde(default)]
    pub replace: Option<String>,
    #[serde(default)]
    pub layout: LayoutSpec,
    pub width: Option<usize>,
    pub height: Option<usize>,
    pub fps: Option<f32>,
    pub bitrate: Option<u32>,
    /// RTMP URLs the mix is also pushed to (a CDN), reconnecting on failure.
    #[serde(default)]
    pub push: Vec<String>,
    /// Sound level per input (a stream key, or a room participant's
    /// identity): 0 silences it, 1 (the default) leaves it, at most 4.
    #[serde(default)]
    pub gain: BTreeMap<String, f32>,
    /// Set for a room's mix (`POST /api/v1/rooms/{room}/mix`).
    #[serde(skip_deserializing)]
    pub room: Option<String>,
}

/// A room mix's spec from a request body (the API's or a host's `mix`
/// message): no `inputs` (the room's publications are), and `live/ROOM`
/// as the output unless it names one or a stream to replace.
pub fn room_spec(room: &str, mut spec: Value) -> Result<MixSpec, String> {
    if !spec.is_object() {
        return Err("a mix spec is a JSON object".into());
    }
    if spec.get("inputs").is_some() {
        return Err("a room's mix takes the room's publications as inputs".into());
    }
    spec["inputs"] = json!([]);
    if spec.get("output").is_none() && spec.get("replace").is_none() {
        spec["output"] = json!(format!("live/{room}"));
    }
    serde_json::from_value(spec).map_err(|e| e.to_string())
}

fn check_gains(gains: &BTreeMap<String, f32>) -> Result<(), String> {
    match gains.iter().find(|(_, g)| !(0.0..=4.0).contains(*g)) {
        Some((input, g)) => Err(format!("gain of {input}: {g} is not in 0..=4")),
        None => Ok(()),
    }
}

/// One input: its stream, what its reader decoded, the reader.
struct Slot {
    key: StreamKey,
    state: input::SharedInput,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct Mix {
    spec: MixSpec,
    engine: Engine,
    slots: Arc<Mutex<Vec<Slot>>>,
    /// Push tasks, and for a room's mix the task following the room.
    readers: Vec<tokio::task::JoinHandle<()>>,
    pushes: Vec<Arc<Mutex<push::PushStatus>>>,
    started: std::time::Instant,
}

#[derive(Clone)]
pub struct Mixes {
    hub: Hub,
    mixes: Arc<Mutex<HashMap<String, Mix>>>,
    next: Arc<AtomicU64>,
    /// At most this many mixes run at once (`transcode.max_mixes`).
    max: usize,
}

impl Mixes {
    pub fn new(hub: Hub) -> Mixes {
        Mixes {
            hub,
            mixes: Arc::new(Mutex::new(HashMap::new())),
            next: Arc::new(AtomicU64::new(1)),
            max: crate::config::TranscodeConfig::default().max_mixes,
        }
    }

    /// At most `max` mixes at once.
    pub fn with_limit(mut self, max: usize) -> Mixes {
        self.max = max;
        self
    }

    /// Starts a mix of a room's publications, following them as
    /// participants start and stop publishing (hosts first). With
    /// `replace`, the mix is the replaced stream's publisher (the host)
    /// and the room's guests, and runs only while a guest publishes.
    pub fn create_for_room(
        &self,
        rooms: crate::room::Rooms,
        room: String,
        mut spec: MixSpec,
    ) -> Result<String, (u16, String)> {
        spec.inputs = Vec::new();
        spec.room = Some(room.clone());
        self.create_inner(spec, Some((rooms, room)))
    }

    /// Starts a mix; its id.
    pub fn create(&self, spec: MixSpec) -> Result<String, (u16, String)> {
        self.create_inner(spec, None)
    }

    fn create_inner(
        &self,
        spec: MixSpec,
        room: Option<(crate::room::Rooms, String)>,
    ) -> Result<String, (u16, String)> {
        let bad = |m: String| (400u16, m);
        let target = match (&spec.output, &spec.replace) {
            (Some(o), None) => {
                Target::Publish(StreamKey::parse(o).map_err(|e| bad(format!("output: {e}")))?)
            }
            (None, Some(r)) => {
                Target::Replace(StreamKey::parse(r).map_err(|e| bad(format!("replace: {e}")))?)
            }
            _ => return Err(bad("give either output or replace".into())),
        };
        if (spec.inputs.is_empty() && room.is_none()) || spec.inputs.len() > MAX_INPUTS {
            return Err(bad(format!("between 1 and {MAX_INPUTS} inputs")));
        }
        let inputs = spec
            .inputs
            .iter()
            .map(|k| StreamKey::parse(k).map_err(|e| bad(format!("input {k}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if let Target::Publish(output) = &target {
            if inputs.contains(output) {
                return Err(bad("the output cannot be one of the inputs".into()));
            }
        }
        let width = spec.width.unwrap_or(1280);
        let height = spec.height.unwrap_or(720);
        let fps = spec.fps.unwrap_or(15.0);
        let bitrate = spec.bitrate.unwrap_or(1_200_000);
        // 360p to 720p, landscape or portrait (seed 004's range).
        if !(360..=720).contains(&width.min(height)) || width.max(height) > 1280 {
            return Err(bad(
                "width and height: the shorter side 360..=720, the longer at most 1280".into(),
            ));
        }
        if !(8.0..=24.0).contains(&fps) || !(100_000..=8_000_000).contains(&bitrate) {
            return Err(bad("fps must be 8..=24 and bitrate 100000..=8000000".into()));
        }
        check_gains(&spec.gain).map_err(bad)?;
        if spec.push.len() > 4 {
            return Err(bad("at most 4 push URLs".into()));
        }
        for url in &spec.push {
            push::check_url(url).map_err(bad)?;
        }
        if self.mixes.lock().len() >= self.max {
            crate::metrics::refused(
                "mix",
                "mix_limit",
                None,
                format_args!("{} mixes run already (transcode.max_mixes)", self.max),
            );
            return Err((
                503,
                format!("{} mixes run already (transcode.max_mixes)", self.max),
            ));
        }
        let id = format!("mix-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let params = MixParams {
            width: width & !1,
            height: height & !1,
            fps,
            bitrate,
            opus: false,
        };
        let engine = Engine::new(
            id.clone(),
            self.hub.clone(),
            target.clone(),
            params,
            spec.layout.clone(),
        );
        *engine.gains.lock() = spec.gain.clone();
        // Started before the inputs, so a takeover's inputs read their own
        // feeds at once. A room's replacing mix waits for a guest.
        if room.is_none() || matches!(target, Target::Publish(_)) {
            engine.start()?;
        }
        let slots: Vec<Slot> = inputs.into_iter().map(|k| self.slot(k)).collect();
        engine.follow(&slots);
        let slots = Arc::new(Mutex::new(slots));
        let mut readers = Vec::new();
        if let Some((rooms, room)) = room {
            readers.push(tokio::spawn(follow_room(
                self.clone(),
                rooms,
                room,
                engine.clone(),
                slots.clone(),
            )));
        }
        let pushes: Vec<Arc<Mutex<push::PushStatus>>> = spec
            .push
            .iter()
            .map(|url| {
                Arc::new(Mutex::new(push::PushStatus {
                    url: url.clone(),
                    ..Default::default()
                }))
            })
            .collect();
        for (url, status) in spec.push.iter().zip(&pushes) {
            readers.push(tokio::spawn(push::run(
                self.hub.clone(),
                target.key().clone(),
                url.clone(),
                status.clone(),
            )));
        }
        tracing::info!(%id, target = ?target, inputs = ?spec.inputs, "mix started");
        self.mixes.lock().insert(
            id.clone(),
            Mix {
                spec,
                engine,
                slots,
                readers,
                pushes,
                started: std::time::Instant::now(),
            },
        );
        Ok(id)
    }

    fn slot(&self, key: StreamKey) -> Slot {
        let state = input::SharedInput::default();
        let reader = tokio::spawn(input::run(self.hub.clone(), key.clone(), state.clone()));
        Slot { key, state, reader }
    }

    /// The id of the mix of `room`, if one runs.
    pub fn of_room(&self, room: &str) -> Option<String> {
        self.mixes
            .lock()
            .iter()
            .find(|(_, m)| m.spec.room.as_deref() == Some(room))
            .map(|(id, _)| id.clone())
    }

    /// Changes a running mix's layout and sound levels (those given); Ok(false)
    /// when there is no such mix.
    pub fn update(
        &self,
        id: &str,
        layout: Option<LayoutSpec>,
        gain: Option<BTreeMap<String, f32>>,
    ) -> Result<bool, String> {
        if let Some(g) = &gain {
            check_gains(g)?;
        }
        let mixes = self.mixes.lock();
        let Some(m) = mixes.get(id) else {
            return Ok(false);
        };
        if let Some(layout) = layout {
            *m.engine.layout_spec.lock() = layout;
        }
        if let Some(gain) = gain {
            *m.engine.gains.lock() = gain;
        }
        m.engine.follow(&m.slots.lock());
        Ok(true)
    }

    pub fn stop(&self, id: &str) -> bool {
        let Some(m) = self.mixes.lock().remove(id) else {
            return false;
        };
        for r in &m.readers {
            r.abort();
        }
        m.engine.stop();
        // Dropping the slots stops their readers.
        m.slots.lock().clear();
        m.engine.feed.lock().clear();
        tracing::info!(%id, "mix stopped");
        true
    }

    pub fn describe(&self, id: &str) -> Option<Value> {
        self.mixes.lock().get(id).map(|m| describe(id, m))
    }

    pub fn list(&self) -> Vec<Value> {
        let mixes = self.mixes.lock();
        let mut v: Vec<Value> = mixes.iter().map(|(id, m)| describe(id, m)).collect();
        v.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        v
    }
}

fn describe(id: &str, m: &Mix) -> Value {
    let secs = m.started.elapsed().as_secs_f64().max(1e-3);
    let stats = &m.engine.stats;
    let cpu_s = stats.cpu_us.load(Ordering::Relaxed) as f64 / 1e6;
    let latency = stats.latency_ms();
    let (output, replace) = match &m.engine.target {
        Target::Publish(k) => (Some(k.to_string()), None),
        Target::Replace(k) => (None, Some(k.to_string())),
    };
    json!({
        "id": id,
        "output": output,
        "replace": replace,
        "mixing": m.engine.is_running(),
        "layout": *m.engine.layout_spec.lock(),
        "room": m.spec.room,
        "inputs": m.slots.lock().iter().map(|slot| {
            let s = slot.state.lock();
            json!({
                "stream": slot.key.to_string(),
                "live": s.live,
                "frames_in": s.frames_in,
                "decode_errors": s.decode_errors,
                "has_picture": s.sync.has_picture(),
                // How late its picture is against its sound in the mix (ms).
                "av_offset_ms": s.sync.av_offset_ms().map(|o| o.round()),
            })
        }).collect::<Vec<_>>(),
        "push": m.pushes.iter().map(|p| p.lock().clone()).collect::<Vec<_>>(),
        "video_frames": stats.video_frames.load(Ordering::Relaxed),
        "audio_frames": stats.audio_frames.load(Ordering::Relaxed),
        "gain": *m.engine.gains.lock(),
        "frames_dropped": stats.frames_dropped.load(Ordering::Relaxed),
        "latency_ms": { "avg": latency.0, "max": latency.1 },
        "output_bitrate_bps": m.engine.is_running().then(|| {
            m.engine.hub.stream(m.engine.target.key()).map(|s| s.info().bitrate_bps)
        }).flatten(),
        "cpu_seconds": cpu_s,
        "cpu_percent": cpu_s / secs * 100.0,
    })
}

/// Keeps a room's mix on the room's publications, in rank order. A mix
/// replacing a host's stream mixes that stream and the room's guests, and
/// runs only while a guest publishes: the first guest switches the
/// host's viewers to the mix, the last one leaving switches them back.
async fn follow_room(
    mixes: Mixes,
    rooms: crate::room::Rooms,
    room: String,
    engine: Engine,
    slots: Arc<Mutex<Vec<Slot>>>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    let mut refused = false;
    loop {
        tick.tick().await;
        let publications = rooms.publications(&room);
        let mut want: Vec<StreamKey> = match &engine.target {
            Target::Publish(_) => publications.into_iter().map(|(k, _)| k).collect(),
            Target::Replace(host) => {
                let guests: Vec<StreamKey> = publications
                    .into_iter()
                    .filter(|(_, is_host)| !is_host)
                    .map(|(k, _)| k)
                    .collect();
                if guests.is_empty() {
                    engine.stop();
                    Vec::new()
                } else {
                    match engine.start() {
                        Ok(()) => refused = false,
                        Err((_, why)) => {
                            if !refused {
                                tracing::warn!(%room, "room mix cannot replace {host}: {why}");
                            }
                            refused = true;
                        }
                    }
                    std::iter::once(host.clone()).chain(guests).collect()
                }
            }
        };
        if matches!(engine.target, Target::Publish(_)) && !engine.is_running() {
            if let Err((_, why)) = engine.start() {
                if !refused {
                    tracing::warn!(%room, "room mix cannot start: {why}");
                }
                refused = true;
            }
        }
        want.truncate(MAX_INPUTS);
        let mut slots = slots.lock();
        if slots.iter().map(|s| &s.key).eq(want.iter()) {
            continue;
        }
        let mut old: Vec<Slot> = std::mem::take(&mut *slots);
        for key in want {
            match old.iter().position(|s| s.key == key) {
                Some(i) => slots.push(old.swap_remove(i)),
                None => slots.push(mixes.slot(key)),
            }
        }
        tracing::info!(%room, inputs = slots.len(), "room mix follows its publications");
        engine.follow(&slots);
        // `old` holds the slots no longer wanted: dropped, their readers stop.
    }
}
