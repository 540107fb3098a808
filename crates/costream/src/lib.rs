//! costream: an interactive live-streaming server. This crate is the binary's
//! glue: configuration, the thin async I/O around the protocol crates, the
//! HTTP API and the load-testing tool.

pub mod access;
pub mod auth;
pub mod bench;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod console;
pub mod hls;
pub mod http;
pub mod io;
pub mod limits;
pub mod metrics;
pub mod mix;
pub mod mux;
pub mod play_auth;
pub mod room;
pub mod rtmp;
pub mod server;
pub mod tls;
pub mod webrtc;
