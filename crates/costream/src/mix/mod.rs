//! Server-side mixing (issue 6, first slice): hub streams in, one composite
//! stream out. `POST /api/v1/mixes` starts one; see `api.rs`.

mod api;
mod input;
mod push;
mod task;

use crate::bridge::heavy;

pub use api::router;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use costream_hub::{Hub, Protocol, StreamKey};
use costream_mixer::Layout;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};

use task::{MixParams, MixStats};

/// At most this many mixes run at once, each at most this many inputs.
const MAX_MIXES: usize = 16;
const MAX_INPUTS: usize = 16;

/// What `POST /api/v1/mixes` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixSpec {
    pub inputs: Vec<String>,
    pub output: String,
    #[serde(default)]
    pub layout: LayoutSpec,
    pub width: Option<usize>,
    pub height: Option<usize>,
    pub fps: Option<f32>,
    pub bitrate: Option<u32>,
    /// RTMP URLs the mix is also pushed to (a CDN), reconnecting on failure.
    #[serde(default)]
    pub push: Vec<String>,
    /// Set for a room's mix (`POST /api/v1/rooms/{room}/mix`).
    #[serde(skip_deserializing)]
    pub room: Option<String>,
}

/// `"grid"`, `"speaker"`, `"pip"`, or `{"custom": [[x, y, w, h, z], ...]}`
/// with x, y, w, h as fractions of the canvas.
#[derive(Debug, Clone, Deserialize, serde::Serialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum LayoutSpec {
    #[default]
    Grid,
    Speaker,
    Pip,
    Custom(Vec<[f64; 5]>),
}

