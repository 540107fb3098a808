//! The mixer's building blocks, without I/O or codecs: where each input goes
//! on the canvas ([`layout`]), pictures and their scaling ([`picture`]), one
//! composite from many inputs ([`compose`]) and the audio mix ([`audio`]).
//! Decoding, encoding and the mixer's clock live with the server.

pub mod audio;
pub mod compose;
pub mod layout;
pub mod picture;

pub use audio::{soft_clip, AudioMixer};
pub use compose::Compositor;
pub use layout::{Layout, Placement, Rect};
pub use picture::{Color, Picture};
