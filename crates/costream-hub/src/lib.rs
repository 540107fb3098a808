//! The costream hub: a registry of live streams keyed by `app/stream`. Every
//! stream is protocol-neutral (codec configuration + timestamped frames); a
//! publisher of any protocol pushes frames in, viewers of any protocol take
//! them out through bounded queues. The last GOP is kept so a new viewer starts
//! on a keyframe at once ("instant open").

pub mod aac;
pub mod avc;
mod budget;
pub mod frame;
mod hub;
mod info;
mod key;
mod publisher;
mod stats;
mod stream;
mod subscriber;
mod takeover;
pub mod vp8;

pub use budget::{Budget, PushError};
pub use frame::{AudioCodec, Codec, Frame, FrameKind, MuxFormat, VideoCodec};
pub use hub::{Hub, HubConfig, HubEvent, PublishError, SubscribeError};
pub use info::{AudioInfo, StreamInfo, VideoInfo};
pub use key::{KeyError, StreamKey};
pub use publisher::Publisher;
pub use stats::{HubTotals, Protocol, StreamStats};
pub use stream::{Stream, StreamSnapshot};
pub use subscriber::{Subscriber, TryRecv};
pub use takeover::{own_feed, TakeOverError};

#[cfg(test)]
mod tests;
