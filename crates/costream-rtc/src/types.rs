//! Small value types of the public API. They are our own rather than str0m's
//! so that callers (the server, the hub bridge) need not depend on str0m.

use std::fmt;
use std::time::Instant;

/// Identifies one WebRTC session of an [`RtcHost`](crate::RtcHost). Never reused
/// within one host, so a stale id can only miss, never hit another session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtc-{}", self.0)
    }
}

/// What the remote client does in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The client sends media to us (WHIP ingest).
    Publish,
    /// The client receives media from us (WHEP playback).
    Play,
}

/// How a packet travels between the client and the host: a UDP datagram,
/// or one RFC 4571 frame on an ICE-TCP connection (the caller does the
/// 2-byte length framing; the host sees whole packets either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub(crate) fn to_str0m(self) -> str0m::net::Protocol {
        match self {
            Transport::Udp => str0m::net::Protocol::Udp,
            Transport::Tcp => str0m::net::Protocol::Tcp,
        }
    }

    pub(crate) fn from_str0m(p: str0m::net::Protocol) -> Transport {
        match p {
            str0m::net::Protocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        }
    }
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Video,
    Audio,
}

/// The codecs this crate negotiates. H.264 is always packetization-mode=1
/// (FU-A / STAP-A), the mode every browser sends and the only one that carries
/// frames larger than one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Vp8,
    Opus,
}

impl Codec {
    pub fn kind(self) -> MediaKind {
        match self {
            Codec::H264 | Codec::Vp8 => MediaKind::Video,
            Codec::Opus => MediaKind::Audio,
        }
    }

    /// RTP clock rate: 90 kHz for video, 48 kHz for Opus (RFC 6184, 7741, 7587).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::H264 | Codec::Vp8 => 90_000,
            Codec::Opus => 48_000,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Vp8 => "vp8",
            Codec::Opus => "opus",
        }
    }

    pub(crate) fn from_str0m(c: str0m::format::Codec) -> Option<Codec> {
        match c {
            str0m::format::Codec::H264 => Some(Codec::H264),
            str0m::format::Codec::Vp8 => Some(Codec::Vp8),
            str0m::format::Codec::Opus => Some(Codec::Opus),
            _ => None,
        }
    }

    pub(crate) fn to_str0m(self) -> str0m::format::Codec {
        match self {
            Codec::H264 => str0m::format::Codec::H264,
            Codec::Vp8 => str0m::format::Codec::Vp8,
            Codec::Opus => str0m::format::Codec::Opus,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A frame to send to a Play session.
#[derive(Debug, Clone, Copy)]
pub struct MediaOut<'a> {
    pub codec: Codec,
    /// RTP timestamp in the codec's clock (90 kHz video, 48 kHz Opus).
    pub rtp_time: u64,
    /// When this frame was captured, on the local clock; str0m maps it to NTP
    /// time in sender reports, which is what receivers sync audio and video by.
    pub wallclock: Instant,
    /// H.264: one access unit in Annex B (start codes); put SPS and PPS in
    /// front of each IDR, str0m sends them in a STAP-A. VP8/Opus: one frame.
    pub data: &'a [u8],
}