impl LayoutSpec {
    fn layout(&self) -> Layout {
        match self {
            LayoutSpec::Grid => Layout::Grid,
            LayoutSpec::Speaker => Layout::Speaker,
            LayoutSpec::Pip => Layout::Pip,
            LayoutSpec::Custom(r) => Layout::Custom(
                r.iter()
                    .map(|c| ([c[0], c[1], c[2], c[3]], c[4] as i32))
                    .collect(),
            ),
        }
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
    layout_spec: LayoutSpec,
    layout: Arc<Mutex<Layout>>,
    stats: Arc<MixStats>,
    stop: Arc<AtomicBool>,
    slots: Arc<Mutex<Vec<Slot>>>,
    /// What the mixing loop reads, in slot order.
    feed: Arc<Mutex<Vec<input::SharedInput>>>,
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
}

impl Mixes {
    pub fn new(hub: Hub) -> Mixes {
        Mixes {
            hub,
            mixes: Arc::new(Mutex::new(HashMap::new())),
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Starts a mix of a room's publications, following them as
    /// participants start and stop publishing (hosts first).
    pub fn create_for_room(
        &self,
        rooms: crate::room::Rooms,
        room: String,
        mut spec: MixSpec,
    ) -> Result<String, (u16, String)> {
        spec.inputs = rooms
            .publications(&room)
            .iter()
            .map(|k| k.to_string())
            .collect();
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
        let output = StreamKey::parse(&spec.output).map_err(|e| bad(format!("output: {e}")))?;
        if (spec.inputs.is_empty() && room.is_none()) || spec.inputs.len() > MAX_INPUTS {
            return Err(bad(format!("between 1 and {MAX_INPUTS} inputs")));
        }
        let inputs = spec
            .inputs
            .iter()
            .map(|k| StreamKey::parse(k).map_err(|e| bad(format!("input {k}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if inputs.contains(&output) {
            return Err(bad("the output cannot be one of the inputs".into()));
        }
        let width = spec.width.unwrap_or(1280);
        let height = spec.height.unwrap_or(720);
        let fps = spec.fps.unwrap_or(15.0);
        let bitrate = spec.bitrate.unwrap_or(1_200_000);
        if !(160..=1920).contains(&width) || !(120..=1080).contains(&height) {
            return Err(bad("width must be 160..=1920 and height 120..=1080".into()));
        }
        if !(1.0..=30.0).contains(&fps) || !(100_000..=8_000_000).contains(&bitrate) {
            return Err(bad("fps must be 1..=30 and bitrate 100000..=8000000".into()));
        }
        if spec.push.len() > 4 {
            return Err(bad("at most 4 push URLs".into()));
        }
        for url in &spec.push {
            push::check_url(url).map_err(bad)?;
        }
        if self.mixes.lock().len() >= MAX_MIXES {
            return Err((503, format!("{MAX_MIXES} mixes run already")));
        }
        let publisher = self
            .hub
            .publish(output.clone(), Protocol::Internal)
            .map_err(|e| (409u16, e.to_string()))?;
        let id = format!("mix-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let layout_spec = spec.layout.clone();
        let layout = Arc::new(Mutex::new(layout_spec.layout()));
        let stats = Arc::new(MixStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let slots: Vec<Slot> = inputs.into_iter().map(|k| self.slot(k)).collect();
        let feed = Arc::new(Mutex::new(slots.iter().map(|s| s.state.clone()).collect()));
        let slots = Arc::new(Mutex::new(slots));
        let mut readers = Vec::new();
        if let Some((rooms, room)) = room {
            readers.push(tokio::spawn(follow_room(
                self.clone(),
                rooms,
                room,
                slots.clone(),
                feed.clone(),
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
                output.clone(),
                url.clone(),
                status.clone(),
            )));
        }
        let params = MixParams {
            width: width & !1,
            height: height & !1,
            fps,
            bitrate,
        };
        let (l, st, sp, f) = (layout.clone(), stats.clone(), stop.clone(), feed.clone());
        std::thread::Builder::new()
            .name(format!("costream-{id}"))
            .spawn(move || task::run(params, l, f, publisher, st, sp))
            .map_err(|e| (500u16, e.to_string()))?;
        tracing::info!(%id, %output, inputs = ?spec.inputs, "mix started");
        self.mixes.lock().insert(
            id.clone(),
            Mix {
                spec,
                layout_spec,
                layout,
                stats,
                stop,
                slots,
                feed,
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

    pub fn set_layout(&self, id: &str, layout: LayoutSpec) -> bool {
        let mut mixes = self.mixes.lock();
        let Some(m) = mixes.get_mut(id) else {
            return false;
        };
        *m.layout.lock() = layout.layout();
        m.layout_spec = layout;
        true
    }

    pub fn stop(&self, id: &str) -> bool {
        let Some(m) = self.mixes.lock().remove(id) else {
            return false;
        };
        m.stop.store(true, Ordering::Relaxed);
        for r in &m.readers {
            r.abort();
        }
        // Dropping the slots stops their readers.
        m.slots.lock().clear();
        m.feed.lock().clear();
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
    let cpu_s = m.stats.cpu_us.load(Ordering::Relaxed) as f64 / 1e6;
    json!({
        "id": id,
        "output": m.spec.output,
        "layout": m.layout_spec,
        "room": m.spec.room,
        "inputs": m.slots.lock().iter().map(|slot| {
            let s = slot.state.lock();
            json!({
                "stream": slot.key.to_string(),
                "live": s.live,
                "frames_in": s.frames_in,
                "decode_errors": s.decode_errors,
                "has_picture": s.picture.is_some(),
            })
        }).collect::<Vec<_>>(),
        "push": m.pushes.iter().map(|p| p.lock().clone()).collect::<Vec<_>>(),
        "video_frames": m.stats.video_frames.load(Ordering::Relaxed),
        "audio_frames": m.stats.audio_frames.load(Ordering::Relaxed),
        "late_ticks": m.stats.late_ticks.load(Ordering::Relaxed),
        "cpu_seconds": cpu_s,
        "cpu_percent": cpu_s / secs * 100.0,
    })
}

/// Keeps a room's mix on the room's publications, in rank order.
async fn follow_room(
    mixes: Mixes,
    rooms: crate::room::Rooms,
    room: String,
    slots: Arc<Mutex<Vec<Slot>>>,
    feed: Arc<Mutex<Vec<input::SharedInput>>>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        let want: Vec<StreamKey> = rooms
            .publications(&room)
            .into_iter()
            .take(MAX_INPUTS)
            .collect();
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
        *feed.lock() = slots.iter().map(|s| s.state.clone()).collect();
        // `old` holds the slots no longer wanted: dropped, their readers stop.
    }
}
