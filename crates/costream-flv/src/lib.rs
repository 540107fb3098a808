//! FLV (Adobe Flash Video File Format v10.1, annex E) for costream: pure,
//! sans-IO encoding and decoding of FLV tags and of their bodies, which are
//! also the payloads of RTMP audio/video messages.
//!
//! - [`mux`]: hub [`Frame`](costream_hub::Frame)s to tag bodies and whole tags.
//! - [`demux`]: tag bodies (from RTMP publishers or files) to hub frames.
//! - [`reader`]: splits an FLV byte stream into tags, zero-copy.
//! - [`header`]: the FLV file header.

pub mod demux;
pub mod error;
pub mod header;
pub mod mux;
pub mod reader;

pub use demux::{demux_audio, demux_video, record_with_nal_length_4};
pub use error::{FlvError, VideoCodecId};
pub use header::{flv_header, FLV_HEADER};
pub use mux::{audio_body, body, script_tag, tag, video_body};
pub use reader::{FlvHeader, FlvReader, FlvTag};

/// Tag type of audio tags (and RTMP message type id of audio messages).
pub const TAG_AUDIO: u8 = 8;
/// Tag type of video tags (and RTMP message type id of video messages).
pub const TAG_VIDEO: u8 = 9;
/// Tag type of script data (AMF0) tags such as onMetaData.
pub const TAG_SCRIPT: u8 = 18;

/// Bytes in a tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// The largest tag body the 24-bit DataSize field can describe.
pub const MAX_BODY_LEN: usize = 0xff_ffff;
